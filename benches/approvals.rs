//! The approval queue at size: the manager's queue page over real HTTP with 10,000 pending
//! approvals (p50/p95 of 200 loads, and the query plan of its list), and `audit verify` over
//! 1,000,000 audit rows. On SQLite; also on PostgreSQL when `BENCH_DATABASE_URL` names a server
//! (a database is created there and dropped after).
//!
//! `cargo bench --bench approvals [-- --pending 10000 --audit-rows 1000000 --loads 200]`

use std::time::{Duration, Instant};

use dispatch_risk::store::audit::{Actor, AuditEntry};
use dispatch_risk::store::Store;
use dispatch_risk::{Application, ServeConfig};

fn value(name: &str, default: f64) -> f64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn repo(p: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

/// `n` pending approvals, spread over queues, roles, warehouses, due times and risks.
async fn fill_approvals(store: &Store, n: usize) {
    let mut tx = store.pool.begin().await.unwrap();
    for i in 0..n {
        let due = format!(
            "2026-12-0{}T{:02}:{:02}:00.000000Z",
            1 + i % 5,
            i % 24,
            i % 60
        );
        sqlx::query(
            "INSERT INTO approvals (id, shipment_id, state, version, queue, approver_role, \
             reason_codes, opened_at, due_at, expires_at, updated_at, score_id, delay_risk, \
             risk_band, recommended_carrier, warehouse, customer_tier, order_value, \
             approvals_needed) VALUES ($1, $2, 'pending', 1, $3, $4, '[\"critical_risk\"]', \
             '2026-12-01T00:00:00.000000Z', $5, '2026-12-09T00:00:00.000000Z', \
             '2026-12-01T00:00:00.000000Z', $6, $7, 'high', 'NordFreight', $8, 'standard', \
             1000.0, 1)",
        )
        .bind(format!("apr_bench_{i:08}"))
        .bind(format!("WH/OUT/{i:08}"))
        .bind(if i % 3 == 0 {
            "exception"
        } else {
            "priority_approval"
        })
        .bind(
            [
                "dispatch_manager",
                "credit_controller",
                "compliance_manager",
            ][i % 3],
        )
        .bind(due)
        .bind(format!("sc_bench_{i:08}"))
        .bind((i % 1000) as f64 / 1000.0)
        .bind(["WH-EAST", "WH-WEST", "WH-NORTH", "WH-SOUTH"][i % 4])
        .execute(&mut *tx)
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
}

async fn fill_audit(store: &Store, rows: usize) {
    let chunk = 10_000;
    let mut written = 0;
    while written < rows {
        let n = chunk.min(rows - written);
        let entries: Vec<AuditEntry> = (0..n)
            .map(|i| {
                AuditEntry::new(
                    "2026-12-01T00:00:00.000000Z",
                    Actor::key("key_bench"),
                    "approval.opened",
                )
                .subject("approval", &format!("apr_{}", written + i))
                .change(
                    None,
                    Some(serde_json::json!({"delay_risk": 0.5, "risk_band": "high"})),
                )
            })
            .collect();
        store.audit(&entries).await.unwrap();
        written += n;
    }
}

fn percentile(v: &mut [f64], q: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() as f64 - 1.0) * q).round() as usize]
}

async fn queue_plan(store: &Store) -> String {
    let list = "SELECT id FROM approvals WHERE state IN ('pending', 'escalated') \
                ORDER BY due_at, delay_risk DESC, id LIMIT 201";
    match store.backend {
        dispatch_risk::store::Backend::Sqlite => {
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {list}")))
                .fetch_all(&store.pool)
                .await
                .unwrap();
            rows.iter()
                .map(|r| sqlx::Row::try_get::<String, _>(r, 3).unwrap_or_default())
                .collect::<Vec<_>>()
                .join("; ")
        }
        dispatch_risk::store::Backend::Postgres => {
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!("EXPLAIN {list}")))
                .fetch_all(&store.pool)
                .await
                .unwrap();
            rows.iter()
                .map(|r| {
                    sqlx::Row::try_get::<String, _>(r, 0)
                        .unwrap_or_default()
                        .trim()
                        .to_string()
                })
                .collect::<Vec<_>>()
                .join("; ")
        }
    }
}

