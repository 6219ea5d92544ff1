//! Scoring over real HTTP on the committed models and policies, with a real SQLite store:
//! the answer's contract, the routing table's decisions, batches, bad input, the fallback with
//! no models, recording, idempotency, outcomes and carrier recommendations.

mod common;

use std::sync::Arc;

use common::{copy_dir, repo, shipment, TestApp};
use dispatch_risk::clock::{Clock, ManualClock};
use dispatch_risk::store::idempotency::{Claim, ClaimTimes};
use dispatch_risk::store::keys::Role;
use dispatch_risk::store::outcomes::Table;
use dispatch_risk::Application;
use serde_json::{json, Value};

const W: Option<Role> = Some(Role::Workflow);
const A: Option<Role> = Some(Role::Analyst);

fn band_of(p: f64) -> &'static str {
    match p {
        p if p >= 0.75 => "critical",
        p if p >= 0.5 => "high",
        p if p >= 0.25 => "medium",
        _ => "low",
    }
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn a_score_carries_the_whole_contract() {
    let app = TestApp::spawn(repo("models")).await;
    let (s, a) = app
        .post("/v1/score", &shipment("WH/OUT/1").to_string(), W)
        .await;
    assert_eq!(s, 200, "{a}");
    let risk = a["delay_risk"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&risk), "{a}");
    assert_eq!(a["risk_band"], band_of(risk), "{a}");
    assert_eq!(a["shipment_id"], "WH/OUT/1");
    assert_eq!(
        (a["source"].as_str(), a["degraded"].as_bool()),
        (Some("model"), Some(false))
    );
    assert_eq!(a["model_version"], "default");
    let (_, ready) = app.get("/readyz", None).await;
    assert_eq!(a["policy_version"], ready["policy_version"]);
    let factors = a["top_factors"].as_array().unwrap();
    assert_eq!(factors.len(), 3, "{a}");
    for f in factors {
        assert!(
            f["feature"].is_string() && f["contribution"].is_f64(),
            "{f}"
        );
    }
    // Strongest first.
    let c: Vec<f64> = factors
        .iter()
        .map(|f| f["contribution"].as_f64().unwrap().abs())
        .collect();
    assert!(c.windows(2).all(|w| w[0] >= w[1]), "{c:?}");
    let rec = &a["recommended_carrier"];
    assert!(rec["carrier"].is_string(), "{a}");
    let p = rec["on_time_probability"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&p));
    assert!(!strings(&rec["reasons"]).is_empty());
    assert!(a["alternatives"].is_array());
    assert_eq!(a["scored_carrier"], "NordFreight");
    let priority = a["priority_score"].as_f64().unwrap();
    assert!((0.0..=100.0).contains(&priority));
    assert!(a["score_id"].as_str().unwrap().starts_with("sc_"));
    assert!(["standard", "priority_approval", "exception"].contains(&a["queue"].as_str().unwrap()));
    assert_eq!(
        a["requires_approval"].as_bool().unwrap(),
        a["approval"]["approver_role"].is_string(),
        "{a}"
    );

    // Without a carrier, the risk is the recommended carrier's.
    let mut open = shipment("WH/OUT/2");
    open.as_object_mut().unwrap().remove("carrier");
    let (s, b) = app.post("/v1/score", &open.to_string(), W).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        b["scored_carrier"], b["recommended_carrier"]["carrier"],
        "{b}"
    );
    // ...the same risk and factors as booking that carrier: the ranking's encoded row of the
    // recommended carrier is the row scored.
    open["carrier"] = b["recommended_carrier"]["carrier"].clone();
    let (_, booked) = app.post("/v1/score", &open.to_string(), W).await;
    assert_eq!(booked["delay_risk"], b["delay_risk"], "{booked}");
    assert_eq!(booked["top_factors"], b["top_factors"], "{booked}");
    // A booked carrier that has never served the lane is not a candidate; it is scored all
    // the same.
    open["carrier"] = json!("Unheard-of Haulage");
    let (s, c) = app.post("/v1/score", &open.to_string(), W).await;
    assert_eq!(s, 200, "{c}");
    assert_eq!(c["scored_carrier"], "Unheard-of Haulage");
    assert_eq!(c["source"], "model", "{c}");
    assert_ne!(c["delay_risk"], b["delay_risk"], "{c}");
}

