//! The approval lifecycle over real HTTP, on SQLite and on PostgreSQL: a score that needs a
//! person opens its shipment's approval before it is answered, a later score updates it, and
//! people with the right role claim and decide it on the version they read; every step lands
//! in the audit trail, whose chain `verify` checks. Time is the test's ([`ManualClock`]), so
//! escalation and expiry are seen without waiting.

mod common;

use std::sync::Arc;

use chrono::TimeZone;
use common::{postgres_database, repo, shipment, TestApp};
use dispatch_risk::clock::ManualClock;
use dispatch_risk::store::keys::Role;
use serde_json::{json, Value};

const W: Option<Role> = Some(Role::Workflow);

/// A shipment the routing table holds for the credit controller: one approver.
fn held(id: &str) -> Value {
    let mut s = shipment(id);
    s["credit_hold"] = json!(true);
    s
}

/// One needing two approvers (`very_high_value` is a four-eyes reason).
fn very_valuable(id: &str) -> Value {
    let mut s = shipment(id);
    s["order_value"] = json!(60_000.0);
    s
}

struct People {
    tokens: std::collections::HashMap<&'static str, String>,
    ids: std::collections::HashMap<&'static str, String>,
}

async fn people(app: &TestApp, who: &[(&'static str, &str)]) -> People {
    let (mut tokens, mut ids) = (Default::default(), Default::default());
    let store = &app.state.store;
    for (name, roles) in who {
        let roles: Vec<String> = roles.split(',').map(str::to_string).collect();
        let user = store
            .create_user(name, &format!("{name}@example.com"), &roles, None)
            .await
            .unwrap();
        let (_, _, token) = store
            .create_user_token(&format!("{name}@example.com"))
            .await
            .unwrap();
        std::collections::HashMap::insert(&mut tokens, *name, token);
        std::collections::HashMap::insert(&mut ids, *name, user.id);
    }
    People { tokens, ids }
}

async fn as_person(app: &TestApp, token: &str, path: &str, body: Value) -> (u16, Value) {
    let r = app
        .client
        .post(format!("{}{path}", app.url))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

async fn get_as(app: &TestApp, token: &str, path: &str) -> (u16, Value) {
    let r = app
        .client
        .get(format!("{}{path}", app.url))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

async fn score(app: &TestApp, s: &Value) -> Value {
    let (status, body) = app.post("/v1/score", &s.to_string(), W).await;
    assert_eq!(status, 200, "{body}");
    body
}

fn clock() -> Arc<ManualClock> {
    ManualClock::new(chrono::Utc.with_ymd_and_hms(2026, 12, 1, 8, 0, 0).unwrap())
}

async fn app_on(url: Option<String>, clock: Arc<ManualClock>, timer_ms: u64) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::config(repo("models"), dir.path());
    if let Some(url) = url {
        config.database_url = url.into();
    }
    config.approval_timer_ms = timer_ms;
    TestApp::spawn_on(config, dir, clock).await
}

fn decision(kind: &str, reason: &str, version: i64) -> Value {
    json!({"decision": kind, "reason_code": reason, "version": version, "comment": "checked with finance"})
}

/// Everything a manager does with one approval, and what the trail keeps of it.
async fn lifecycle(app: TestApp) {
    let first = score(&app, &held("LC/1")).await;
    let id = first["approval"]["id"]
        .as_str()
        .expect("an approval id")
        .to_string();
    assert_eq!(first["approval"]["state"], "pending");
    assert_eq!(first["requires_approval"], true);
    // The answer means the approval is stored: read at once, no flush.
    let stored = app
        .state
        .store
        .approval(&id)
        .await
        .unwrap()
        .expect("stored before the answer");
    assert_eq!(stored.approver_role, "credit_controller");
    assert_eq!(stored.version, 1);
    // Scoring it again updates the same approval; a batch naming it twice too.
    let again = score(&app, &held("LC/1")).await;
    assert_eq!(again["approval"]["id"], id);
    let (s, batch) = app
        .score_batch(&[held("LC/1"), held("LC/2"), held("LC/1"), shipment("LC/3")])
        .await;
    assert_eq!(s, 200, "{batch}");
    assert_eq!(batch["scores"][0]["approval"]["id"], id);
    assert_eq!(batch["scores"][2]["approval"]["id"], id);
    let other = batch["scores"][1]["approval"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(other, id);
    assert!(batch["scores"][3]["approval"]["id"].is_null());
    let stored = app.state.store.approval(&id).await.unwrap().unwrap();
    assert_eq!(stored.version, 4, "opened, then rescored three times");
    assert_eq!(
        stored.score_id,
        batch["scores"][2]["score_id"].as_str().unwrap()
    );
    // An instance that does not know of the open approval still names it (the recorder finds
    // the proposal stale, the service asks the database).
    app.state.open_approvals.close("LC/1");
    let third = score(&app, &held("LC/1")).await;
    assert_eq!(third["approval"]["id"], id);

    let p = people(
        &app,
        &[
            ("alice", "credit_controller"),
            ("bob", "credit_controller"),
            ("carol", "dispatch_manager"),
            ("fran", "finance_director"),
        ],
    )
    .await;
    let path = |what: &str| format!("/v1/approvals/{id}{what}");
    let (s, detail) = get_as(&app, &p.tokens["alice"], &path("")).await;
    assert_eq!(s, 200, "{detail}");
    let version = detail["approval"]["version"].as_i64().unwrap();
    assert_eq!(detail["actionable"], true);
    assert_eq!(detail["score"]["score_id"], third["score_id"]);
    let actions: Vec<&str> = detail["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["approval.opened"], "rescoring is no transition");
    // Its rescorings are the shipment's scores since it opened: five, the newest first.
    let scores = detail["scores"].as_array().unwrap();
    assert_eq!(scores.len(), 5, "{scores:?}");
    assert_eq!(scores[0]["score_id"], third["score_id"]);

    // The wrong role is refused and audited; a machine's key names no one.
    let (s, e) = as_person(
        &app,
        &p.tokens["carol"],
        &path("/decision"),
        decision("approve", "risk_accepted", version),
    )
    .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (403, Some("forbidden")),
        "{e}"
    );
    let (s, e) = app
        .post(
            &path("/decision"),
            &decision("approve", "risk_accepted", version).to_string(),
            Some(Role::Manager),
        )
        .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (403, Some("person_required")),
        "{e}"
    );
    // Claims keep others off.
    let (s, claimed) = as_person(&app, &p.tokens["alice"], &path("/claim"), json!({})).await;
    assert_eq!(s, 200, "{claimed}");
    assert_eq!(claimed["claimed_by"], p.ids["alice"]);
    let version = claimed["version"].as_i64().unwrap();
    let (s, e) = as_person(&app, &p.tokens["bob"], &path("/claim"), json!({})).await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (409, Some("approval_claimed")),
        "{e}"
    );
    let (s, e) = as_person(
        &app,
        &p.tokens["bob"],
        &path("/decision"),
        decision("approve", "risk_accepted", version),
    )
    .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (409, Some("approval_claimed")),
        "{e}"
    );
    // A decision needs a listed reason and the version read.
    let (s, e) = as_person(
        &app,
        &p.tokens["alice"],
        &path("/decision"),
        decision("approve", "felt_like_it", version),
    )
    .await;
    assert_eq!(
        (s, e["error"]["field"].as_str()),
        (400, Some("reason_code")),
        "{e}"
    );
    let (s, e) = as_person(
        &app,
        &p.tokens["alice"],
        &path("/decision"),
        decision("approve", "risk_accepted", version - 1),
    )
    .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (409, Some("version_conflict")),
        "{e}"
    );
    let (s, released) = as_person(&app, &p.tokens["alice"], &path("/release"), json!({})).await;
    assert_eq!(s, 200, "{released}");
    let version = released["version"].as_i64().unwrap();
    // Two people decide on the same version at once: one wins, one is told it changed. The
    // one who outranks the role (finance_director) may decide too.
    let decide = path("/decision");
    let (a, b) = tokio::join!(
        as_person(
            &app,
            &p.tokens["bob"],
            &decide,
            decision("approve", "risk_accepted", version)
        ),
        as_person(
            &app,
            &p.tokens["fran"],
            &decide,
            decision("reject", "credit_not_cleared", version)
        ),
    );
    let mut statuses = [a.0, b.0];
    statuses.sort();
    assert_eq!(statuses, [200, 409], "{a:?} {b:?}");
    // The loser either read the row before the winner's commit (its update then finds the
    // version gone) or after it (the approval is decided).
    let loser = if a.0 == 409 { &a.1 } else { &b.1 };
    let code = loser["error"]["code"].as_str().unwrap();
    assert!(
        ["version_conflict", "approval_closed"].contains(&code),
        "{loser}"
    );
    // Both made on one reading, as two instances would: the store lets one through.
    let open = app
        .state
        .store
        .open_approval("LC/2")
        .await
        .unwrap()
        .unwrap();
    let step = |decider: &str| {
        let mut after = open.clone();
        after.state = "rejected".into();
        after.decided_by = Some(decider.to_string());
        dispatch_risk::store::approvals::Transition {
            before: open.clone(),
            after,
            audit: dispatch_risk::store::audit::AuditEntry::new(
                "2026-12-01T08:00:00Z",
                dispatch_risk::store::audit::Actor::user(decider, decider),
                "approval.rejected",
            )
            .subject("approval", &open.id),
        }
    };
    let (one, two) = (step("x"), step("y"));
    let store = &app.state.store;
    let (r1, r2) = tokio::join!(store.transition(&one), store.transition(&two));
    assert!(r1.is_ok() != r2.is_ok(), "{r1:?} {r2:?}");
    assert!(matches!(
        r1.err().or(r2.err()),
        Some(dispatch_risk::store::approvals::TransitionError::Changed(_))
    ));
    let decided = app.state.store.approval(&id).await.unwrap().unwrap();
    assert!(
        ["approved", "rejected"].contains(&decided.state.as_str()),
        "{}",
        decided.state
    );
    let decider = if a.0 == 200 {
        &p.ids["bob"]
    } else {
        &p.ids["fran"]
    };
    assert_eq!(decided.decided_by.as_ref(), Some(decider));
    // Decided, it leaves the queue; a new score of the shipment opens a new approval.
    let waiting = score(&app, &held("LC/9")).await;
    let (s, queue) = get_as(&app, &p.tokens["alice"], "/v1/approvals").await;
    assert_eq!(s, 200, "{queue}");
    let ids: Vec<&str> = queue["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert!(
        !ids.contains(&id.as_str()) && !ids.contains(&other.as_str()),
        "{ids:?}"
    );
    assert!(
        ids.contains(&waiting["approval"]["id"].as_str().unwrap()),
        "{ids:?}"
    );
    let (s, e) = as_person(
        &app,
        &p.tokens["alice"],
        &path("/decision"),
        decision("approve", "risk_accepted", decided.version),
    )
    .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (409, Some("approval_closed")),
        "{e}"
    );
    let after = score(&app, &held("LC/1")).await;
    assert_ne!(after["approval"]["id"], id);

    // The trail: every step, the refusal among them, with who and why; the chain holds.
    let history = app.state.store.audit_of("approval", &id).await.unwrap();
    let actions: Vec<&str> = history.iter().map(|h| h.entry.action.as_str()).collect();
    for expected in [
        "approval.opened",
        "approval.refused",
        "approval.claimed",
        "approval.released",
    ] {
        assert!(
            actions.contains(&expected),
            "{expected} missing from {actions:?}"
        );
    }
    let last = history.last().unwrap();
    assert!(last.entry.action == "approval.approved" || last.entry.action == "approval.rejected");
    assert_eq!(last.entry.actor.id.as_ref(), Some(decider));
    assert!(last.entry.reason_code.is_some() && last.entry.comment.is_some());
    let verified = app.state.store.verify_audit().await.unwrap();
    assert_eq!(verified.broken, None);
    assert!(verified.rows as usize >= history.len());
}

