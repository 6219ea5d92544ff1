//! The service as its own process (the release binary `serve`), for what only a process can
//! show: `kill -9`, restarts, a disk that fills up. Clients here are real HTTP clients that keep
//! what the service answered 200 for, to be counted against the database afterwards.

use std::collections::HashSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{repo, shipment};

pub const BIN: &str = env!("CARGO_BIN_EXE_dispatch-risk");

/// Creates a workflow key in the database at `db` with the CLI; its secret.
pub fn workflow_key(db: &str) -> String {
    let out = Command::new(BIN)
        .args([
            "keys",
            "--database-url",
            db,
            "create",
            "--name",
            "load",
            "--role",
            "workflow",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .last()
        .unwrap()
        .to_string()
}

pub struct Process {
    pub child: Child,
    pub url: String,
}

impl Process {
    /// Starts `serve` on a free port with the committed models and policies; returns once
    /// `/healthz` answers.
    pub async fn start(db: &str, dir: &Path, extra: &[&str]) -> Process {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let bind = format!("127.0.0.1:{port}");
        let spool = dir.join("spool");
        let mut args = vec!["serve", "--bind", &bind, "--database-url", db, "--models"];
        let models = repo("models");
        let policies = repo("policies");
        let models = models.to_str().unwrap();
        let policies = policies.to_str().unwrap();
        args.extend([
            models,
            "--policies",
            policies,
            "--spool",
            spool.to_str().unwrap(),
        ]);
        args.extend(extra);
        let child = Command::new(BIN)
            .args(&args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let url = format!("http://{bind}");
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if client.get(format!("{url}/healthz")).send().await.is_ok() {
                break;
            }
            assert!(Instant::now() < deadline, "the service did not come up");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Process { child, url }
    }

    /// `kill -9`: no shutdown, no flush.
    pub fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    pub async fn readyz(&self) -> (u16, Value) {
        let r = reqwest::get(format!("{}/readyz", self.url)).await.unwrap();
        (r.status().as_u16(), r.json().await.unwrap())
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What clients were told.
#[derive(Default)]
pub struct Answers {
    /// Score ids answered 200.
    pub ok: HashSet<String>,
    /// Approval ids those answers named (every third shipment is held for credit).
    pub approvals: HashSet<String>,
    /// Statuses other than 200, with their codes.
    pub refused: Vec<(u16, String)>,
    /// Requests that got no HTTP answer (the process died, the connection was refused).
    pub unanswered: usize,
    /// The slowest refusal, for "refused quickly".
    pub slowest_refusal: Duration,
}

/// `clients` loops each sending one shipment (ids `{tag}/{client}/{n}`), or a batch of
/// `batch` shipments when `batch > 1`, until `stop` is set or the server stops answering.
pub async fn stream(
    url: &str,
    key: &str,
    tag: &str,
    clients: usize,
    batch: usize,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> Answers {
    let answers = Arc::new(Mutex::new(Answers::default()));
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (url, key, tag, stop, answers) = (
            url.to_string(),
            key.to_string(),
            tag.to_string(),
            stop.clone(),
            answers.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap();
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let (path, body) = if batch > 1 {
                    let ships: Vec<Value> = (0..batch)
                        .map(|i| held_every_third(&format!("{tag}/{c}/{n}/{i}"), i))
                        .collect();
                    ("/v1/score/batch", json!({ "shipments": ships }))
                } else {
                    ("/v1/score", held_every_third(&format!("{tag}/{c}/{n}"), n))
                };
                n += 1;
                let sent = Instant::now();
                let r = client
                    .post(format!("{url}{path}"))
                    .bearer_auth(&key)
                    .json(&body)
                    .send()
                    .await;
                let Ok(r) = r else {
                    answers.lock().unwrap().unanswered += 1;
                    // Dead or refusing: give the others a moment, then stop.
                    if stop.load(std::sync::atomic::Ordering::SeqCst) {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                };
                let status = r.status().as_u16();
                let Ok(v) = r.json::<Value>().await else {
                    answers.lock().unwrap().unanswered += 1;
                    continue;
                };
                let mut a = answers.lock().unwrap();
                if status == 200 {
                    let answers: Vec<&Value> = match v.get("scores") {
                        Some(scores) => scores.as_array().unwrap().iter().collect(),
                        None => vec![&v],
                    };
                    for s in answers {
                        a.ok.insert(s["score_id"].as_str().unwrap().to_string());
                        if let Some(id) = s["approval"]["id"].as_str() {
                            a.approvals.insert(id.to_string());
                        }
                    }
                } else {
                    a.slowest_refusal = a.slowest_refusal.max(sent.elapsed());
                    a.refused.push((
                        status,
                        v["error"]["code"].as_str().unwrap_or("").to_string(),
                    ));
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    Arc::try_unwrap(answers).ok().unwrap().into_inner().unwrap()
}

/// A shipment, held for credit (so its score opens an approval) when `n` is a multiple of 3.
fn held_every_third(id: &str, n: usize) -> Value {
    let mut s = shipment(id);
    if n.is_multiple_of(3) {
        s["credit_hold"] = json!(true);
    }
    s
}

/// Every approval id in the database at `db`.
pub async fn stored_approvals(db: &str) -> Vec<String> {
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(db).await.unwrap();
    let rows: Vec<(String,)> = sqlx::query_as("SELECT id FROM approvals")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    rows.into_iter().map(|r| r.0).collect()
}

/// Every score id in the database at `db`.
pub async fn stored_ids(db: &str) -> Vec<String> {
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(db).await.unwrap();
    let rows: Vec<(String,)> = sqlx::query_as("SELECT score_id FROM scores")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    rows.into_iter().map(|r| r.0).collect()
}

/// Shipments whose entry in `latest_scores` is not their newest score, after the store has
/// been opened again (which folds in what a kill left out); with the number of shipments.
pub async fn latest_not_newest(db: &str) -> (Vec<String>, usize) {
    let store = dispatch_risk::store::Store::connect(db).await.unwrap();
    let scores: Vec<(String, String, String)> =
        sqlx::query_as("SELECT shipment_id, created_at, score_id FROM scores")
            .fetch_all(&store.pool)
            .await
            .unwrap();
    let mut newest: std::collections::HashMap<String, (String, String)> = Default::default();
    for (shipment, at, id) in scores {
        let e = newest.entry(shipment).or_default();
        *e = std::cmp::max(e.clone(), (at, id));
    }
    let latest: Vec<(String, String)> =
        sqlx::query_as("SELECT shipment_id, score_id FROM latest_scores")
            .fetch_all(&store.pool)
            .await
            .unwrap();
    let latest: std::collections::HashMap<String, String> = latest.into_iter().collect();
    let wrong = newest
        .iter()
        .filter(|(shipment, (_, id))| latest.get(*shipment) != Some(id))
        .map(|(shipment, _)| shipment.clone())
        .collect();
    (wrong, newest.len())
}

/// The answered ids missing from `stored`.
pub fn missing<'a>(answered: &'a HashSet<String>, stored: &[String]) -> Vec<&'a String> {
    let stored: HashSet<&String> = stored.iter().collect();
    answered.iter().filter(|id| !stored.contains(id)).collect()
}