#[tokio::test]
async fn the_routing_table_decides_queue_approval_and_reasons() {
    let app = TestApp::spawn(repo("models")).await;
    let score = |patch: Value| {
        let mut s = shipment("WH/OUT/R");
        for (k, v) in patch.as_object().unwrap() {
            s[k] = v.clone();
        }
        let app = &app;
        async move {
            let (status, a) = app.post("/v1/score", &s.to_string(), W).await;
            assert_eq!(status, 200, "{a}");
            a
        }
    };
    let a = score(json!({"hazardous": true})).await;
    assert_eq!(a["queue"], "priority_approval", "{a}");
    assert_eq!(a["requires_approval"], true);
    assert_eq!(a["approval"]["approver_role"], "compliance_manager");
    assert!(strings(&a["approval"]["reason_codes"]).contains(&"hazardous_goods"));
    assert!(strings(&a["matched_rules"]).contains(&"hazardous-goods"));

    let a = score(json!({"credit_hold": true, "hazardous": true})).await;
    assert_eq!(a["queue"], "exception", "{a}");
    // The first row naming an approver wins; every reason is listed in table order.
    assert_eq!(a["approval"]["approver_role"], "credit_controller");
    assert_eq!(
        strings(&a["approval"]["reason_codes"]),
        ["credit_hold", "hazardous_goods"]
    );

    // Promised before the planned dispatch.
    let a = score(json!({"date_deadline": "2024-04-19T18:00:00Z"})).await;
    assert_eq!(a["queue"], "exception", "{a}");
    assert!(strings(&a["approval"]["reason_codes"]).contains(&"deadline_before_schedule"));

    // Points raise the priority score without an approval.
    let plain = score(json!({})).await;
    let urgent = score(json!({"priority": 1, "customer_tier": "premium"})).await;
    assert!(
        strings(&urgent["matched_rules"]).contains(&"urgent-priority"),
        "{urgent}"
    );
    assert!(
        urgent["priority_score"].as_f64().unwrap() > plain["priority_score"].as_f64().unwrap(),
        "{plain} {urgent}"
    );
}

#[tokio::test]
async fn a_batch_answers_in_order_as_single_requests_do() {
    let app = TestApp::spawn(repo("models")).await;
    let mut shipments = Vec::new();
    for (i, carrier) in ["NordFreight", "AlpExpress", "NordFreight"]
        .iter()
        .enumerate()
    {
        let mut s = shipment(&format!("WH/OUT/B{i}"));
        s["carrier"] = json!(carrier);
        s["distance_km"] = json!(300.0 + 200.0 * i as f64);
        shipments.push(s);
    }
    let (s, batch) = app.score_batch(&shipments).await;
    assert_eq!(s, 200, "{batch}");
    assert_eq!(batch["count"], 3);
    let scores = batch["scores"].as_array().unwrap();
    for (i, one) in shipments.iter().enumerate() {
        let (_, single) = app.post("/v1/score", &one.to_string(), W).await;
        let mut b = scores[i].clone();
        let mut s = single.clone();
        assert_ne!(b["score_id"], s["score_id"]);
        b["score_id"] = json!(null);
        s["score_id"] = json!(null);
        assert_eq!(b, s, "shipment {i}");
    }
    app.state.store.flush().await.unwrap();
    assert_eq!(app.state.store.count_rows(Table::Scores).await.unwrap(), 6);
}