#[tokio::test]
async fn the_approval_lifecycle_on_sqlite() {
    lifecycle(app_on(None, clock(), 0).await).await;
}

#[tokio::test]
async fn the_approval_lifecycle_on_postgres() {
    let Some(url) = postgres_database("the_approval_lifecycle_on_postgres").await else {
        return;
    };
    lifecycle(app_on(Some(url), clock(), 0).await).await;
}

/// Two instances on one PostgreSQL: the second does not know the approval the first opened,
/// and its answer still names that one.
#[tokio::test]
async fn a_second_instance_names_the_approval_the_first_opened() {
    let Some(url) =
        postgres_database("a_second_instance_names_the_approval_the_first_opened").await
    else {
        return;
    };
    let a = app_on(Some(url.clone()), clock(), 0).await;
    let b = app_on(Some(url), clock(), 0).await;
    let first = score(&a, &held("TWO/1")).await;
    let second = score(&b, &held("TWO/1")).await;
    assert_eq!(first["approval"]["id"], second["approval"]["id"]);
    let open = a.state.store.open_approval("TWO/1").await.unwrap().unwrap();
    assert_eq!(open.version, 2);
    assert_eq!(open.score_id, second["score_id"].as_str().unwrap());
}

#[tokio::test]
async fn four_eyes_and_separation_of_duties() {
    let app = app_on(None, clock(), 0).await;
    let answer = score(&app, &very_valuable("FE/1")).await;
    let id = answer["approval"]["id"].as_str().unwrap().to_string();
    let role = answer["approval"]["approver_role"]
        .as_str()
        .unwrap()
        .to_string();
    let a = app.state.store.approval(&id).await.unwrap().unwrap();
    assert_eq!(a.approvals_needed, 2, "{:?}", a.reason_codes);
    let roles = format!("{role},dispatcher");
    let p = people(&app, &[("ann", &role), ("ben", &role), ("dee", &roles)]).await;
    let path = format!("/v1/approvals/{id}/decision");
    let (s, first) = as_person(
        &app,
        &p.tokens["ann"],
        &path,
        decision("approve", "risk_accepted", a.version),
    )
    .await;
    assert_eq!(s, 200, "{first}");
    assert_eq!(first["state"], "pending", "one approval of two");
    assert_eq!(first["first_approver"], p.ids["ann"]);
    let v = first["version"].as_i64().unwrap();
    let (s, e) = as_person(
        &app,
        &p.tokens["ann"],
        &path,
        decision("approve", "risk_accepted", v),
    )
    .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (409, Some("second_approver_required")),
        "{e}"
    );
    let (s, done) = as_person(
        &app,
        &p.tokens["ben"],
        &path,
        decision("approve", "documents_checked", v),
    )
    .await;
    assert_eq!(s, 200, "{done}");
    assert_eq!(done["state"], "approved");
    assert_eq!(done["decided_by"], p.ids["ben"]);

    // A coordinator who scores through their own token may not decide what they raised.
    let r = app
        .client
        .post(format!("{}/v1/score", app.url))
        .bearer_auth(&p.tokens["dee"])
        .header("content-type", "application/json")
        .body(very_valuable("FE/2").to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let raised: Value = r.json().await.unwrap();
    let id = raised["approval"]["id"].as_str().unwrap();
    let a = app.state.store.approval(id).await.unwrap().unwrap();
    assert_eq!(a.raised_by.as_ref(), Some(&p.ids["dee"]));
    let (s, e) = as_person(
        &app,
        &p.tokens["dee"],
        &format!("/v1/approvals/{id}/decision"),
        decision("approve", "risk_accepted", a.version),
    )
    .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (403, Some("separation_of_duties")),
        "{e}"
    );
    let refused = app.state.store.audit_of("approval", id).await.unwrap();
    assert_eq!(refused.last().unwrap().entry.action, "approval.refused");
}

