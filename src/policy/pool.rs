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

/// Work for one thread: evaluates a slice of a batch on the thread's decisions for the set
/// the job was issued under, and sends the answers back.
struct Job {
    source: Arc<PolicySource>,
    run: Run,
}

/// A job's work, given the thread's decisions (or why they could not be compiled).
type Run = Box<dyn FnOnce(Result<&Compiled, PolicyError>, &tokio::runtime::Runtime) + Send>;

/// Evaluates the active policy set on a few dedicated threads; `swap` replaces the set for
/// the next job without stopping the threads.
pub struct PolicyPool {
    senders: Vec<mpsc::Sender<Job>>,
    next: AtomicUsize,
    current: RwLock<Arc<PolicySource>>,
}

/// Evaluates one fact on a thread's decisions, blocking on its runtime.
type Eval<F, T> = fn(&tokio::runtime::Runtime, &Compiled, &F) -> Result<T, PolicyError>;

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
        self.split(facts, |rt, c, f| {
            rt.block_on(routing::evaluate(&c.routing, f))
        })
        .await
    }

    pub async fn fallback(
        &self,
        facts: Vec<FallbackFacts>,
    ) -> Result<Vec<FallbackRisk>, PolicyError> {
        self.split(facts, |rt, c, f| {
            rt.block_on(fallback::evaluate(&c.fallback, f))
        })
        .await
    }

    /// Evaluates `eval` on every fact, the batch split across the threads, answers in order.
    async fn split<F, T>(&self, mut facts: Vec<F>, eval: Eval<F, T>) -> Result<Vec<T>, PolicyError>
    where
        F: Send + 'static,
        T: Send + 'static,
    {
        let source = self.source();
        let parts = if facts.len() < SPLIT_AT {
            1
        } else {
            self.senders.len()
        };
        let chunk = facts.len().div_ceil(parts).max(1);
        // Split from the back so each part keeps its order; answers are joined front to back.
        let mut chunks = Vec::with_capacity(parts);
        while facts.len() > chunk {
            let tail = facts.split_off(facts.len() - chunk);
            chunks.push(tail);
        }
        chunks.push(facts);
        chunks.reverse();
        let mut pending = Vec::with_capacity(chunks.len());
        for part in chunks {
            let (tx, rx) = oneshot::channel::<Result<Vec<T>, PolicyError>>();
            let run = move |compiled: Result<&Compiled, PolicyError>,
                            runtime: &tokio::runtime::Runtime| {
                let result =
                    compiled.and_then(|c| part.iter().map(|f| eval(runtime, c, f)).collect());
                let _ = tx.send(result);
            };
            let k = self.next.fetch_add(1, Ordering::Relaxed) % self.senders.len();
            self.senders[k]
                .send(Job {
                    source: source.clone(),
                    run: Box::new(run),
                })
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
        let decisions = ensure(&mut compiled, &job.source);
        (job.run)(decisions, &runtime);
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