#[tokio::test]
async fn bad_shipments_are_refused_by_field_and_change_nothing() {
    let app = TestApp::spawn(repo("models")).await;
    let with = |k: &str, v: Value| {
        let mut s = shipment("WH/OUT/X");
        s[k] = v;
        s.to_string()
    };
    let mut missing = shipment("WH/OUT/X");
    missing.as_object_mut().unwrap().remove("warehouse");
    let cases = [
        (
            missing.to_string(),
            "invalid_request",
            "warehouse",
            "missing field",
        ),
        (
            with("order_value", json!("lots")),
            "invalid_request",
            "order_value",
            "expected f64",
        ),
        (
            with("weight_kg", json!(-3)),
            "invalid_field",
            "weight_kg",
            "not a number >= 0",
        ),
        (
            with("date_deadline", json!("soon")),
            "invalid_field",
            "date_deadline",
            "ISO 8601",
        ),
        (
            with("hazardous", json!("maybe")),
            "invalid_request",
            "hazardous",
            "expected a boolean",
        ),
        (
            with("delivered_at", json!("2024-04-22")),
            "invalid_request",
            "delivered_at",
            "unknown field",
        ),
        (
            with("shipment_id", json!("")),
            "invalid_field",
            "shipment_id",
            "empty",
        ),
        // PostgreSQL refuses a NUL byte, and with it every record of its transaction.
        (
            with("shipment_id", json!("WH/OUT/\u{0}1")),
            "invalid_field",
            "shipment_id",
            "U+0000",
        ),
        (
            with("warehouse", json!("WH\u{7}")),
            "invalid_field",
            "warehouse",
            "U+0007",
        ),
        (
            with(
                "extra",
                Value::Object((0..65).map(|i| (format!("k{i}"), json!(1))).collect()),
            ),
            "invalid_field",
            "extra",
            "at most 64",
        ),
    ];
    for (body, code, field, needle) in &cases {
        let (s, e) = app.post("/v1/score", body, W).await;
        assert_eq!(s, 400, "{body}: {e}");
        assert_eq!(e["error"]["code"], *code, "{body}: {e}");
        assert_eq!(e["error"]["field"], *field, "{body}: {e}");
        let m = e["error"]["message"].as_str().unwrap();
        assert!(m.contains(needle), "{body}: {m}");
    }
    // 100k extra keys (1.3 MB) once kept a worker busy for tens of seconds: refused at the door.
    let huge = with(
        "extra",
        Value::Object((0..100_000).map(|i| (format!("k{i}"), json!(1))).collect()),
    );
    let (s, e) = app.post("/v1/score", &huge, W).await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (413, Some("payload_too_large")),
        "{e}"
    );
    // In a batch, a NUL byte is named by index.
    let mut nul: Vec<Value> = (0..3).map(|i| shipment(&format!("WH/OUT/{i}"))).collect();
    nul[1]["destination"] = json!("FR\u{0}");
    let (s, e) = app.score_batch(&nul).await;
    assert_eq!(
        (s, e["error"]["field"].as_str()),
        (400, Some("shipments[1].destination")),
        "{e}"
    );
    // One bad shipment in a batch: named by index, and nothing of the batch is scored.
    let mut shipments: Vec<Value> = (0..4).map(|i| shipment(&format!("WH/OUT/{i}"))).collect();
    shipments[2]["date_deadline"] = json!("31/02/2024");
    let (s, e) = app.score_batch(&shipments).await;
    assert_eq!(s, 400, "{e}");
    assert_eq!(e["error"]["field"], "shipments[2].date_deadline", "{e}");
    assert_eq!(e["error"]["code"], "invalid_field", "{e}");
    // JSON that does not fit a shipment: the field is named within its shipment too.
    let cases = [
        (
            "order_value",
            json!("lots"),
            "shipments[1].order_value",
            "invalid type",
        ),
        (
            "colour",
            json!("red"),
            "shipments[1].colour",
            "unknown field",
        ),
    ];
    for (key, value, field, needle) in cases {
        let mut bad = shipments.clone();
        bad[2] = shipment("WH/OUT/2");
        bad[1][key] = value;
        let (s, e) = app.score_batch(&bad).await;
        assert_eq!(
            (s, e["error"]["code"].as_str()),
            (400, Some("invalid_request")),
            "{e}"
        );
        assert_eq!(e["error"]["field"], field, "{e}");
        let m = e["error"]["message"].as_str().unwrap();
        assert!(m.starts_with(field) && m.contains(needle), "{m}");
    }
    let mut bad = shipments.clone();
    bad[3].as_object_mut().unwrap().remove("warehouse");
    let (s, e) = app.score_batch(&bad).await;
    assert_eq!(s, 400, "{e}");
    assert_eq!(
        e["error"]["field"], "shipments[2].date_deadline",
        "the first bad shipment: {e}"
    );
    bad[2] = shipment("WH/OUT/2");
    let (_, e) = app.score_batch(&bad).await;
    assert_eq!(e["error"]["field"], "shipments[3].warehouse", "{e}");
    let (s, e) = app
        .post("/v1/score/batch", r#"{"shipments": [], "extra": 1}"#, W)
        .await;
    assert_eq!(
        (s, e["error"]["field"].as_str()),
        (400, Some("extra")),
        "{e}"
    );
    // Over the limit.
    let many: Vec<Value> = (0..10_001).map(|i| shipment(&format!("S{i}"))).collect();
    let (s, e) = app.score_batch(&many).await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (422, Some("batch_too_large")),
        "{e}"
    );
    assert_eq!(e["error"]["field"], "shipments");
    app.state.store.flush().await.unwrap();
    assert_eq!(app.state.store.count_rows(Table::Scores).await.unwrap(), 0);
}

