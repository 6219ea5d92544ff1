//! What the service answered 200 for is in the database: through `kill -9` (single scores and
//! 10,000-shipment batches), a PostgreSQL outage (scores spool locally and are replayed once,
//! also after a `kill -9` while spooling), and a full disk (503 at once, recovery without a
//! restart). The service runs as its own process; the clients count what they were told.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::process::{
    latest_not_newest, missing, stored_ids, stream, workflow_key, Answers, Process,
};
use common::proxy::Proxy;
use common::{postgres_database, shipment};

/// Streams from `clients` loops for `for_` and then kills the process with SIGKILL while they
/// are still sending; what they were told.
async fn kill_during(
    p: &mut Process,
    key: &str,
    tag: &str,
    clients: usize,
    batch: usize,
    for_: Duration,
) -> Answers {
    let (stop, task) = load(p, key, tag, clients, batch);
    tokio::time::sleep(for_).await;
    p.kill();
    finish(stop, task).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_score_answered_survives_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!(
        "sqlite:{}?mode=rwc",
        dir.path().join("kill.sqlite3").display()
    );
    let key = workflow_key(&db);
    let mut answered = std::collections::HashSet::new();
    let mut approvals = std::collections::HashSet::new();
    // Three rounds here; the closing figures ran KILL_ROUNDS=10.
    let rounds: usize = std::env::var("KILL_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3);
    for round in 0..rounds {
        let mut p = Process::start(&db, dir.path(), &[]).await;
        let a = kill_during(
            &mut p,
            &key,
            &format!("K{round}"),
            16,
            1,
            Duration::from_millis(1500),
        )
        .await;
        assert!(
            a.ok.len() > 100,
            "round {round}: only {} answers",
            a.ok.len()
        );
        assert!(
            a.refused.is_empty(),
            "round {round}: {:?}",
            &a.refused[..a.refused.len().min(5)]
        );
        let round_answers = a.ok.len();
        answered.extend(a.ok);
        approvals.extend(a.approvals);
        let stored_approvals = common::process::stored_approvals(&db).await;
        let lost_approvals = missing(&approvals, &stored_approvals);
        assert!(
            !approvals.is_empty() && lost_approvals.is_empty(),
            "round {round}: {} of {} answered approvals lost",
            lost_approvals.len(),
            approvals.len()
        );
        let stored = stored_ids(&db).await;
        let lost = missing(&answered, &stored);
        eprintln!(
            "kill -9 round {round}: {round_answers} answered 200, {} answered in all, {} rows, {} lost",
            answered.len(),
            stored.len(),
            lost.len()
        );
        assert!(
            lost.is_empty(),
            "round {round}: {} of {} answered scores lost, e.g. {:?}",
            lost.len(),
            answered.len(),
            &lost[..lost.len().min(3)]
        );
        // The latest scores a kill left unfolded are folded in when the store opens again.
        let (wrong, shipments) = latest_not_newest(&db).await;
        assert!(
            wrong.is_empty(),
            "round {round}: {} of {shipments} shipments' latest score is not their newest, e.g. {:?}",
            wrong.len(),
            &wrong[..wrong.len().min(3)]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_batch_answered_survives_kill_9_and_none_is_half_written() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!(
        "sqlite:{}?mode=rwc",
        dir.path().join("kill.sqlite3").display()
    );
    let key = workflow_key(&db);
    let mut p = Process::start(&db, dir.path(), &[]).await;
    // Long enough for several batches to be answered and one to be in flight.
    let a = kill_during(&mut p, &key, "B", 2, 10_000, Duration::from_secs(6)).await;
    assert!(a.ok.len() >= 10_000, "only {} answers", a.ok.len());
    let stored = stored_ids(&db).await;
    let lost = missing(&a.ok, &stored);
    assert!(
        lost.is_empty(),
        "{} of {} answered scores lost",
        lost.len(),
        a.ok.len()
    );
    // A batch is one transaction: all of its rows or none.
    assert_eq!(
        stored.len() % 10_000,
        0,
        "{} rows: a batch was half written",
        stored.len()
    );
}

/// Sends from `clients` loops until `stop` (batches of `batch` when it is over 1); returns
/// what was answered (tags keep the phases' shipment ids apart).
fn load(
    p: &Process,
    key: &str,
    tag: &str,
    clients: usize,
    batch: usize,
) -> (Arc<AtomicBool>, tokio::task::JoinHandle<Answers>) {
    let stop = Arc::new(AtomicBool::new(false));
    let (url, key, tag, s) = (
        p.url.clone(),
        key.to_string(),
        tag.to_string(),
        stop.clone(),
    );
    let task = tokio::spawn(async move { stream(&url, &key, &tag, clients, batch, s).await });
    (stop, task)
}

async fn finish(stop: Arc<AtomicBool>, task: tokio::task::JoinHandle<Answers>) -> Answers {
    stop.store(true, Ordering::SeqCst);
    task.await.unwrap()
}

async fn finish_after(p: &Process, key: &str, tag: &str, after: Duration) -> Answers {
    let (stop, task) = load(p, key, tag, 1, 1);
    tokio::time::sleep(after).await;
    finish(stop, task).await
}

/// With no room to record (`what`): scores were refused with 503 `store_full`, at once, and
/// readiness says not ready.
async fn refused_for_room(what: &str, a: &Answers, p: &Process) {
    assert!(
        a.refused
            .iter()
            .any(|(s, c)| *s == 503 && c == "store_full"),
        "{what}: no store_full in {} answers and {:?}",
        a.ok.len(),
        &a.refused[..a.refused.len().min(5)]
    );
    // The bar is 100 ms (met here alone: the figure printed); the suite's other tests share
    // the two cores, so the test holds refusals to "at once, not after a timeout".
    eprintln!("{what}: slowest refusal {:?}", a.slowest_refusal);
    assert!(
        a.slowest_refusal < Duration::from_secs(1),
        "{what}: a refusal took {:?}",
        a.slowest_refusal
    );
    let (status, ready) = p.readyz().await;
    assert_eq!(
        (status, ready["status"].as_str()),
        (503, Some("not_ready")),
        "{what}: {ready}"
    );
}

/// Waits until the process's spool is empty (replayed into the database).
/// Every approval an answer named is in the database (opened with its score, spooled with it
/// while PostgreSQL was away).
async fn approvals_kept(db: &str, approvals: &std::collections::HashSet<String>) {
    let stored = common::process::stored_approvals(db).await;
    let lost = missing(approvals, &stored);
    assert!(
        !approvals.is_empty() && lost.is_empty(),
        "{} of {} answered approvals lost",
        lost.len(),
        approvals.len()
    );
}

async fn drained(p: &Process, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let (_, r) = p.readyz().await;
        if r["spooled_bytes"] == 0 {
            return;
        }
        assert!(Instant::now() < deadline, "the spool was not replayed: {r}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scores_keep_answering_while_postgres_is_away_and_land_once_it_is_back() {
    let Some(direct) = postgres_database("scores_keep_answering_while_postgres_is_away").await
    else {
        return;
    };
    let (prefix, name) = direct.rsplit_once('/').unwrap();
    let host = prefix.rsplit_once('@').map_or(prefix, |(_, h)| h);
    let target = tokio::net::lookup_host(host).await.unwrap().next().unwrap();
    let proxy = Proxy::start(target).await;
    let user = prefix
        .split("://")
        .nth(1)
        .and_then(|s| s.split_once('@'))
        .map_or("postgres", |(u, _)| u);
    let via_proxy = format!("postgres://{user}@{}/{name}", proxy.addr);
    let key = workflow_key(&direct);
    let dir = tempfile::tempdir().unwrap();
    let mut answered = std::collections::HashSet::new();

    // An outage and its end, with the service running throughout.
    let mut p = Process::start(&via_proxy, dir.path(), &[]).await;
    let (stop, task) = load(&p, &key, "O1", 8, 1);
    tokio::time::sleep(Duration::from_millis(700)).await;
    proxy.cut();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (status, ready) = p.readyz().await;
    assert_eq!(status, 200, "spooling is still ready: {ready}");
    assert!(ready["spooled_bytes"].as_u64().unwrap() > 0, "{ready}");
    proxy.restore();
    tokio::time::sleep(Duration::from_millis(700)).await;
    let a = finish(stop, task).await;
    assert!(
        a.refused.is_empty() && a.unanswered == 0,
        "refused {:?}, unanswered {}",
        &a.refused[..a.refused.len().min(5)],
        a.unanswered
    );
    answered.extend(a.ok);
    let mut approvals = a.approvals;
    drained(&p, Duration::from_secs(30)).await;
    approvals_kept(&direct, &approvals).await;
    let stored = stored_ids(&direct).await;
    let lost = missing(&answered, &stored);
    assert!(
        lost.is_empty(),
        "{} of {} answered scores lost",
        lost.len(),
        answered.len()
    );
    assert_eq!(
        stored.len(),
        answered.len(),
        "each answered score once, nothing else"
    );

    // kill -9 while spooling: the spool is replayed when the service starts again.
    let (stop, task) = load(&p, &key, "O2", 8, 1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    proxy.cut();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    p.kill();
    let a = finish(stop, task).await;
    assert!(
        a.refused.is_empty(),
        "{:?}",
        &a.refused[..a.refused.len().min(5)]
    );
    answered.extend(a.ok);
    approvals.extend(a.approvals);
    proxy.restore();
    let p = Process::start(&via_proxy, dir.path(), &[]).await;
    drained(&p, Duration::from_secs(30)).await;
    approvals_kept(&direct, &approvals).await;
    let stored = stored_ids(&direct).await;
    let lost = missing(&answered, &stored);
    assert!(
        lost.is_empty(),
        "after kill -9: {} of {} answered scores lost",
        lost.len(),
        answered.len()
    );
    // Rows beyond the answered ones are requests in flight at the kill (committed or spooled,
    // never answered); none is there twice (score_id is the key) and none is invented.
    assert!(
        stored.len() >= answered.len() && stored.len() <= answered.len() + 8,
        "{} rows for {} answers",
        stored.len(),
        answered.len()
    );

    // A spool that is full refuses at once, says so in readiness, and recovers by itself.
    drop(p);
    let small = Process::start(&via_proxy, dir.path(), &["--spool-max-bytes", "40000"]).await;
    // One answer first: a key is checked against the database once, then trusted while it is
    // away (a new instance cannot check a key it has never seen: 503 then).
    let warm = finish_after(&small, &key, "O3w", Duration::from_millis(200)).await;
    assert!(warm.refused.is_empty() && !warm.ok.is_empty());
    answered.extend(warm.ok);
    proxy.cut();
    let (stop, task) = load(&small, &key, "O3", 4, 1);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let a = finish(stop, task).await;
    assert!(a.refused.iter().all(|(s, _)| *s == 503));
    refused_for_room("spool full", &a, &small).await;
    answered.extend(a.ok);
    proxy.restore();
    drained(&small, Duration::from_secs(30)).await;
    let (status, _) = small.readyz().await;
    assert_eq!(status, 200, "ready again once the spool is replayed");
    let stored = stored_ids(&direct).await;
    assert!(missing(&answered, &stored).is_empty());
}

/// SQLite on a 4 MiB tmpfs: mounting one needs root; elsewhere the test says it was skipped.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(dir: &std::path::Path) -> Option<Tmpfs> {
        let at = dir.join("small");
        std::fs::create_dir_all(&at).unwrap();
        let ok = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                "size=4m",
                "tmpfs",
                at.to_str().unwrap(),
            ])
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(Tmpfs(at))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_at_once_and_recovers_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let Some(fs) = Tmpfs::mount(dir.path()) else {
        assert!(
            std::env::var_os("REQUIRE_TMPFS").is_none(),
            "REQUIRE_TMPFS is set but tmpfs cannot be mounted"
        );
        eprintln!("a_full_disk_refuses_at_once: skipped: cannot mount a tmpfs here (needs root)");
        return;
    };
    let db = format!("sqlite:{}?mode=rwc", fs.0.join("full.sqlite3").display());
    let key = workflow_key(&db);
    let p = Process::start(&db, dir.path(), &[]).await;
    // Another file takes all but 1 MiB, which the scores then fill (each single-row commit
    // adds a few 16 KiB pages to the WAL).
    let filler = fs.0.join("filler");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&filler).unwrap();
        let mut room = 0u64;
        let chunk = vec![0u8; 64 * 1024];
        while f.write_all(&chunk).and_then(|()| f.sync_all()).is_ok() {
            room += chunk.len() as u64;
        }
        f.set_len(room.saturating_sub(1 << 20)).unwrap();
    }
    let (stop, task) = load(&p, &key, "F", 4, 1);
    let deadline = Instant::now() + Duration::from_secs(20);
    while p.readyz().await.0 != 503 {
        assert!(Instant::now() < deadline, "the disk never filled");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let a = finish(stop, task).await;
    refused_for_room("disk full", &a, &p).await;
    let stored = stored_ids(&db).await;
    // Once a commit failed on a full disk, sqlx had nested every later transaction in the
    // one SQLite kept open: answered 200 and never committed. This caught it.
    assert!(
        missing(&a.ok, &stored).is_empty(),
        "an answered score is missing"
    );
    // Room again: the next scores are answered and stored, the same process.
    std::fs::remove_file(&filler).unwrap();
    let client = reqwest::Client::new();
    let r = client
        .post(format!("{}/v1/score", p.url))
        .bearer_auth(&key)
        .json(&shipment("F/after"))
        .send()
        .await
        .unwrap();
    let status = r.status();
    let answer = r.json::<serde_json::Value>().await.unwrap();
    assert_eq!(status, 200, "{answer}");
    let id = answer["score_id"].as_str().unwrap().to_string();
    assert!(stored_ids(&db).await.contains(&id));
    let deadline = Instant::now() + Duration::from_secs(10);
    while p.readyz().await.0 != 200 {
        assert!(Instant::now() < deadline, "never ready again");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