/// Past its SLA an approval escalates to the role the policy names; past its expiry it
/// expires: on the service's clock, by the timer inside the service.
#[tokio::test]
async fn approvals_escalate_and_expire_on_the_clock() {
    let clock = clock();
    let app = app_on(None, clock.clone(), 20).await;
    let answer = score(&app, &held("TM/1")).await;
    let id = answer["approval"]["id"].as_str().unwrap().to_string();
    let wait_for = |state: &'static str| {
        let store = app.state.store.clone();
        let id = id.clone();
        async move {
            for _ in 0..250 {
                let a = store.approval(&id).await.unwrap().unwrap();
                if a.state == state {
                    return a;
                }
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            panic!("the approval never became {state}");
        }
    };
    // The exception queue's SLA is 240 minutes: at 239 nothing happens.
    clock.advance(chrono::Duration::minutes(239));
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(
        app.state.store.approval(&id).await.unwrap().unwrap().state,
        "pending"
    );
    clock.advance(chrono::Duration::minutes(2));
    let escalated = wait_for("escalated").await;
    assert_eq!(escalated.approver_role, "finance_director");
    // Rescoring keeps it escalated, with its new role.
    let again = score(&app, &held("TM/1")).await;
    assert_eq!(again["approval"]["id"], id);
    assert_eq!(again["approval"]["state"], "escalated");
    clock.advance(chrono::Duration::minutes(24 * 60));
    wait_for("expired").await;
    let actions: Vec<String> = app
        .state
        .store
        .audit_of("approval", &id)
        .await
        .unwrap()
        .into_iter()
        .map(|h| h.entry.action)
        .collect();
    assert!(
        actions.contains(&"approval.escalated".to_string()),
        "{actions:?}"
    );
    assert_eq!(actions.last().map(String::as_str), Some("approval.expired"));
}