#[tokio::test]
async fn with_no_models_every_score_is_answered_by_the_fallback_table() {
    let empty = tempfile::tempdir().unwrap();
    let app = TestApp::spawn(empty.path().to_path_buf()).await;
    // Odoo's rule: planned dispatch already past (these dates are in 2024).
    let (s, a) = app
        .post("/v1/score", &shipment("WH/OUT/F1").to_string(), W)
        .await;
    assert_eq!(s, 200, "{a}");
    assert_eq!(
        (a["source"].as_str(), a["degraded"].as_bool()),
        (Some("rules"), Some(true))
    );
    assert_eq!(a["model_version"], Value::Null);
    assert!(
        strings(&a["matched_rules"]).contains(&"odoo-schedule-passed"),
        "{a}"
    );
    assert_eq!(a["delay_risk"], 0.8);
    assert_eq!(a["risk_band"], "critical");
    assert_eq!(a["recommended_carrier"], Value::Null);
    // A future shipment reaches the tree's leaves: a short lead time over a long way is riskier.
    let future = |id: &str, deadline: &str, km: f64| {
        let mut s = shipment(id);
        s.as_object_mut().unwrap().remove("scheduled_date");
        s["date_deadline"] = json!(deadline);
        s["distance_km"] = json!(km);
        s
    };
    let soon = (chrono::Utc::now() + chrono::Duration::hours(30)).to_rfc3339();
    let later = (chrono::Utc::now() + chrono::Duration::days(8)).to_rfc3339();
    let (_, tight) = app
        .post("/v1/score", &future("F2", &soon, 1500.0).to_string(), W)
        .await;
    let (_, easy) = app
        .post("/v1/score", &future("F3", &later, 200.0).to_string(), W)
        .await;
    let rule = |a: &Value| strings(&a["matched_rules"])[0].to_string();
    assert!(rule(&tight).starts_with("fallback-"), "{tight}");
    assert!(rule(&easy).starts_with("fallback-"), "{easy}");
    assert!(
        tight["delay_risk"].as_f64().unwrap() > easy["delay_risk"].as_f64().unwrap(),
        "{tight} {easy}"
    );
    let mut open = future("F4", &later, 10.0);
    open.as_object_mut().unwrap().remove("carrier");
    let (s, r) = app
        .post("/v1/carriers/recommend", &open.to_string(), W)
        .await;
    assert_eq!((s, r["degraded"].as_bool()), (200, Some(true)), "{r}");
    // The dashboard and /metrics say how much of each warehouse's dispatch the rules answered.
    let (s, d) = app.get("/v1/approvals/stats", W).await;
    assert_eq!(s, 200, "{d}");
    assert_eq!(
        d["fallback_by_warehouse"]["WH-WEST"],
        json!({"scores": 3, "fallback": 3, "share": 1.0}),
        "{d}"
    );
    let metrics = app
        .client
        .get(format!("{}/metrics", app.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(
            r#"dispatch_risk_scores_by_warehouse_total{warehouse="WH-WEST",source="rules"} 3"#
        ),
        "{metrics}"
    );
}

/// A batch large enough to be checked, scored, routed and serialized across the cores: the
/// answers keep their order and each is recorded with exactly its request and its answer.
#[tokio::test]
async fn a_large_batch_answers_in_order_and_records_each_answer() {
    let app = TestApp::spawn(repo("models")).await;
    let carriers = ["DHL Freight", "DB Schenker", "Kuehne+Nagel"];
    let shipments: Vec<Value> = (0..300)
        .map(|i| {
            let mut s = shipment(&format!("WH/OUT/L{i:03}"));
            s["carrier"] = json!(carriers[i % 3]);
            s["distance_km"] = json!(100.0 + 7.0 * i as f64);
            s
        })
        .collect();
    let (status, batch) = app.score_batch(&shipments).await;
    assert_eq!(status, 200, "{batch}");
    assert_eq!(batch["count"], 300);
    let scores = batch["scores"].as_array().unwrap();
    assert_eq!(scores.len(), 300);
    app.state.store.flush().await.unwrap();
    for (i, (asked, answer)) in shipments.iter().zip(scores).enumerate() {
        assert_eq!(answer["shipment_id"], asked["shipment_id"], "answer {i}");
        let id = asked["shipment_id"].as_str().unwrap();
        let last = app.state.store.last_score(id).await.unwrap().unwrap();
        assert_eq!(last.scored_carrier.as_deref(), asked["carrier"].as_str());
        let kept = app.state.store.answered(&last.score_id).await.unwrap();
        let kept = kept.unwrap();
        let stored: Value = serde_json::from_str(&kept.response).unwrap();
        assert_eq!(&stored, answer, "record {i}");
        let request: Value = serde_json::from_str(&kept.request).unwrap();
        assert_eq!(request["distance_km"], asked["distance_km"], "record {i}");
    }
    // Different distances give different risks: the answers are not one answer repeated.
    let risks: std::collections::BTreeSet<String> =
        scores.iter().map(|a| a["delay_risk"].to_string()).collect();
    assert!(risks.len() > 10, "{} distinct risks", risks.len());
}

/// An answer waits for its record's commit: while another writer holds SQLite's write lock the
/// requests wait (and the backlog shows in metrics); once it is released they are answered, and
/// every one answered is in the database without a flush.
#[tokio::test]
async fn answers_wait_for_their_records_to_be_committed() {
    let app = TestApp::spawn(repo("models")).await;
    let metric = || async {
        let text = reqwest::get(format!("{}/metrics", app.url))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix("dispatch_risk_recorder_pending "))
            .map(|v| v.trim().to_string())
            .unwrap_or_else(|| panic!("no recorder_pending in {text}"))
    };
    let mut holder = app.state.store.pool.acquire().await.unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut *holder)
        .await
        .unwrap();
    let requests: Vec<_> = (0..3)
        .map(|i| {
            let r = app
                .request(reqwest::Method::POST, "/v1/score", W)
                .header("content-type", "application/json")
                .body(shipment(&format!("WH/OUT/P{i}")).to_string())
                .send();
            tokio::spawn(r)
        })
        .collect();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    while metric().await != "3" {
        assert!(
            std::time::Instant::now() < deadline,
            "the three records never queued"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(
        requests.iter().all(|r| !r.is_finished()),
        "no answer before its record is committed"
    );
    sqlx::query("ROLLBACK").execute(&mut *holder).await.unwrap();
    drop(holder);
    for r in requests {
        assert_eq!(r.await.unwrap().unwrap().status(), 200);
    }
    assert_eq!(app.state.store.count_rows(Table::Scores).await.unwrap(), 3);
    assert_eq!(metric().await, "0");
}

/// Outcomes join a shipment's newest score: scored again later, or twice in one batch.
#[tokio::test]
async fn the_latest_score_of_a_shipment_is_its_newest() {
    let app = TestApp::spawn(repo("models")).await;
    let (_, first) = app
        .post("/v1/score", &shipment("WH/OUT/R1").to_string(), W)
        .await;
    let first = first["score_id"].as_str().map(str::to_string);
    assert_eq!(app.latest_score_id("WH/OUT/R1").await, first);
    let r1 = app
        .score_a_repeat_in_one_batch("WH/OUT/R1", "WH/OUT/R2")
        .await;
    assert_ne!(r1, first);
    assert_eq!(app.latest_score_id("WH/OUT/R3").await, None);
}

#[tokio::test]
async fn every_score_is_recorded_with_its_versions() {
    let app = TestApp::spawn(repo("models")).await;
    let (_, a) = app
        .post("/v1/score", &shipment("WH/OUT/S1").to_string(), W)
        .await;
    app.state.store.flush().await.unwrap();
    let last = app
        .state
        .store
        .last_score("WH/OUT/S1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(last.score_id, a["score_id"].as_str().unwrap());
    // The facts an outcome joins to, as columns beside the score.
    let asked = shipment("WH/OUT/S1");
    assert_eq!(last.warehouse, asked["warehouse"].as_str().unwrap());
    assert_eq!(last.destination, asked["destination"].as_str().unwrap());
    assert_eq!(last.scored_carrier.as_deref(), a["scored_carrier"].as_str());
    assert!(last.scheduled < last.deadline, "{last:?}");
    let kept = app
        .state
        .store
        .answered(&last.score_id)
        .await
        .unwrap()
        .unwrap();
    let stored: Value = serde_json::from_str(&kept.response).unwrap();
    assert_eq!(stored, a);
    let request: Value = serde_json::from_str(&kept.request).unwrap();
    assert_eq!(request["distance_km"], 881.0);
}

#[tokio::test]
async fn a_repeated_idempotency_key_returns_the_first_answer() {
    let app = TestApp::spawn(repo("models")).await;
    let send = |key: &str, body: String| {
        app.request(reqwest::Method::POST, "/v1/score", W)
            .header("content-type", "application/json")
            .header("Idempotency-Key", key)
            .body(body)
            .send()
    };
    let first = send("n8n-run-1", shipment("WH/OUT/I1").to_string())
        .await
        .unwrap();
    assert_eq!(first.status(), 200);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first: Value = first.json().await.unwrap();
    let again = send("n8n-run-1", shipment("WH/OUT/I1").to_string())
        .await
        .unwrap();
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    let again: Value = again.json().await.unwrap();
    assert_eq!(again, first);
    let other = send("n8n-run-1", shipment("WH/OUT/I2").to_string())
        .await
        .unwrap();
    assert_eq!(other.status(), 422);
    let other: Value = other.json().await.unwrap();
    assert_eq!(other["error"]["code"], "idempotency_key_reused");
    app.state.store.flush().await.unwrap();
    assert_eq!(app.state.store.count_rows(Table::Scores).await.unwrap(), 1);
    let metrics = reqwest::get(format!("{}/metrics", app.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("dispatch_risk_idempotent_replays_total 1"),
        "{metrics}"
    );
}

/// A claim whose request never finished (its instance died mid-request) holds the key until
/// it is a minute old by the service's clock; then the next request with the key takes it
/// over, and its score is recorded at the clock's time.
#[tokio::test]
async fn an_abandoned_idempotency_claim_is_taken_over_after_a_minute() {
    let start = chrono::DateTime::parse_from_rfc3339("2026-03-02T08:00:00Z")
        .unwrap()
        .with_timezone(&chrono::Utc);
    let clock = ManualClock::new(start);
    let dir = tempfile::tempdir().unwrap();
    let config = common::config(repo("models"), dir.path());
    let app = TestApp::spawn_on(config, dir, clock.clone()).await;
    let owner = &app.key_ids[&Role::Workflow];
    let now = clock.now_text();
    let times = ClaimTimes {
        now: &now,
        stale_before: "",
    };
    let left = app
        .state
        .store
        .claim(owner, "n8n-run-9", "/v1/score", "another request", times)
        .await
        .unwrap();
    assert!(matches!(left, Claim::Won));
    let send = || async {
        let r = app
            .request(reqwest::Method::POST, "/v1/score", W)
            .header("content-type", "application/json")
            .header("Idempotency-Key", "n8n-run-9")
            .body(shipment("WH/OUT/AB1").to_string())
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json::<Value>().await.unwrap())
    };
    for wait in [0, 59] {
        clock.advance(chrono::Duration::seconds(wait));
        let (s, e) = send().await;
        assert_eq!(
            (s, e["error"]["code"].as_str()),
            (422, Some("idempotency_key_reused")),
            "after {wait} s the claim still holds the key: {e}"
        );
    }
    clock.advance(chrono::Duration::seconds(2));
    let (s, first) = send().await;
    assert_eq!(s, 200, "{first}");
    let (s, again) = send().await;
    assert_eq!((s, &again), (200, &first), "the kept answer is replayed");
    app.state.store.flush().await.unwrap();
    assert_eq!(app.state.store.count_rows(Table::Scores).await.unwrap(), 1);
    let kept = app
        .state
        .store
        .answered(first["score_id"].as_str().unwrap())
        .await
        .unwrap()
        .unwrap();
    let request: Value = serde_json::from_str(&kept.request).unwrap();
    assert_eq!(request["shipment_id"], "WH/OUT/AB1");
    let (created_at,): (String,) = sqlx::query_as("SELECT created_at FROM scores")
        .fetch_one(&app.state.store.pool)
        .await
        .unwrap();
    assert_eq!(
        created_at,
        clock.now_text(),
        "recorded at the service's time"
    );
}

#[tokio::test]
async fn concurrent_requests_with_one_idempotency_key_score_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::config(repo("models"), dir.path());
    // All twenty at once: past the default of 8 batches in flight the rest would be shed.
    config.max_batches_in_flight = 32;
    let app = TestApp::spawn_with(config, dir).await;
    // Batches, so each request takes long enough for the others to arrive while it runs.
    let batch: Vec<Value> = (0..2_000)
        .map(|i| shipment(&format!("WH/OUT/C{i}")))
        .collect();
    let answers = app.score_batch_concurrently(&batch, "n8n-run-7", 20).await;
    let statuses: Vec<u16> = answers.iter().map(|a| a.0).collect();
    assert!(statuses.iter().all(|&s| s == 200), "{statuses:?}");
    let replayed = answers.iter().filter(|a| a.1).count();
    let bodies: Vec<&String> = answers.iter().map(|a| &a.2).collect();
    assert_eq!(
        replayed, 19,
        "one request computed, the others replayed its answer"
    );
    assert!(
        bodies.iter().all(|b| *b == bodies[0]),
        "every client got the same answer"
    );
    app.state.store.flush().await.unwrap();
    assert_eq!(
        app.state.store.count_rows(Table::Scores).await.unwrap(),
        2_000,
        "one batch recorded"
    );
    // A refused request keeps nothing: its key is free for a retry that succeeds.
    let bad = json!({ "shipments": [{ "shipment_id": "x" }] }).to_string();
    for (body, status) in [
        (bad, 400),
        (
            json!({ "shipments": [shipment("WH/OUT/R")] }).to_string(),
            200,
        ),
    ] {
        let r = app
            .request(reqwest::Method::POST, "/v1/score/batch", W)
            .header("content-type", "application/json")
            .header("Idempotency-Key", "n8n-run-8")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), status);
    }
}

