//! The same service on PostgreSQL, as several instances behind a load balancer would run it:
//! each test gets a new database on the server of `TEST_DATABASE_URL` (CI points it at the
//! machine's PostgreSQL). Without the variable the tests say they were skipped.

mod common;

use common::{postgres_database, repo, shipment, TestApp};
use dispatch_risk::store::keys::Role;
use dispatch_risk::store::outcomes::Table;
use serde_json::Value;

const W: Option<Role> = Some(Role::Workflow);

#[tokio::test]
async fn scores_outcomes_and_idempotency_on_postgres() {
    let Some(url) = postgres_database("scores_outcomes_and_idempotency_on_postgres").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::config(repo("models"), dir.path());
    config.database_url = url.clone().into();
    let app = TestApp::spawn_with(config, dir).await;
    let shipments: Vec<Value> = (0..120).map(|i| shipment(&format!("PG/OUT/{i}"))).collect();
    let (s, batch) = app.score_batch(&shipments).await;
    assert_eq!(s, 200, "{batch}");
    let send = |key: &'static str| {
        app.request(reqwest::Method::POST, "/v1/score", W)
            .header("content-type", "application/json")
            .header("Idempotency-Key", key)
            .body(shipment("PG/OUT/I").to_string())
            .send()
    };
    let first: Value = send("k1").await.unwrap().json().await.unwrap();
    let again = send("k1").await.unwrap();
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.json::<Value>().await.unwrap(), first);
    let (s, o) = app
        .post(
            "/v1/shipments/PG%2FOUT%2F7/outcome",
            r#"{"delivered_at": "2024-04-22T09:00:00Z"}"#,
            W,
        )
        .await;
    assert_eq!(s, 200, "{o}");
    assert_eq!(o["late"], false);
    let store = &app.state.store;
    store.flush().await.unwrap();
    assert_eq!(store.count_rows(Table::Scores).await.unwrap(), 121);
    assert_eq!(store.count_rows(Table::Outcomes).await.unwrap(), 1);
    assert_eq!(store.count_rows(Table::Idempotency).await.unwrap(), 1);
    let last = store.last_score("PG/OUT/7").await.unwrap().unwrap();
    assert_eq!(
        last.score_id,
        batch["scores"][7]["score_id"].as_str().unwrap()
    );
    // A batch naming a shipment twice: one upsert per shipment per statement, the newest wins.
    let seven = app
        .score_a_repeat_in_one_batch("PG/OUT/7", "PG/OUT/8")
        .await;
    assert_ne!(seven.as_deref(), Some(last.score_id.as_str()));
    // A second instance on the same database sees the keys and the records.
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::config(repo("models"), dir.path());
    config.database_url = url.into();
    let second = dispatch_risk::Application::build(config).await.unwrap();
    let found = second
        .state()
        .store
        .find_key(&app.keys[&Role::Workflow])
        .await
        .unwrap();
    assert_eq!(found.map(|k| k.role), Some(Role::Workflow));
    assert_eq!(
        second
            .state()
            .store
            .count_rows(Table::Scores)
            .await
            .unwrap(),
        124
    );
}

#[tokio::test]
async fn concurrent_idempotent_requests_score_once_on_postgres() {
    let Some(url) =
        postgres_database("concurrent_idempotent_requests_score_once_on_postgres").await
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::config(repo("models"), dir.path());
    config.database_url = url.into();
    config.max_batches_in_flight = 32;
    // Two instances on the one database, the twenty copies alternating between them.
    let mut b_config = config.clone();
    b_config.spool_path = dir.path().join("spool-b");
    let app = TestApp::spawn_with(config, dir).await;
    let b = dispatch_risk::Application::build(b_config).await.unwrap();
    let b_url = format!("http://{}", b.local_addr());
    tokio::spawn(b.run_until_stopped());
    let batch: Vec<Value> = (0..1_000).map(|i| shipment(&format!("PG/C/{i}"))).collect();
    let answers = app
        .score_batch_concurrently_at(&[app.url.clone(), b_url], &batch, "n8n-run-pg", 20)
        .await;
    let statuses: Vec<u16> = answers.iter().map(|a| a.0).collect();
    assert!(statuses.iter().all(|&s| s == 200), "{statuses:?}");
    let bodies: Vec<&String> = answers.iter().map(|a| &a.2).collect();
    assert!(bodies.iter().all(|b| *b == bodies[0]), "one answer for all");
    let store = &app.state.store;
    store.flush().await.unwrap();
    assert_eq!(store.count_rows(Table::Scores).await.unwrap(), 1_000);
    assert_eq!(store.count_rows(Table::Idempotency).await.unwrap(), 1);
}

/// Two instances on one database: an outcome sent to B for a score A answered is found, and
/// each instance's live history takes the outcomes the other received within its sync interval.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outcomes_reach_every_instance() {
    let Some(url) = postgres_database("outcomes_reach_every_instance").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::config(repo("models"), dir.path());
    config.database_url = url.clone().into();
    config.history_sync_ms = 200;
    let mut b_config = config.clone();
    // Each instance its own spool (two cannot share one: it is locked).
    b_config.spool_path = dir.path().join("spool-b");
    let a = TestApp::spawn_with(config, dir).await;
    let b = dispatch_risk::Application::build(b_config).await.unwrap();
    let b_state = b.state().clone();
    let b_url = format!("http://{}", b.local_addr());
    tokio::spawn(b.run_until_stopped());
    let history = |state: &dispatch_risk::state::AppState| {
        let m = state.models.current();
        let d = m.delay.as_ref().unwrap().read().unwrap();
        d.history_outcomes()
    };
    let (b_before, a_before) = (history(&b_state), history(&a.state));
    // Scored on A, delivered reported to B.
    let (s, _) = a
        .post("/v1/score", &shipment("PG/X/1").to_string(), W)
        .await;
    assert_eq!(s, 200);
    let r = a
        .client
        .post(format!("{b_url}/v1/shipments/PG%2FX%2F1/outcome"))
        .bearer_auth(&a.keys[&Role::Workflow])
        .json(&serde_json::json!({"delivered_at": "2024-04-22T09:00:00Z"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    assert_eq!(
        history(&b_state),
        b_before + 1,
        "B took its own outcome at once"
    );
    // Another scored and reported on A alone: B picks it up from the database.
    let (s, _) = a
        .post("/v1/score", &shipment("PG/X/2").to_string(), W)
        .await;
    assert_eq!(s, 200);
    let (s, o) = a
        .post(
            "/v1/shipments/PG%2FX%2F2/outcome",
            r#"{"delivered_at": "2024-04-25T09:00:00Z"}"#,
            W,
        )
        .await;
    assert_eq!(s, 200, "{o}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while history(&b_state) < b_before + 2 || history(&a.state) < a_before + 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "history: A {} -> {}, B {} -> {}",
            a_before,
            history(&a.state),
            b_before,
            history(&b_state)
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // An outcome naming a carrier nobody knows is refused on either.
    let (s, _) = a
        .post("/v1/score", &shipment("PG/X/3").to_string(), W)
        .await;
    assert_eq!(s, 200);
    let (s, e) = a
        .post(
            "/v1/shipments/PG%2FX%2F3/outcome",
            r#"{"delivered_at": "2024-04-25T09:00:00Z", "carrier": "Made Up Freight"}"#,
            W,
        )
        .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (422, Some("unknown_carrier")),
        "{e}"
    );
}
