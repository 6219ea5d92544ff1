//! The threads that evaluate policies. zen-engine's evaluation holds `Rc`s, so its futures are
//! not `Send` and cannot run on the async workers; like its own language bindings, each thread
//! here owns its decisions and a single-threaded runtime, and requests reach it by channel.
//! A batch is split across the threads.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, RwLock};

use tokio::sync::oneshot;

use super::{fallback, routing, Compiled, FallbackFacts, FallbackRisk, PolicyError, PolicySource};
use super::{Routing, RoutingFacts};

/// Work for one thread: a slice of a batch.
enum Job {
    Route {
        source: Arc<PolicySource>,
        facts: Vec<RoutingFacts>,
        reply: oneshot::Sender<Result<Vec<Routing>, PolicyError>>,
    },
    Fallback {
        source: Arc<PolicySource>,
        facts: Vec<FallbackFacts>,
        reply: oneshot::Sender<Result<Vec<FallbackRisk>, PolicyError>>,
    },
}

/// Evaluates the active policy set on a few dedicated threads; `swap` replaces the set for
/// the next job without stopping the threads.
pub struct PolicyPool {
    senders: Vec<mpsc::Sender<Job>>,
    next: AtomicUsize,
    current: RwLock<Arc<PolicySource>>,
}

/// Below this many shipments a batch is not worth splitting across threads.
const SPLIT_AT: usize = 64;

impl PolicyPool {
    pub fn start(source: PolicySource, threads: usize) -> std::io::Result<Self> {
        let mut senders = Vec::new();
        for i in 0..threads.max(1) {
            let (tx, rx) = mpsc::channel::<Job>();
            std::thread::Builder::new()
                .name(format!("policy-{i}"))
                .spawn(move || worker(rx))?;
            senders.push(tx);
        }
        Ok(PolicyPool {
            senders,
            next: AtomicUsize::new(0),
            current: RwLock::new(Arc::new(source)),
        })
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

    pub async fn route(&self, facts: Vec<RoutingFacts>) -> Result<Vec<Routing>, PolicyError> {
        let source = self.source();
        self.split(facts, |facts, reply| Job::Route {
            source: source.clone(),
            facts,
            reply,
        })
        .await
    }

    pub async fn fallback(
        &self,
        facts: Vec<FallbackFacts>,
    ) -> Result<Vec<FallbackRisk>, PolicyError> {
        let source = self.source();
        self.split(facts, |facts, reply| Job::Fallback {
            source: source.clone(),
            facts,
            reply,
        })
        .await
    }

    async fn split<F, T>(
        &self,
        mut facts: Vec<F>,
        job: impl Fn(Vec<F>, oneshot::Sender<Result<Vec<T>, PolicyError>>) -> Job,
    ) -> Result<Vec<T>, PolicyError> {
        let parts = if facts.len() < SPLIT_AT {
            1
        } else {
            self.senders.len()
        };
        let chunk = facts.len().div_ceil(parts).max(1);
        let mut pending = Vec::with_capacity(parts);
        // Split from the back so each part keeps its order; answers are joined front to back.
        let mut chunks = Vec::with_capacity(parts);
        while facts.len() > chunk {
            let tail = facts.split_off(facts.len() - chunk);
            chunks.push(tail);
        }
        chunks.push(facts);
        chunks.reverse();
        for part in chunks {
            let (tx, rx) = oneshot::channel();
            let k = self.next.fetch_add(1, Ordering::Relaxed) % self.senders.len();
            self.senders[k]
                .send(job(part, tx))
                .map_err(|_| PolicyError::Stopped)?;
            pending.push(rx);
        }
        let mut out = Vec::new();
        for rx in pending {
            out.extend(rx.await.map_err(|_| PolicyError::Stopped)??);
        }
        Ok(out)
    }
}

/// A runtime for one thread's non-`Send` evaluations.
pub fn local_runtime() -> Result<tokio::runtime::Runtime, PolicyError> {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .map_err(|e| PolicyError::Evaluation(format!("cannot start a policy runtime: {e}")))
}

fn worker(rx: mpsc::Receiver<Job>) {
    let Ok(runtime) = local_runtime() else {
        return;
    };
    let mut compiled: Option<Compiled> = None;
    while let Ok(job) = rx.recv() {
        match job {
            Job::Route {
                source,
                facts,
                reply,
            } => {
                let result = ensure(&mut compiled, &source).and_then(|c| {
                    runtime.block_on(async {
                        let mut out = Vec::with_capacity(facts.len());
                        for f in &facts {
                            out.push(routing::evaluate(&c.routing, f).await?);
                        }
                        Ok(out)
                    })
                });
                let _ = reply.send(result);
            }
            Job::Fallback {
                source,
                facts,
                reply,
            } => {
                let result = ensure(&mut compiled, &source).and_then(|c| {
                    runtime.block_on(async {
                        let mut out = Vec::with_capacity(facts.len());
                        for f in &facts {
                            out.push(fallback::evaluate(&c.fallback, f).await?);
                        }
                        Ok(out)
                    })
                });
                let _ = reply.send(result);
            }
        }
    }
}

/// The thread's decisions for `source`: jobs carry the set they were issued under, and a new
/// version is compiled on first sight.
fn ensure<'c>(
    compiled: &'c mut Option<Compiled>,
    source: &PolicySource,
) -> Result<&'c Compiled, PolicyError> {
    if compiled.as_ref().map(|c| c.version.as_str()) != Some(source.version.as_str()) {
        *compiled = Some(source.compile()?);
    }
    Ok(compiled.as_ref().expect("set above"))
}