#[tokio::test]
async fn outcomes_join_the_last_score_and_feed_the_live_history() {
    let app = TestApp::spawn(repo("models")).await;
    let (_, models) = app.get("/v1/models", A).await;
    let before = models["delay_model"]["history_outcomes"].as_u64().unwrap();
    let (_, a) = app
        .post("/v1/score", &shipment("WH/OUT/O1").to_string(), W)
        .await;
    let path = "/v1/shipments/WH%2FOUT%2FO1/outcome";
    let body = json!({"delivered_at": "2024-04-24T10:00:00Z", "notes": "driver stuck at the border, customs papers missing"});
    let (s, o) = app.post(path, &body.to_string(), W).await;
    assert_eq!(s, 200, "{o}");
    assert_eq!(o["recorded"], true);
    assert_eq!(o["late"], true);
    assert_eq!(o["lateness_days"], 0.67);
    assert_eq!(o["score_id"], a["score_id"]);
    assert_eq!(o["carrier"], "NordFreight");
    assert_eq!(o["live_history_updated"], true);
    assert!(o["exception_category"].is_string(), "{o}");
    let (_, models) = app.get("/v1/models", A).await;
    assert_eq!(
        models["delay_model"]["history_outcomes"].as_u64().unwrap(),
        before + 1
    );
    // The same report again is acknowledged, a different one refused.
    let (s, o) = app.post(path, &body.to_string(), W).await;
    assert_eq!((s, o["recorded"].as_bool()), (200, Some(false)), "{o}");
    let (s, e) = app.post(path, r#"{"delivered_at": "2024-04-25"}"#, W).await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (409, Some("outcome_conflict")),
        "{e}"
    );
    let (s, e) = app
        .post(
            "/v1/shipments/NEVER/outcome",
            r#"{"delivered_at": "2024-04-25"}"#,
            W,
        )
        .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (404, Some("not_found")),
        "{e}"
    );
    let (s, e) = app.post(path, r#"{"delivered_at": "yesterday"}"#, W).await;
    assert_eq!(
        (s, e["error"]["field"].as_str()),
        (400, Some("delivered_at")),
        "{e}"
    );
    assert_eq!(
        app.state.store.count_rows(Table::Outcomes).await.unwrap(),
        1
    );
}