/// The database refuses changes to the trail; an attacker who drops the triggers first is
/// caught by `verify`, which names the row.
#[tokio::test]
async fn the_audit_trail_refuses_edits_and_names_a_tampered_row() {
    let app = app_on(None, clock(), 0).await;
    for i in 0..5 {
        score(&app, &held(&format!("AU/{i}"))).await;
    }
    tamper(&app).await;
}

#[tokio::test]
async fn the_audit_trail_refuses_edits_on_postgres() {
    let Some(url) = postgres_database("the_audit_trail_refuses_edits_on_postgres").await else {
        return;
    };
    let app = app_on(Some(url), clock(), 0).await;
    for i in 0..5 {
        score(&app, &held(&format!("AU/{i}"))).await;
    }
    tamper(&app).await;
}

async fn tamper(app: &TestApp) {
    let store = &app.state.store;
    assert_eq!(store.verify_audit().await.unwrap().broken, None);
    let pool = &store.pool;
    let refused = sqlx::query("UPDATE audit SET comment = 'nothing to see' WHERE seq = 3")
        .execute(pool)
        .await;
    assert!(refused.unwrap_err().to_string().contains("append-only"));
    let refused = sqlx::query("DELETE FROM audit WHERE seq = 5")
        .execute(pool)
        .await;
    assert!(refused.unwrap_err().to_string().contains("append-only"));
    let drop = match store.backend {
        dispatch_risk::store::Backend::Sqlite => "DROP TRIGGER audit_no_update",
        dispatch_risk::store::Backend::Postgres => "DROP TRIGGER audit_no_update ON audit",
    };
    sqlx::query(drop).execute(pool).await.unwrap();
    sqlx::query("UPDATE audit SET comment = 'nothing to see' WHERE seq = 3")
        .execute(pool)
        .await
        .unwrap();
    let v = store.verify_audit().await.unwrap();
    assert_eq!(v.broken.map(|(seq, _)| seq), Some(3));
    assert_eq!(v.rows, 2);
}

