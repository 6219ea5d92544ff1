//! The service under load, against its peer, in one run: the release binary (`serve` with
//! recording on SQLite) and the FastAPI + uvicorn + LightGBM peer in `benches/peer/` each get
//! the same requests on loopback from this load generator.
//!
//! - closed loop: `--connections` clients send `/v1/score` back to back for `--seconds`;
//! - fixed rate: `--rate` requests/s on a schedule, latency measured from the scheduled send
//!   time (no coordinated omission);
//! - batches: `/v1/score/batch` with 10,000 shipments, one after another.
//!
//! - the disk alone: 4 KiB writes in place, each followed by `fdatasync`, back to back for
//!   `--seconds` in the directory that holds the databases, after each dispatch-risk server's
//!   phases. The recorder syncs the WAL before it answers, so the disk's sync tail is the
//!   floor of the answers' tail: a fixed-rate p99 over the bar in a round whose disk stalled
//!   says which one to blame.
//!
//! Each server gets a fresh database, removed (and the disk synced) once it stops, so no
//! server's syncs wait behind the previous one's unwritten pages. Each phase starts once the
//! server's recorder has written the previous phase's records;
//! the batch row also gives the rate until the batches' records are all written. Both servers
//! are warmed up first with a second of single scores and one batch, which are not counted.
//!
//! `cargo bench --bench service [-- --seconds 15 --connections 32 --rate 1000 --no-peer]`;
//! `--baseline PATH --rounds N` also measures an earlier build (its release binary), this
//! build and it alternating for N rounds, and prints the ratios of their medians;
//! `--candidate PATH` measures that binary in this build's place; `--approvals-share 0.5`
//! sends half the shipments with a credit hold, so each opens or updates an approval.
//! Shipments are the last rows of `data/samples/history_sample.csv`, outcomes removed. The peer
//! needs `pip install -r benches/peer/requirements.txt`; without uvicorn it is skipped.

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};

struct Options {
    seconds: f64,
    connections: usize,
    rate: f64,
    batches: usize,
    peer: bool,
    /// An earlier build of dispatch-risk, measured in the same run, alternating with this one.
    baseline: Option<PathBuf>,
    /// The build measured as "dispatch-risk" (default: this one's binary).
    candidate: Option<PathBuf>,
    /// The share of shipments sent with a credit hold, which the routing table holds for a
    /// person: each of them opens (or updates) an approval.
    approvals_share: f64,
    rounds: usize,
}

fn options() -> Options {
    let args: Vec<String> = std::env::args().collect();
    let value = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .map(|v| {
                v.parse::<f64>()
                    .unwrap_or_else(|_| panic!("{name} takes a number"))
            })
    };
    Options {
        seconds: value("--seconds").unwrap_or(10.0),
        connections: value("--connections").unwrap_or(32.0) as usize,
        rate: value("--rate").unwrap_or(1000.0),
        batches: value("--batches").unwrap_or(8.0) as usize,
        peer: !args.iter().any(|a| a == "--no-peer"),
        baseline: args
            .iter()
            .position(|a| a == "--baseline")
            .and_then(|i| args.get(i + 1))
            .map(PathBuf::from),
        candidate: args
            .iter()
            .position(|a| a == "--candidate")
            .and_then(|i| args.get(i + 1))
            .map(PathBuf::from),
        approvals_share: value("--approvals-share").unwrap_or(0.0),
        rounds: value("--rounds").unwrap_or(1.0) as usize,
    }
}