/// Outcomes reported to the service stay in the live history when the models are reloaded,
/// also when the policies are refused in the same reload, and when the service restarts.
#[tokio::test]
async fn stored_outcomes_survive_reloads_and_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let policies = dir.path().join("policies");
    copy_dir(&repo("policies"), &policies);
    let mut config = common::config(repo("models"), dir.path());
    config.policies_dir = policies.clone();
    let restart = config.clone();
    let app = TestApp::spawn_with(config, dir).await;
    let history = |app: &TestApp| {
        let models = app.state.models.current();
        let delay = models.delay.as_ref().unwrap().read().unwrap();
        delay.history.len()
    };
    let trained = history(&app);
    app.post("/v1/score", &shipment("WH/OUT/H1").to_string(), W)
        .await;
    let (s, o) = app
        .post(
            "/v1/shipments/WH%2FOUT%2FH1/outcome",
            r#"{"delivered_at": "2024-04-24T10:00:00Z"}"#,
            W,
        )
        .await;
    assert_eq!(
        (s, o["live_history_updated"].as_bool()),
        (200, Some(true)),
        "{o}"
    );
    assert_eq!(history(&app), trained + 1);

    let (s, r) = app.post("/v1/models/reload", "{}", A).await;
    assert_eq!((s, r["outcomes_replayed"].as_u64()), (200, Some(1)), "{r}");
    assert_eq!(history(&app), trained + 1);

    // The policies are refused, the models are swapped in anyway, with the outcome.
    std::fs::write(policies.join("routing.json"), "{ not json").unwrap();
    let before = Arc::as_ptr(&app.state.models.current());
    let (s, r) = app.post("/v1/models/reload", "{}", A).await;
    assert_eq!(s, 409, "{r}");
    assert_ne!(Arc::as_ptr(&app.state.models.current()), before);
    assert_eq!(history(&app), trained + 1);

    // A restart on the same database and policies (mended) starts from the stored outcome.
    std::fs::copy(repo("policies/routing.json"), policies.join("routing.json")).unwrap();
    app.state.store.flush().await.unwrap();
    let second = Application::build(restart).await.unwrap();
    let models = second.state().models.current();
    let delay = models.delay.as_ref().unwrap().read().unwrap();
    assert_eq!(delay.history.len(), trained + 1);
}