/// The dashboard's figures and decision quality: decisions joined to the outcomes that came
/// after them, with counts beside the rates.
#[tokio::test]
async fn decision_quality_joins_decisions_to_outcomes() {
    let app = app_on(None, clock(), 0).await;
    let p = people(&app, &[("alice", "credit_controller")]).await;
    let mut ids = Vec::new();
    for s in ["DQ/1", "DQ/2", "DQ/3"] {
        let a = score(&app, &held(s)).await;
        ids.push((a["approval"]["id"].as_str().unwrap().to_string(), a));
    }
    let path = |id: &str| format!("/v1/approvals/{id}/decision");
    let (s, e) = as_person(
        &app,
        &p.tokens["alice"],
        &path(&ids[0].0),
        decision("approve", "risk_accepted", 1),
    )
    .await;
    assert_eq!(s, 200, "{e}");
    let other = ids[1].1["alternatives"][0]["carrier"]
        .as_str()
        .expect("an alternative")
        .to_string();
    let mut body = decision("override", "faster_carrier", 1);
    body["carrier"] = json!(other);
    let (s, e) = as_person(&app, &p.tokens["alice"], &path(&ids[1].0), body).await;
    assert_eq!((s, e["state"].as_str()), (200, Some("overridden")), "{e}");
    assert_eq!(e["final_carrier"], json!(other));
    // A carrier not ranked for the shipment is no override.
    let mut body = decision("override", "faster_carrier", 1);
    body["carrier"] = json!("Made-Up Freight");
    let (s, e) = as_person(&app, &p.tokens["alice"], &path(&ids[2].0), body).await;
    assert_eq!(
        (s, e["error"]["field"].as_str()),
        (400, Some("carrier")),
        "{e}"
    );
    let (s, e) = as_person(
        &app,
        &p.tokens["alice"],
        &path(&ids[2].0),
        decision("reject", "credit_not_cleared", 1),
    )
    .await;
    assert_eq!(s, 200, "{e}");
    // DQ/1 arrives late, DQ/2 on time.
    for (shipment, delivered) in [
        ("DQ%2F1", "2024-04-25T09:00:00Z"),
        ("DQ%2F2", "2024-04-22T09:00:00Z"),
    ] {
        let (s, o) = app
            .post(
                &format!("/v1/shipments/{shipment}/outcome"),
                &json!({"delivered_at": delivered}).to_string(),
                W,
            )
            .await;
        assert_eq!(s, 200, "{o}");
    }
    let (s, d) = get_as(&app, &p.tokens["alice"], "/v1/approvals/stats").await;
    assert_eq!(s, 200, "{d}");
    let q = &d["quality"];
    assert_eq!(
        (
            q["approved"]["count"].as_u64(),
            q["approved"]["late"].as_u64()
        ),
        (Some(1), Some(1)),
        "{q}"
    );
    assert_eq!(q["approved"]["late_rate"], 1.0);
    assert_eq!(
        (
            q["overridden"]["count"].as_u64(),
            q["overridden"]["late"].as_u64()
        ),
        (Some(1), Some(0)),
        "{q}"
    );
    assert_eq!(q["by_manager"][&p.ids["alice"]]["count"], 2);
    assert_eq!(q["by_reason"]["faster_carrier"]["count"], 1);
    assert_eq!(d["decisions_by_reason"]["credit_not_cleared"], 1);
    assert_eq!(d["overrides_by_manager"][&p.ids["alice"]], 1);
    assert_eq!(d["decision_minutes"]["exception"]["count"], 3);
    assert!(d["open_by_queue"].as_object().unwrap().is_empty(), "{d}");
    assert_eq!(d["opened_by_day"]["2026-12-01"]["exception"], 3);
}