async fn run(label: &str, url: String, pending: usize, audit_rows: usize, loads: usize) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = ServeConfig::new(repo("models"), url.clone());
    config.bind = "127.0.0.1:0".parse().unwrap();
    config.policies_dir = repo("policies");
    config.spool_path = dir.path().join("spool");
    config.approval_timer_ms = 0;
    let app = Application::build(config).await.unwrap();
    let store = app.state().store.clone();
    let addr = app.local_addr();
    tokio::spawn(app.run_until_stopped());

    let started = Instant::now();
    fill_approvals(&store, pending).await;
    let roles = vec!["dispatch_manager".to_string()];
    store
        .create_user(
            "Bench",
            "bench@example.com",
            &roles,
            Some("bench password 123"),
        )
        .await
        .unwrap();
    eprintln!(
        "{label}: {pending} approvals in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // Log in as a browser would: the form's token, then the session cookie.
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let base = format!("http://{addr}");
    let r = client.get(format!("{base}/ui/login")).send().await.unwrap();
    let login_cookie = r.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let html = r.text().await.unwrap();
    let csrf = html
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    let r = client
        .post(format!("{base}/ui/login"))
        .header("cookie", login_cookie)
        .form(&[
            ("email", "bench@example.com"),
            ("password", "bench password 123"),
            ("csrf", &csrf),
        ])
        .send()
        .await
        .unwrap();
    let session = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("dr_session="))
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let mut times = Vec::with_capacity(loads);
    let mut bytes = 0;
    for _ in 0..loads {
        let t = Instant::now();
        let r = client
            .get(format!("{base}/ui/queue"))
            .header("cookie", &session)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        bytes = r.bytes().await.unwrap().len();
        times.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let p50 = percentile(&mut times, 0.5);
    let p95 = percentile(&mut times, 0.95);
    println!(
        "{label}: queue page with {pending} pending ({} kB, 200 rows shown): p50 {p50:.1} ms, p95 {p95:.1} ms over {loads} loads (bar p95 < 100 ms)",
        bytes / 1024
    );
    println!(
        "{label}: query plan of the queue's list: {}",
        queue_plan(&store).await
    );

    let started = Instant::now();
    fill_audit(&store, audit_rows).await;
    eprintln!(
        "{label}: {audit_rows} audit rows in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let started = Instant::now();
    let verified = store.verify_audit().await.unwrap();
    let took = started.elapsed();
    assert_eq!(verified.broken, None);
    println!(
        "{label}: audit verify over {} rows: {:.2} s (bar < 10 s)",
        verified.rows,
        took.as_secs_f64()
    );
    tokio::time::sleep(Duration::from_millis(10)).await;
}

fn main() {
    let pending = value("--pending", 10_000.0) as usize;
    let audit_rows = value("--audit-rows", 1_000_000.0) as usize;
    let loads = value("--loads", 200.0) as usize;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite:{}", dir.path().join("bench.sqlite3").display());
        run("SQLite", url, pending, audit_rows, loads).await;
        if let Ok(base) = std::env::var("BENCH_DATABASE_URL") {
            use sqlx::Connection;
            sqlx::any::install_default_drivers();
            let name = format!("dispatch_risk_bench_{}", std::process::id());
            let mut conn = sqlx::AnyConnection::connect(&base).await.unwrap();
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&mut conn)
                .await
                .unwrap();
            let (prefix, _) = base.rsplit_once('/').unwrap();
            run(
                "PostgreSQL",
                format!("{prefix}/{name}"),
                pending,
                audit_rows,
                loads,
            )
            .await;
        } else {
            println!("PostgreSQL: skipped (set BENCH_DATABASE_URL=postgres://.../test)");
        }
    });
}