#[tokio::test]
async fn carriers_are_ranked_for_a_shipment_without_one() {
    let app = TestApp::spawn(repo("models")).await;
    let mut s = shipment("WH/OUT/C1");
    s.as_object_mut().unwrap().remove("carrier");
    let (status, r) = app.post("/v1/carriers/recommend", &s.to_string(), W).await;
    assert_eq!(status, 200, "{r}");
    let carriers = r["carriers"].as_array().unwrap();
    assert!(carriers.len() >= 2, "{r}");
    assert_eq!(r["degraded"], false);
    // The score's recommendation is the same ranking's head.
    let (_, a) = app.post("/v1/score", &s.to_string(), W).await;
    assert_eq!(a["recommended_carrier"], carriers[0], "{a}");
    s["carrier"] = json!("NordFreight");
    let (status, e) = app.post("/v1/carriers/recommend", &s.to_string(), W).await;
    assert_eq!(
        (status, e["error"]["field"].as_str()),
        (400, Some("carrier")),
        "{e}"
    );
}

/// An outcome's carrier must be one the model knows or the configuration admits: a key cannot
/// invent carriers that then become candidates on a lane.
#[tokio::test]
async fn outcomes_name_known_or_admitted_carriers_only() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::config(repo("models"), dir.path());
    config.admitted_carriers = vec!["Brand New Freight".to_string()];
    let app = TestApp::spawn_with(config, dir).await;
    for id in ["WH/OUT/K1", "WH/OUT/K2", "WH/OUT/K3"] {
        let (s, _) = app.post("/v1/score", &shipment(id).to_string(), W).await;
        assert_eq!(s, 200);
    }
    let outcome = |id: &str, carrier: &str| {
        let path = format!("/v1/shipments/{}/outcome", id.replace('/', "%2F"));
        let body = json!({"delivered_at": "2024-04-22T09:00:00Z", "carrier": carrier}).to_string();
        (path, body)
    };
    let (p, b) = outcome("WH/OUT/K1", "Made Up Freight");
    let (s, e) = app.post(&p, &b, W).await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (422, Some("unknown_carrier")),
        "{e}"
    );
    assert_eq!(e["error"]["field"], "carrier");
    let (p, b) = outcome("WH/OUT/K2", "Brand New Freight");
    let (s, e) = app.post(&p, &b, W).await;
    assert_eq!(s, 200, "{e}");
    let (p, b) = outcome("WH/OUT/K3", "NordFreight");
    let (s, e) = app.post(&p, &b, W).await;
    assert_eq!(s, 200, "{e}");
}