/// Exception notes classified for a shipment are stored before their answer, shown with its
/// approval, aged on the dashboard until resolved, and closed by the delivery's outcome.
async fn exception_notes(app: TestApp) {
    let p = people(&app, &[("erin", "credit_controller")]).await;
    let a = score(&app, &held("EX/1")).await;
    let id = a["approval"]["id"].as_str().unwrap().to_string();
    let classify = |shipment: &str, text: &str| json!({"text": text, "shipment_id": shipment});
    let (s, first) = app
        .post(
            "/v1/exceptions/classify",
            &classify(
                "EX/1",
                "Truck broke down on the A7, driver waiting for a tow",
            )
            .to_string(),
            W,
        )
        .await;
    assert_eq!(s, 200, "{first}");
    let note = first["note_id"]
        .as_str()
        .expect("a stored note's id")
        .to_string();
    let (s, second) = app
        .post(
            "/v1/exceptions/classify",
            &classify(
                "EX/1",
                "Customer says the address is wrong, house number missing",
            )
            .to_string(),
            W,
        )
        .await;
    assert_eq!(s, 200, "{second}");
    // Without a shipment nothing is stored; a shipment id that cannot be stored is refused.
    let (s, bare) = app
        .post(
            "/v1/exceptions/classify",
            &json!({"text": "pallet damaged"}).to_string(),
            W,
        )
        .await;
    assert_eq!((s, bare.get("note_id")), (200, None), "{bare}");
    let (s, e) = app
        .post(
            "/v1/exceptions/classify",
            &classify("EX/\u{0}1", "pallet damaged").to_string(),
            W,
        )
        .await;
    assert_eq!(
        (s, e["error"]["field"].as_str()),
        (400, Some("shipment_id")),
        "{e}"
    );

    let (s, detail) = get_as(&app, &p.tokens["erin"], &format!("/v1/approvals/{id}")).await;
    assert_eq!(s, 200, "{detail}");
    let notes = detail["exceptions"]
        .as_array()
        .expect("the shipment's notes");
    assert_eq!(notes.len(), 2, "{detail}");
    let stored = notes
        .iter()
        .find(|n| n["id"] == note)
        .expect("the first note");
    assert_eq!(stored["category"], first["category"]);
    assert_eq!(stored["owner"], first["owner"]);
    assert_eq!(stored["severity"], first["severity"]);
    assert_eq!(stored["resolved_at"], Value::Null);

    let (s, d) = get_as(&app, &p.tokens["erin"], "/v1/approvals/stats").await;
    assert_eq!(s, 200, "{d}");
    let open: u64 = d["exceptions_open"]
        .as_object()
        .unwrap()
        .values()
        .map(|a| a["open"].as_u64().unwrap())
        .sum();
    assert_eq!(open, 2, "{d}");

    let resolve = format!("/v1/exceptions/{note}/resolve");
    let (s, r) = app.post(&resolve, "", W).await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["resolution"], "resolved");
    let (s, again) = app.post(&resolve, "", W).await;
    assert_eq!(
        (s, again["error"]["code"].as_str()),
        (409, Some("exception_resolved")),
        "{again}"
    );
    let (s, unknown) = app.post("/v1/exceptions/exn_nope/resolve", "", W).await;
    assert_eq!(s, 404, "{unknown}");

    // The delivery's outcome closes what is still open.
    let (s, o) = app
        .post(
            "/v1/shipments/EX%2F1/outcome",
            &json!({"delivered_at": "2024-04-24T09:00:00Z"}).to_string(),
            W,
        )
        .await;
    assert_eq!(s, 200, "{o}");
    let (_, detail) = get_as(&app, &p.tokens["erin"], &format!("/v1/approvals/{id}")).await;
    let resolutions: Vec<&str> = detail["exceptions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["resolution"].as_str().unwrap_or("open"))
        .collect();
    assert_eq!(resolutions.len(), 2, "{detail}");
    assert!(
        resolutions.contains(&"resolved") && resolutions.contains(&"delivered"),
        "{detail}"
    );
    let (_, d) = get_as(&app, &p.tokens["erin"], "/v1/approvals/stats").await;
    assert!(d["exceptions_open"].as_object().unwrap().is_empty(), "{d}");
}

#[tokio::test]
async fn exception_notes_follow_their_shipment_on_sqlite() {
    exception_notes(app_on(None, clock(), 0).await).await;
}

#[tokio::test]
async fn exception_notes_follow_their_shipment_on_postgres() {
    let Some(url) = postgres_database("exception_notes_follow_their_shipment_on_postgres").await
    else {
        return;
    };
    exception_notes(app_on(Some(url), clock(), 0).await).await;
}
