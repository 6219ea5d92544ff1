//! Routing, approval and fallback-risk policies: JDM decision tables (GoRules' format, editable in
//! its visual editor) in `policies/`, evaluated with GoRules' expression engine ([`jdm`]).
//! Analysts change the tables, not the code; a table that fails to parse, compile or answer a
//! probe is refused and the previous set stays active.

pub mod approvals;
pub mod fallback;
pub mod jdm;
pub mod routing;

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use dispatch_risk_training::carrier::RankingPolicy;
use sha2::{Digest, Sha256};

pub use approvals::{ApprovalPolicy, DecisionKind};
pub use fallback::{FallbackFacts, FallbackRisk};
use jdm::DecisionTable;
pub use routing::{ApproverRole, Queue, Routing, RoutingFacts};

/// The routing and approval table's file in the policies directory.
pub const ROUTING_FILE: &str = "routing.json";
/// The fallback-risk table's file in the policies directory.
pub const FALLBACK_FILE: &str = "fallback_risk.json";
/// How carriers are weighed (optional: the built-in weights without it).
pub const RANKING_FILE: &str = "carrier_ranking.toml";
/// Who decides approvals, how fast and with which reasons (optional: the committed policy
/// without it).
pub const APPROVALS_FILE: &str = "approvals.toml";

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("policy evaluation failed: {0}")]
    Evaluation(String),
}

/// One policy set, compiled and checked, with a version that names its content.
#[derive(Debug, Clone)]
pub struct PolicySource {
    pub dir: PathBuf,
    pub routing: DecisionTable,
    pub fallback: DecisionTable,
    pub ranking: RankingPolicy,
    pub approvals: ApprovalPolicy,
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
        let approvals_text = if dir.join(APPROVALS_FILE).exists() {
            read(APPROVALS_FILE)?
        } else {
            String::new()
        };
        let approvals = if approvals_text.is_empty() {
            ApprovalPolicy::default()
        } else {
            ApprovalPolicy::from_toml(&approvals_text).map_err(|message| PolicyError::File {
                path: dir.join(APPROVALS_FILE),
                message,
            })?
        };
        let mut hash = Sha256::new();
        for text in [&routing, &fallback, &ranking_text, &approvals_text] {
            hash.update(text.as_bytes());
            hash.update([0]);
        }
        let version = hash
            .finalize()
            .iter()
            .take(6)
            .map(|b| format!("{b:02x}"))
            .collect();
        let table = |name: &str, text: &str| {
            DecisionTable::parse(text).map_err(|e| PolicyError::File {
                path: dir.join(name),
                message: e.to_string(),
            })
        };
        let source = PolicySource {
            dir: dir.to_path_buf(),
            routing: table(ROUTING_FILE, &routing)?,
            fallback: table(FALLBACK_FILE, &fallback)?,
            ranking,
            approvals,
            version,
        };
        source.probe()?;
        Ok(source)
    }

    /// Evaluates both tables on typical facts and reads the answers as the service will, so a
    /// table with a misnamed output column is refused at load, not at the first request.
    fn probe(&self) -> Result<(), PolicyError> {
        let file_error = |name: &str, e: PolicyError| PolicyError::File {
            path: self.dir.join(name),
            message: e.to_string(),
        };
        for facts in [RoutingFacts::probe(), RoutingFacts::probe_extreme()] {
            self.route(&facts)
                .map_err(|e| file_error(ROUTING_FILE, e))?;
        }
        for facts in [FallbackFacts::probe(), FallbackFacts::probe_late()] {
            self.fallback(&facts)
                .map_err(|e| file_error(FALLBACK_FILE, e))?;
        }
        Ok(())
    }

    /// The routing table's combined answer for one shipment.
    pub fn route(&self, facts: &RoutingFacts) -> Result<Routing, PolicyError> {
        routing::evaluate(&self.routing, facts)
    }

    /// The fallback table's risk for one shipment.
    pub fn fallback(&self, facts: &FallbackFacts) -> Result<FallbackRisk, PolicyError> {
        fallback::evaluate(&self.fallback, facts)
    }
}

/// The policy set serving now; reload swaps it whole, so a request sees one set throughout.
pub struct ActivePolicies {
    current: RwLock<Arc<PolicySource>>,
}

impl ActivePolicies {
    pub fn new(source: PolicySource) -> Self {
        ActivePolicies {
            current: RwLock::new(Arc::new(source)),
        }
    }

    pub fn source(&self) -> Arc<PolicySource> {
        match self.current.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Makes `source` (already checked by [`PolicySource::load`]) the active set.
    pub fn swap(&self, source: PolicySource) {
        let new = Arc::new(source);
        match self.current.write() {
            Ok(mut g) => *g = new,
            Err(p) => *p.into_inner() = new,
        }
    }
}