fn repo(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

/// Shipments as workflows send them: the sample's last rows without outcomes.
fn shipments(n: usize) -> Vec<Value> {
    let mut reader = csv::Reader::from_path(repo("data/samples/history_sample.csv")).unwrap();
    let headers = reader.headers().unwrap().clone();
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.unwrap()).collect();
    let numbers = dispatch_risk_training::data::contract::NUMERIC;
    rows[rows.len().saturating_sub(n)..]
        .iter()
        .map(|r| {
            let mut m = Map::new();
            for (h, v) in headers.iter().zip(r.iter()) {
                if v.is_empty() || ["delivered_at", "shipped_at", "notes"].contains(&h) {
                    continue;
                }
                let value = if numbers.contains(&h) {
                    json!(v.parse::<f64>().unwrap())
                } else if h == "hazardous" || h == "temperature_controlled" {
                    json!(v == "true")
                } else {
                    json!(v)
                };
                m.insert(h.to_string(), value);
            }
            Value::Object(m)
        })
        .collect()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Server {
    name: &'static str,
    url: String,
    key: Option<String>,
    child: Child,
    /// The server's database file (SQLite), removed with its WAL once it stops.
    database: Option<PathBuf>,
}

impl Drop for Server {
    /// Stops the server and everything it started: each server leads its own process group,
    /// and uvicorn's workers, killed with their parent alone, lived on and loaded later runs.
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.wait();
        // The next server must not pay for this one's writes: a stopped server's pages still
        // on their way to the disk would load the next server's syncs. Removing the files
        // drops their unwritten pages (and a run's hundreds of MB); the sync writes out
        // whatever else is pending.
        if let Some(db) = &self.database {
            for suffix in ["", "-wal", "-shm"] {
                let mut file = db.clone().into_os_string();
                file.push(suffix);
                let _ = std::fs::remove_file(file);
            }
            let _ = Command::new("sync").status();
        }
    }
}

/// Peak resident memory of a process and its children (uvicorn's workers), in MiB.
fn peak_rss_mib(pid: u32) -> f64 {
    let mut pids = vec![pid];
    if let Ok(children) = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")) {
        pids.extend(
            children
                .split_whitespace()
                .filter_map(|p| p.parse::<u32>().ok()),
        );
    }
    pids.iter()
        .filter_map(|p| std::fs::read_to_string(format!("/proc/{p}/status")).ok())
        .filter_map(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .sum::<f64>()
        / 1024.0
}

