//! Routing, approval and fallback-risk policies: JDM decision tables (GoRules' format, editable in
//! its visual editor) in `policies/`, evaluated by zen-engine. Analysts change the tables, not
//! the code; a table that fails to parse, validate or answer a probe is refused and the previous
//! set stays active.

pub mod fallback;
pub mod pool;
pub mod routing;

use std::path::{Path, PathBuf};

use dispatch_risk_training::carrier::RankingPolicy;
use sha2::{Digest, Sha256};
use zen_engine::model::GraphContent;
use zen_engine::Decision;

pub use fallback::{FallbackFacts, FallbackRisk};
pub use pool::PolicyPool;
pub use routing::{ApproverRole, Queue, Routing, RoutingFacts};

/// The routing and approval table's file in the policies directory.
pub const ROUTING_FILE: &str = "routing.json";
/// The fallback-risk table's file in the policies directory.
pub const FALLBACK_FILE: &str = "fallback_risk.json";
/// How carriers are weighed (optional: the built-in weights without it).
pub const RANKING_FILE: &str = "carrier_ranking.toml";

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("policy evaluation failed: {0}")]
    Evaluation(String),
    #[error("the policy threads have stopped")]
    Stopped,
}

/// The texts of one policy set, checked, with a version that names their content.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicySource {
    pub dir: PathBuf,
    pub routing: String,
    pub fallback: String,
    pub ranking: RankingPolicy,
    /// The first 12 hex digits of the SHA-256 of the files: recorded with every score.
    pub version: String,
}

impl PolicySource {
    /// Reads and checks the policies of `dir`: each file must be a JDM graph that validates and
    /// answers a probe in the shape the service reads. Blocking (it reads files).
    pub fn load(dir: &Path) -> Result<Self, PolicyError> {
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read_to_string(&path).map_err(|e| PolicyError::File {
                path,
                message: format!("cannot read: {e}"),
            })
        };
        let routing = read(ROUTING_FILE)?;
        let fallback = read(FALLBACK_FILE)?;
        let ranking_text = if dir.join(RANKING_FILE).exists() {
            read(RANKING_FILE)?
        } else {
            String::new()
        };
        let ranking = if ranking_text.is_empty() {
            RankingPolicy::default()
        } else {
            RankingPolicy::from_toml(&ranking_text).map_err(|e| PolicyError::File {
                path: dir.join(RANKING_FILE),
                message: e.to_string(),
            })?
        };
        let mut hash = Sha256::new();
        for text in [&routing, &fallback, &ranking_text] {
            hash.update(text.as_bytes());
            hash.update([0]);
        }
        let version = hash
            .finalize()
            .iter()
            .take(6)
            .map(|b| format!("{b:02x}"))
            .collect();
        let source = PolicySource {
            dir: dir.to_path_buf(),
            routing,
            fallback,
            ranking,
            version,
        };
        let compiled = source.compile()?;
        compiled.probe(&source)?;
        Ok(source)
    }

    /// Builds the decisions. zen-engine's decisions hold `Rc`s, so each policy thread compiles
    /// its own from these texts.
    pub fn compile(&self) -> Result<Compiled, PolicyError> {
        Ok(Compiled {
            version: self.version.clone(),
            routing: decision(&self.dir.join(ROUTING_FILE), &self.routing)?,
            fallback: decision(&self.dir.join(FALLBACK_FILE), &self.fallback)?,
        })
    }
}

/// One thread's decisions.
pub struct Compiled {
    pub version: String,
    pub routing: Decision,
    pub fallback: Decision,
}

impl Compiled {
    /// Evaluates both tables once on typical facts and reads the answers as the service will,
    /// so a table with a misnamed output column is refused at load, not at the first request.
    fn probe(&self, source: &PolicySource) -> Result<(), PolicyError> {
        let runtime = pool::local_runtime()?;
        let file_error = |name: &str, e: PolicyError| PolicyError::File {
            path: source.dir.join(name),
            message: e.to_string(),
        };
        for facts in [RoutingFacts::probe(), RoutingFacts::probe_extreme()] {
            runtime
                .block_on(routing::evaluate(&self.routing, &facts))
                .map_err(|e| file_error(ROUTING_FILE, e))?;
        }
        for facts in [FallbackFacts::probe(), FallbackFacts::probe_late()] {
            runtime
                .block_on(fallback::evaluate(&self.fallback, &facts))
                .map_err(|e| file_error(FALLBACK_FILE, e))?;
        }
        Ok(())
    }
}

fn decision(path: &Path, text: &str) -> Result<Decision, PolicyError> {
    let err = |message: String| PolicyError::File {
        path: path.to_path_buf(),
        message,
    };
    let content: GraphContent =
        serde_json::from_str(text).map_err(|e| err(format!("not a JDM decision graph: {e}")))?;
    let mut decision = Decision::from(content);
    decision
        .validate()
        .map_err(|e| err(format!("invalid decision graph: {e}")))?;
    decision.compile();
    Ok(decision)
}

/// A zen-engine variable as JSON, for reading a table's answer.
fn to_json(v: &zen_engine::Variable) -> serde_json::Value {
    v.to_value()
}
