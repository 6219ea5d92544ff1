//! The service over real HTTP: `Application::build` on port 0, exactly as `serve` runs it, and
//! a real client. Classification, the error shape for bad requests, keys and roles, answering
//! from rules when the models directory holds nothing, and reloads.

mod common;

use common::{copy_dir, repo, TestApp};
use dispatch_risk::store::keys::Role;
use serde_json::{json, Value};

const W: Option<Role> = Some(Role::Workflow);
const A: Option<Role> = Some(Role::Analyst);

#[tokio::test]
async fn the_committed_models_classify_notes_over_http() {
    let app = TestApp::spawn(repo("models")).await;
    let (_, health) = app.get("/healthz", None).await;
    assert_eq!(health["status"], "ok");
    let (_, ready) = app.get("/readyz", None).await;
    assert_eq!(ready["model_version"], "default");
    assert_eq!(ready["degraded"], false);

    let (status, a) = app
        .post(
            "/v1/exceptions/classify",
            &json!({"text": "Truck broke down on the A7, ETA +6h", "shipment_id": "WH/OUT/00042"})
                .to_string(),
            W,
        )
        .await;
    assert_eq!(status, 200, "{a}");
    assert_eq!(a["category"], "vehicle_issue");
    assert_eq!(a["owner"], "transport");
    assert_eq!(a["shipment_id"], "WH/OUT/00042");
    assert_eq!(a["model_version"], "default");
    let expected_tier = if repo("models/encoders/all-minilm-l6-v2/model.safetensors").exists() {
        "encoder"
    } else {
        "small_model"
    };
    assert_eq!(a["tier"], expected_tier);
    assert_eq!(a["alternatives"].as_array().unwrap().len(), 2);

    let (_, models) = app.get("/v1/models", A).await;
    assert_eq!(models["active"], "default");
    assert_eq!(models["exception_classifier"]["tier"], expected_tier);
}

#[tokio::test]
async fn bad_requests_get_one_error_shape_naming_the_field() {
    let app = TestApp::spawn(repo("models")).await;
    let url = &app.url;
    let classify = "/v1/exceptions/classify";
    let cases: [(&str, u16, &str, Option<&str>, &str); 5] = [
        (
            r#"{"shipment_id": "x"}"#,
            400,
            "invalid_request",
            Some("text"),
            "missing field `text`",
        ),
        (
            r#"{"text": 3}"#,
            400,
            "invalid_request",
            Some("text"),
            "expected a string",
        ),
        (
            r#"{"text": "  "}"#,
            400,
            "invalid_field",
            Some("text"),
            "the note is empty",
        ),
        (
            r#"{"text": "lost", "colour": 1}"#,
            400,
            "invalid_request",
            Some("colour"),
            "unknown field `colour`",
        ),
        (
            r#"{"text": "lost""#,
            400,
            "malformed_json",
            None,
            "not valid JSON",
        ),
    ];
    for (body, status, code, field, needle) in cases {
        let (s, e) = app.post(classify, body, W).await;
        assert_eq!(s, status, "{body}: {e}");
        assert_eq!(e["error"]["code"], code, "{body}: {e}");
        let message = e["error"]["message"].as_str().unwrap();
        assert!(message.contains(needle), "{body}: {message}");
        if let Some(f) = field {
            assert_eq!(e["error"]["field"], f, "{body}: {e}");
        }
    }
    // Not JSON at all, an unknown route, an oversized body: the same shape.
    let r = app
        .request(reqwest::Method::POST, classify, W)
        .body("text=lost")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 415);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "unsupported_media_type"
    );
    let r = reqwest::get(format!("{url}/v1/nothing")).await.unwrap();
    assert_eq!(r.status().as_u16(), 404);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "not_found"
    );
    let big = json!({ "text": "x".repeat(3_000_000) }).to_string();
    let (s, e) = app.post(classify, &big, W).await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (413, Some("payload_too_large"))
    );

    // A long note is read to 10,000 characters and the answer says so.
    let long = json!({ "text": "parcel damaged, box crushed. ".repeat(500) }).to_string();
    let (s, a) = app.post(classify, &long, W).await;
    assert_eq!((s, a["truncated"].as_bool()), (200, Some(true)), "{a}");
}

#[tokio::test]
async fn with_no_models_the_rules_answer_and_the_service_says_it_is_degraded() {
    let empty = tempfile::tempdir().unwrap();
    let app = TestApp::spawn(empty.path().to_path_buf()).await;
    let (_, ready) = app.get("/readyz", None).await;
    assert_eq!(
        (ready["status"].as_str(), ready["degraded"].as_bool()),
        (Some("ready"), Some(true))
    );
    let (status, a) = app
        .post(
            "/v1/exceptions/classify",
            r#"{"text": "Parcel LOST in transit"}"#,
            W,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        (a["tier"].as_str(), a["category"].as_str()),
        (Some("rules"), Some("lost"))
    );
    let (_, models) = app.get("/v1/models", A).await;
    assert!(
        models["problems"][0]
            .as_str()
            .unwrap()
            .contains("does not exist"),
        "{models}"
    );
}

#[tokio::test]
async fn reload_swaps_in_a_good_version_and_refuses_a_broken_one() {
    let root = tempfile::tempdir().unwrap();
    copy_dir(&repo("models/default"), &root.path().join("default"));
    let app = TestApp::spawn(root.path().to_path_buf()).await;
    let classify = "/v1/exceptions/classify";
    let reload = "/v1/models/reload";
    let note = r#"{"text": "customs hold, invoice missing"}"#;
    let (_, before) = app.post(classify, note, W).await;
    assert_ne!(before["tier"], "rules");

    // The active version's small model is corrupted on disk: the reload is refused and the
    // models loaded before keep answering.
    let file = root.path().join("default/exception_model.safetensors");
    std::fs::write(&file, b"not tensors").unwrap();
    let (s, e) = app.post(reload, "{}", A).await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (409, Some("reload_refused")),
        "{e}"
    );
    assert!(
        e["error"]["message"].as_str().unwrap().contains("checksum"),
        "{e}"
    );
    let (s, after) = app.post(classify, note, W).await;
    assert_eq!((s, &after["tier"]), (200, &before["tier"]));

    // An active pointer to a version that does not exist: refused too.
    std::fs::write(root.path().join("ACTIVE"), "2027-01\n").unwrap();
    let (s, e) = app.post(reload, "{}", A).await;
    assert_eq!(s, 409, "{e}");
    assert!(
        e["error"]["message"].as_str().unwrap().contains("2027-01"),
        "{e}"
    );

    // A good new version: swapped in, and named by the answers.
    copy_dir(&repo("models/default"), &root.path().join("2027-01"));
    let (s, r) = app.post(reload, "{}", A).await;
    assert_eq!((s, r["active"].as_str()), (200, Some("2027-01")), "{r}");
    let (_, a) = app.post(classify, note, W).await;
    assert_eq!(a["model_version"], "2027-01");
    assert_eq!(a["tier"], before["tier"]);
}