async fn wait_up(url: &str) {
    let client = reqwest::Client::new();
    for _ in 0..600 {
        if let Ok(r) = client.get(format!("{url}/healthz")).send().await {
            if r.status().is_success() || r.status().as_u16() == 404 {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{url} did not come up");
}

fn start_dispatch_risk(dir: &Path, bin: &Path, name: &'static str) -> Server {
    // A fresh database per run: runs must not inherit each other's rows.
    let database = dir.join(format!("bench-{}.sqlite3", rand_suffix()));
    let db = format!("sqlite:{}", database.display());
    let out = Command::new(bin)
        .args([
            "keys",
            "--database-url",
            &db,
            "create",
            "--name",
            "bench",
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
    let key = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .last()
        .unwrap()
        .to_string();
    let port = free_port();
    let child = Command::new(bin)
        .args([
            "serve",
            "--bind",
            &format!("127.0.0.1:{port}"),
            "--database-url",
            &db,
        ])
        .current_dir(repo(""))
        .env("RUST_LOG", "warn")
        .process_group(0)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    Server {
        name,
        url: format!("http://127.0.0.1:{port}"),
        key: Some(key),
        child,
        database: Some(database),
    }
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

fn start_peer(dir: &Path) -> Option<Server> {
    let port = free_port();
    let child = Command::new("uvicorn")
        .args([
            "--app-dir",
            repo("benches/peer").to_str().unwrap(),
            "app:app",
            "--workers",
            "2",
            "--port",
            &port.to_string(),
            "--no-access-log",
            "--log-level",
            "warning",
        ])
        .env("PEER_MODEL_DIR", repo("models/default"))
        .env("PEER_DB", dir.join("peer.sqlite3"))
        .process_group(0)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    match child {
        Ok(child) => Some(Server {
            name: "FastAPI peer",
            url: format!("http://127.0.0.1:{port}"),
            key: None,
            child,
            database: None,
        }),
        Err(e) => {
            eprintln!("peer skipped: cannot start uvicorn ({e}); pip install -r benches/peer/requirements.txt");
            None
        }
    }
}

#[derive(Debug, Default, Clone)]
struct Run {
    requests: usize,
    errors: usize,
    seconds: f64,
    latencies_us: Vec<u64>,
}

impl Run {
    fn per_second(&self) -> f64 {
        self.requests as f64 / self.seconds
    }

    fn percentile_ms(&self, q: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return f64::NAN;
        }
        let mut v = self.latencies_us.clone();
        v.sort_unstable();
        let i = ((v.len() as f64 - 1.0) * q).round() as usize;
        v[i] as f64 / 1000.0
    }
}

fn request(
    client: &reqwest::Client,
    server: &Server,
    path: &str,
    body: Vec<u8>,
) -> reqwest::RequestBuilder {
    let mut r = client
        .post(format!("{}{path}", server.url))
        .header("content-type", "application/json")
        .body(body);
    if let Some(k) = &server.key {
        r = r.bearer_auth(k);
    }
    r
}

async fn closed_loop(
    server: &Server,
    bodies: Arc<Vec<Vec<u8>>>,
    connections: usize,
    seconds: f64,
) -> Run {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(connections)
        .build()
        .unwrap();
    let next = Arc::new(AtomicUsize::new(0));
    let until = Instant::now() + Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let (client, bodies, next) = (client.clone(), bodies.clone(), next.clone());
        let req = request(&client, server, "/v1/score", Vec::new());
        tasks.push(tokio::spawn(async move {
            let mut run = Run::default();
            while Instant::now() < until {
                let i = next.fetch_add(1, Ordering::Relaxed) % bodies.len();
                let r = req.try_clone().unwrap().body(bodies[i].clone());
                let t = Instant::now();
                match r.send().await {
                    Ok(resp) if resp.status().is_success() => {
                        let _ = resp.bytes().await;
                        run.requests += 1;
                        run.latencies_us.push(t.elapsed().as_micros() as u64);
                    }
                    failed => {
                        if run.errors < 3 {
                            report_failure("score", failed).await;
                        }
                        run.errors += 1;
                    }
                }
            }
            run
        }));
    }
    let mut total = Run::default();
    for t in tasks {
        let r = t.await.unwrap();
        total.requests += r.requests;
        total.errors += r.errors;
        total.latencies_us.extend(r.latencies_us);
    }
    total.seconds = started.elapsed().as_secs_f64();
    total
}

/// Says why a request failed, so a row's error count can be read.
async fn report_failure(what: &str, failed: reqwest::Result<reqwest::Response>) {
    match failed {
        Ok(r) => {
            let status = r.status();
            let body = r.text().await.unwrap_or_default();
            eprintln!(
                "{what}: {status} {}",
                body.chars().take(200).collect::<String>()
            );
        }
        Err(e) => eprintln!("{what}: {e}"),
    }
}

async fn fixed_rate(server: &Server, bodies: Arc<Vec<Vec<u8>>>, rate: f64, seconds: f64) -> Run {
    let client = reqwest::Client::new();
    let n = (rate * seconds) as usize;
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        let due = started + Duration::from_secs_f64(i as f64 / rate);
        tokio::time::sleep_until(due.into()).await;
        let r = request(
            &client,
            server,
            "/v1/score",
            bodies[i % bodies.len()].clone(),
        );
        tasks.push(tokio::spawn(async move {
            match r.send().await {
                Ok(resp) if resp.status().is_success() => {
                    let _ = resp.bytes().await;
                    Some(due.elapsed().as_micros() as u64)
                }
                failed => {
                    report_failure("fixed-rate score", failed).await;
                    None
                }
            }
        }));
    }
    let mut run = Run::default();
    for t in tasks {
        match t.await.unwrap() {
            Some(us) => {
                run.requests += 1;
                run.latencies_us.push(us);
            }
            None => run.errors += 1,
        }
    }
    run.seconds = started.elapsed().as_secs_f64();
    run
}

async fn batches(server: &Server, body: Vec<u8>, shipments: usize, count: usize) -> Run {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(300))
        .build()
        .unwrap();
    let started = Instant::now();
    let mut run = Run::default();
    for _ in 0..count {
        let t = Instant::now();
        match request(&client, server, "/v1/score/batch", body.clone())
            .send()
            .await
        {
            Ok(r) if r.status().is_success() => {
                let _ = r.bytes().await;
                run.requests += shipments;
                run.latencies_us.push(t.elapsed().as_micros() as u64);
            }
            Ok(r) => {
                eprintln!("batch: {}", r.status());
                run.errors += 1;
            }
            Err(e) => {
                eprintln!("batch: {e}");
                run.errors += 1;
            }
        }
    }
    run.seconds = started.elapsed().as_secs_f64();
    run
}

struct Measured {
    name: &'static str,
    /// The disk's syncs measured right after this server's phases (dispatch-risk only).
    disk: Option<Run>,
    closed: Run,
    fixed: Run,
    batch: Run,
    /// Batch shipments per second until every one was answered and recorded.
    recorded_per_second: f64,
    rss_mib: f64,
}

/// Waits a second, then until the server's recorder has written everything it accepted, so one
/// phase's writes do not load the next.
async fn settle(server: &Server) {
    tokio::time::sleep(Duration::from_secs(1)).await;
    drain(server).await;
}

/// Waits until the server's recorder has written everything it accepted (from `/metrics`; the
/// peer records before it answers and has no backlog), polling every 20 ms.
async fn drain(server: &Server) {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(300);
    while Instant::now() < deadline {
        let Ok(r) = client.get(format!("{}/metrics", server.url)).send().await else {
            return;
        };
        let text = r.text().await.unwrap_or_default();
        let Some(pending) = text
            .lines()
            .find_map(|l| l.strip_prefix("dispatch_risk_recorder_pending "))
        else {
            return;
        };
        if pending.trim() == "0" {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!("{}: the recorder did not drain in 300 s", server.name);
}

async fn measure(
    server: &Server,
    o: &Options,
    singles: Arc<Vec<Vec<u8>>>,
    batch_body: Vec<u8>,
    batch_n: usize,
) -> Measured {
    wait_up(&server.url).await;
    // Warm up: caches, connections, the first compiled policies, and one batch: a server that
    // has been running has the memory a batch needs (the first batch of a fresh process took
    // ~1.4x as long as the next ones for dispatch-risk on the machine of 2026-11-27).
    let _ = closed_loop(server, singles.clone(), 4, 1.0).await;
    let _ = batches(server, batch_body.clone(), batch_n, 1).await;
    settle(server).await;
    let closed = closed_loop(server, singles.clone(), o.connections, o.seconds).await;
    settle(server).await;
    let fixed = fixed_rate(server, singles.clone(), o.rate, o.seconds).await;
    settle(server).await;
    let batch = batches(server, batch_body, batch_n, o.batches).await;
    // The batches' records still queued when the last answer came back: the time to write
    // them counts in the recorded rate (and only that: `settle`'s pause would count too).
    let drained = Instant::now();
    drain(server).await;
    let recorded_per_second =
        batch.requests as f64 / (batch.seconds + drained.elapsed().as_secs_f64());
    Measured {
        name: server.name,
        disk: None,
        closed,
        fixed,
        batch,
        recorded_per_second,
        rss_mib: peak_rss_mib(server.child.id()),
    }
}

/// Times `fdatasync` after each 4 KiB write, cycling over a 4 MiB file as the WAL is reused in
/// place, back to back for `seconds`.
fn disk_probe(dir: &Path, seconds: f64) -> Run {
    use std::io::{Seek, SeekFrom, Write};
    let path = dir.join("disk-probe");
    let mut file = std::fs::File::create(&path).unwrap();
    let page = vec![0x5a_u8; 4096];
    for _ in 0..1024 {
        file.write_all(&page).unwrap();
    }
    file.sync_all().unwrap();
    let mut run = Run::default();
    let started = Instant::now();
    let mut offset = 0_u64;
    while started.elapsed().as_secs_f64() < seconds {
        file.seek(SeekFrom::Start(offset)).unwrap();
        file.write_all(&page).unwrap();
        let t = Instant::now();
        file.sync_data().unwrap();
        run.latencies_us.push(t.elapsed().as_micros() as u64);
        run.requests += 1;
        offset = (offset + 4096) % (4096 * 1024);
    }
    run.seconds = started.elapsed().as_secs_f64();
    let _ = std::fs::remove_file(path);
    run
}

/// How many of a run's latencies were over `ms`.
fn over(run: &Run, ms: f64) -> usize {
    let limit = (ms * 1000.0) as u64;
    run.latencies_us.iter().filter(|&&us| us > limit).count()
}

fn main() {
    let o = options();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut sample = shipments(10_000);
    // Every shipment whose running share crosses a whole number is held: spread evenly.
    for (i, s) in sample.iter_mut().enumerate() {
        let share = o.approvals_share;
        if ((i + 1) as f64 * share).floor() > (i as f64 * share).floor() {
            s["credit_hold"] = json!(true);
        }
    }
    let singles: Arc<Vec<Vec<u8>>> = Arc::new(
        sample
            .iter()
            .map(|s| serde_json::to_vec(s).unwrap())
            .collect(),
    );
    let batch_body = serde_json::to_vec(&json!({ "shipments": sample })).unwrap();
    println!(
        "{} s per run, {} connections closed-loop, {} req/s fixed rate, {} batches of {}; load generator on the same 2 cores",
        o.seconds, o.connections, o.rate, o.batches, sample.len()
    );
    let mut results = Vec::new();
    let ours = o
        .candidate
        .clone()
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_dispatch-risk")));
    let mut servers: Vec<(&'static str, PathBuf)> = vec![("dispatch-risk", ours)];
    if let Some(b) = &o.baseline {
        servers.push(("baseline", b.clone()));
    }
    // A B A B: each round measures this build and then the baseline, so a slow phase of the
    // machine falls on both.
    for _ in 0..o.rounds.max(1) {
        for (name, bin) in &servers {
            let server = start_dispatch_risk(dir.path(), bin, name);
            let mut measured = runtime.block_on(measure(
                &server,
                &o,
                singles.clone(),
                batch_body.clone(),
                sample.len(),
            ));
            drop(server);
            if *name == "dispatch-risk" {
                measured.disk = Some(disk_probe(dir.path(), o.seconds));
            }
            results.push(measured);
        }
    }
    if o.baseline.is_some() {
        let median = |name: &str, f: &dyn Fn(&Measured) -> f64| {
            let mut v: Vec<f64> = results.iter().filter(|m| m.name == name).map(f).collect();
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let ratio =
            |f: &dyn Fn(&Measured) -> f64| median("dispatch-risk", f) / median("baseline", f);
        println!(
            "medians over {} rounds, this build / baseline: throughput {:.2}x, closed-loop p99 {:.2}x, fixed-rate p99 {:.2}x, batch answered {:.2}x, batch recorded {:.2}x",
            o.rounds.max(1),
            ratio(&|m| m.closed.per_second()),
            ratio(&|m| m.closed.percentile_ms(0.99)),
            ratio(&|m| m.fixed.percentile_ms(0.99)),
            ratio(&|m| m.batch.per_second()),
            ratio(&|m| m.recorded_per_second),
        );
    }
    if o.peer {
        if let Some(peer) = start_peer(dir.path()) {
            results.push(runtime.block_on(measure(
                &peer,
                &o,
                singles.clone(),
                batch_body.clone(),
                sample.len(),
            )));
        }
    }
    println!();
    println!("| | score req/s (closed loop) | p50 / p99 ms | p99 ms at {} req/s (achieved; answers over 10 ms) | batch shipments/s answered (and recorded) | errors | peak RSS MiB | disk alone: fdatasync p99 / max ms (syncs over 10 ms of all) |", o.rate);
    println!("|---|---|---|---|---|---|---|---|");
    for m in &results {
        let disk = m.disk.as_ref().map_or("".to_string(), |d| {
            format!(
                "{:.2} / {:.1} ({} of {})",
                d.percentile_ms(0.99),
                d.percentile_ms(1.0),
                over(d, 10.0),
                d.requests
            )
        });
        println!(
            "| {} | {:.0} | {:.2} / {:.2} | {:.2} ({:.0}; {}) | {:.0} ({:.0}) | {} | {:.0} | {} |",
            m.name,
            m.closed.per_second(),
            m.closed.percentile_ms(0.5),
            m.closed.percentile_ms(0.99),
            m.fixed.percentile_ms(0.99),
            m.fixed.per_second(),
            over(&m.fixed, 10.0),
            m.batch.per_second(),
            m.recorded_per_second,
            m.closed.errors + m.fixed.errors + m.batch.errors,
            m.rss_mib,
            disk
        );
    }
    let ours = results.iter().find(|m| m.name == "dispatch-risk");
    let peer = results.iter().find(|m| m.name == "FastAPI peer");
    if let (Some(ours), Some(peer)) = (ours, peer) {
        println!();
        println!(
            "ratios dispatch-risk / peer: throughput {:.1}x, closed-loop p99 {:.2}x, fixed-rate p99 {:.2}x, batch {:.1}x",
            ours.closed.per_second() / peer.closed.per_second(),
            ours.closed.percentile_ms(0.99) / peer.closed.percentile_ms(0.99),
            ours.fixed.percentile_ms(0.99) / peer.fixed.percentile_ms(0.99),
            ours.batch.per_second() / peer.batch.per_second(),
        );
    }
}