/// A batch over the recorder's 2,000 rows: every answer is in the database when the batch is
/// answered, in order, and a shipment held at its start and again at its end opens one
/// approval, which both answers name.
#[tokio::test]
async fn a_batch_over_a_commit_records_every_answer_and_one_approval_per_shipment() {
    let app = TestApp::spawn(repo("models")).await;
    let n = 4_500;
    let mut shipments: Vec<Value> = (0..n)
        .map(|i| shipment(&format!("WH/OUT/P{i:04}")))
        .collect();
    for i in [0, n - 1] {
        shipments[i] = shipment("WH/OUT/HELD");
        shipments[i]["credit_hold"] = json!(true);
    }
    let (status, batch) = app.score_batch(&shipments).await;
    assert_eq!(status, 200);
    let scores = batch["scores"].as_array().unwrap();
    assert_eq!((batch["count"].as_u64(), scores.len()), (Some(n as u64), n));
    // No flush: the answer waited for every part.
    assert_eq!(
        app.state.store.count_rows(Table::Scores).await.unwrap(),
        n as i64
    );
    for (i, (asked, answer)) in shipments.iter().zip(scores).enumerate() {
        assert_eq!(answer["shipment_id"], asked["shipment_id"], "answer {i}");
    }
    let (first, last) = (
        &scores[0]["approval"]["id"],
        &scores[n - 1]["approval"]["id"],
    );
    assert!(first.is_string(), "{}", scores[0]);
    assert_eq!(first, last);
    let opened: i64 =
        sqlx::query_scalar("SELECT count(*) FROM approvals WHERE shipment_id = 'WH/OUT/HELD'")
            .fetch_one(&app.state.store.pool)
            .await
            .unwrap();
    assert_eq!(opened, 1);
}

/// A batch over one chunk with an Idempotency-Key: its rows are written as it is scored, yet a
/// retry returns the very answer sent, and nothing is recorded twice.
#[tokio::test]
async fn a_streamed_batch_with_a_key_is_answered_once_and_replayed() {
    let app = TestApp::spawn(repo("models")).await;
    let n = 2_500;
    let shipments: Vec<Value> = (0..n)
        .map(|i| shipment(&format!("WH/OUT/R{i:04}")))
        .collect();
    let body = json!({ "shipments": shipments }).to_string();
    let send = || {
        app.request(reqwest::Method::POST, "/v1/score/batch", W)
            .header("content-type", "application/json")
            .header("Idempotency-Key", "nightly-2026-12-03")
            .body(body.clone())
            .send()
    };
    let first = send().await.unwrap();
    assert_eq!(first.status(), 200);
    let first = first.text().await.unwrap();
    assert_eq!(
        app.state.store.count_rows(Table::Scores).await.unwrap(),
        n as i64
    );
    let again = send().await.unwrap();
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(
        again.text().await.unwrap(),
        first,
        "the answer kept is the one sent"
    );
    assert_eq!(
        app.state.store.count_rows(Table::Scores).await.unwrap(),
        n as i64
    );
    let answers: Value = serde_json::from_str(&first).unwrap();
    assert_eq!(answers["count"], n as u64);
}

/// Single scores of held shipments while a streamed batch holds the same shipments: every
/// answer is recorded, each shipment has one approval, and every answer names it (a batch
/// whose proposals went stale meanwhile is scored again, not written with them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_scores_during_a_streamed_batch_keep_one_approval_per_shipment() {
    let app = TestApp::spawn(repo("models")).await;
    let n = 3_000;
    let held = |i: usize| {
        let mut s = shipment(&format!("WH/OUT/H{i:04}"));
        s["credit_hold"] = json!(true);
        s
    };
    let shipments: Vec<Value> = (0..n).map(held).collect();
    let singles = async {
        let mut answers = Vec::new();
        // Every tenth shipment, from the end (the batch's last chunks), while it is scored.
        for i in (0..n).rev().step_by(10).take(100) {
            let (status, a) = app.post("/v1/score", &held(i).to_string(), W).await;
            assert_eq!(status, 200, "{a}");
            answers.push(a);
        }
        answers
    };
    let ((status, batch), singles) = tokio::join!(app.score_batch(&shipments), singles);
    assert_eq!(status, 200, "{batch}");
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT shipment_id, id FROM approvals WHERE state = 'pending'")
            .fetch_all(&app.state.store.pool)
            .await
            .unwrap();
    let open: std::collections::HashMap<String, String> = rows.iter().cloned().collect();
    assert_eq!(
        (rows.len(), open.len()),
        (n, n),
        "one approval per shipment"
    );
    let scores = batch["scores"].as_array().unwrap();
    for a in scores.iter().chain(&singles) {
        let shipment = a["shipment_id"].as_str().unwrap();
        assert_eq!(
            a["approval"]["id"].as_str(),
            open.get(shipment).map(String::as_str),
            "{shipment}"
        );
    }
    assert_eq!(
        app.state.store.count_rows(Table::Scores).await.unwrap(),
        (n + singles.len()) as i64
    );
}
