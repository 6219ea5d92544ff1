//! The API around the scores: keys and roles, the OpenAPI description against the router's own
//! route table, the docs page in a real browser, the `keys` command, policy reloads and a clean
//! shutdown that writes every accepted record.

mod common;

use std::process::Command;

use common::{chromium, copy_dir, repo, shipment, TestApp};
use dispatch_risk::http::{route_table, Access};
use dispatch_risk::store::keys::Role;
use dispatch_risk::store::outcomes::Table;
use dispatch_risk::store::Store;
use dispatch_risk::Application;
use serde_json::{json, Value};

#[tokio::test]
async fn keys_and_roles_guard_every_route_but_health() {
    let app = TestApp::spawn(repo("models")).await;
    let body = shipment("WH/OUT/K1").to_string();
    // No key, a wrong key: 401 with a challenge.
    let r = app
        .request(reqwest::Method::POST, "/v1/score", None)
        .header("content-type", "application/json")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "unauthorized"
    );
    let r = app
        .client
        .post(format!("{}/v1/score", app.url))
        .header("x-api-key", "drk_not_a_key")
        .header("content-type", "application/json")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // The wrong role: 403 naming both roles.
    let (s, e) = app.post("/v1/score", &body, Some(Role::Analyst)).await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (403, Some("forbidden")),
        "{e}"
    );
    assert!(
        e["error"]["message"].as_str().unwrap().contains("workflow"),
        "{e}"
    );
    let (s, _) = app
        .post("/v1/models/reload", "{}", Some(Role::Workflow))
        .await;
    assert_eq!(s, 403);
    // Admin may do everything.
    let (s, _) = app.post("/v1/score", &body, Some(Role::Admin)).await;
    assert_eq!(s, 200);
    // A revoked key stops working.
    let (info, secret) = app
        .state
        .store
        .create_key("temp", Role::Workflow)
        .await
        .unwrap();
    assert!(app.state.store.revoke_key(&info.id).await.unwrap());
    let r = app
        .client
        .post(format!("{}/v1/score", app.url))
        .bearer_auth(&secret)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // The API description needs a key, of any role.
    let (s, _) = app.get("/openapi.json", None).await;
    assert_eq!(s, 401);
    for role in [Role::Workflow, Role::Manager, Role::Analyst] {
        let (s, spec) = app.get("/openapi.json", Some(role)).await;
        assert_eq!(s, 200, "{role:?}");
        assert!(spec["paths"].is_object());
    }
    // Open routes answer without a key.
    for path in ["/healthz", "/readyz", "/metrics", "/docs"] {
        let r = app
            .client
            .get(format!("{}{path}", app.url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
    }
    // Every protected route refuses a request without a key before reading it.
    for route in route_table() {
        if let Access::Role(_) | Access::AnyKey = route.access {
            let path = route.path.replace("{shipment_id}", "X");
            let method = reqwest::Method::from_bytes(route.method.as_bytes()).unwrap();
            let r = app.request(method, &path, None).send().await.unwrap();
            assert_eq!(r.status(), 401, "{} {}", route.method, route.path);
        }
    }
}

#[tokio::test]
async fn the_openapi_document_lists_exactly_the_routes_served() {
    let app = TestApp::spawn(repo("models")).await;
    let (s, spec) = app.get("/openapi.json", Some(Role::Workflow)).await;
    assert_eq!(s, 200);
    let paths = spec["paths"].as_object().unwrap();
    let mut served = Vec::new();
    for route in route_table() {
        let method = route.method.to_lowercase();
        let op = &paths
            .get(&route.path)
            .unwrap_or_else(|| panic!("{} is served but not in the spec", route.path))[&method];
        assert!(
            op.is_object(),
            "{} {} is not in the spec",
            route.method,
            route.path
        );
        let secured = op["security"].as_array().is_some_and(|s| !s.is_empty());
        assert_eq!(
            secured,
            matches!(route.access, Access::Role(_) | Access::AnyKey),
            "{} {}: the spec's security does not match the route's",
            route.method,
            route.path
        );
        served.push((method, route.path.to_string()));
    }
    for (path, item) in paths {
        for method in item.as_object().unwrap().keys() {
            assert!(
                served.contains(&(method.clone(), path.clone())),
                "{method} {path} is in the spec but not served"
            );
        }
    }
    // The request contract is generated from the type the handler reads.
    let shipment = &spec["components"]["schemas"]["ShipmentRequest"];
    let required: Vec<&str> = shipment["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for field in ["shipment_id", "date_deadline", "warehouse", "destination"] {
        assert!(required.contains(&field), "{field}: {shipment}");
    }
    assert!(
        spec["components"]["schemas"]["ScoreResponse"]["properties"]["requires_approval"]
            .is_object()
    );
}

#[tokio::test]
async fn the_docs_page_renders_every_route_in_chromium() {
    let Some(browser) = chromium() else {
        assert!(
            std::env::var("REQUIRE_BROWSER").is_err(),
            "REQUIRE_BROWSER is set but no Chromium was found"
        );
        eprintln!("skipped: no Chromium on PATH (set CHROMIUM or install chromium)");
        return;
    };
    let app = TestApp::spawn(repo("models")).await;
    let render = |url: String| {
        let browser = browser.clone();
        tokio::task::spawn_blocking(move || {
            let profile = tempfile::tempdir().unwrap();
            let profile_arg = format!("--user-data-dir={}", profile.path().display());
            let out = Command::new(browser)
                .args([
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-quic",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--virtual-time-budget=5000",
                    &profile_arg,
                    "--dump-dom",
                    &url,
                ])
                .output()
                .expect("runs chromium");
            String::from_utf8_lossy(&out.stdout).into_owned()
        })
    };
    // Without a key the page asks for one and shows no route.
    let dom = render(format!("{}/docs", app.url)).await.unwrap();
    assert!(
        !dom.contains("data-loaded") && !dom.contains("data-path="),
        "the page rendered without a key: {dom}"
    );
    assert!(dom.contains("Enter an API key"), "{dom}");
    let key = &app.keys[&Role::Workflow];
    let dom = render(format!("{}/docs#key={key}", app.url)).await.unwrap();
    assert!(
        dom.contains("data-loaded=\"true\""),
        "the page did not render the spec: {dom}"
    );
    for route in route_table() {
        let needle = format!(
            "data-path=\"{}\" data-method=\"{}\"",
            route.path,
            route.method.to_lowercase()
        );
        assert!(dom.contains(&needle), "{needle} is not on the page");
    }
}

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_dispatch-risk")
}

#[tokio::test]
async fn the_keys_command_prints_the_new_key_last_and_stores_only_its_hash() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("keys.sqlite3").display());
    let run = |args: &[&str]| {
        Command::new(bin())
            .args(["keys", "--database-url", &url])
            .args(args)
            .output()
            .unwrap()
    };
    let out = run(&["create", "--name", "n8n prod", "--role", "workflow"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let key = stdout.lines().last().unwrap();
    assert!(key.starts_with("drk_") && key.len() == 68, "{stdout}");
    let listed = String::from_utf8(run(&["list"]).stdout).unwrap();
    assert!(
        listed.contains("n8n prod") && listed.contains("workflow"),
        "{listed}"
    );
    assert!(!listed.contains(key), "the list must not show keys");
    let store = Store::connect(&url).await.unwrap();
    let found = store
        .find_key(key)
        .await
        .unwrap()
        .expect("the key is valid");
    assert_eq!(found.role, Role::Workflow);
    let dump = std::fs::read(dir.path().join("keys.sqlite3")).unwrap();
    assert!(
        !dump.windows(key.len()).any(|w| w == key.as_bytes()),
        "the key itself is in the database file"
    );
    let out = run(&["revoke", &found.id]);
    assert!(out.status.success());
    assert!(store.find_key(key).await.unwrap().is_none());
    // Bad input: exit code 2 with a message.
    let out = run(&["create", "--name", "x", "--role", "boss"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a role"));
    let out = run(&["revoke", "key_nothing"]);
    assert_eq!(out.status.code(), Some(2));
}

#[tokio::test]
async fn a_broken_policy_is_refused_on_reload_and_the_previous_one_stays() {
    let dir = tempfile::tempdir().unwrap();
    let policies = dir.path().join("policies");
    copy_dir(&repo("policies"), &policies);
    let mut config = common::config(repo("models"), dir.path());
    config.policies_dir = policies.clone();
    let app = TestApp::spawn_with(config, dir).await;
    let body = {
        let mut s = shipment("WH/OUT/P1");
        s["hazardous"] = json!(true);
        s.to_string()
    };
    let (_, before) = app.post("/v1/score", &body, Some(Role::Workflow)).await;
    assert_eq!(before["approval"]["approver_role"], "compliance_manager");

    // Not JSON; then a table whose rows write an unknown queue: both refused.
    let routing = policies.join("routing.json");
    let good = std::fs::read_to_string(&routing).unwrap();
    std::fs::write(&routing, "{ not json").unwrap();
    let (s, e) = app
        .post("/v1/models/reload", "{}", Some(Role::Analyst))
        .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (409, Some("reload_refused")),
        "{e}"
    );
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("routing.json"),
        "{e}"
    );
    std::fs::write(
        &routing,
        good.replace("\"\\\"priority_approval\\\"\"", "\"\\\"later\\\"\""),
    )
    .unwrap();
    let (s, e) = app
        .post("/v1/models/reload", "{}", Some(Role::Analyst))
        .await;
    assert_eq!(s, 409, "{e}");
    let (_, after) = app.post("/v1/score", &body, Some(Role::Workflow)).await;
    assert_eq!(after["policy_version"], before["policy_version"]);
    assert_eq!(after["queue"], "priority_approval");

    // An edited table that checks out: the next answers follow it.
    std::fs::write(
        &routing,
        good.replace(
            "\"\\\"compliance_manager\\\"\"",
            "\"\\\"safety_officer\\\"\"",
        ),
    )
    .unwrap();
    let (s, r) = app
        .post("/v1/models/reload", "{}", Some(Role::Analyst))
        .await;
    assert_eq!(s, 200, "{r}");
    let (_, edited) = app.post("/v1/score", &body, Some(Role::Workflow)).await;
    assert_ne!(edited["policy_version"], before["policy_version"]);
    assert_eq!(edited["approval"]["approver_role"], "safety_officer");
}

#[tokio::test]
async fn a_clean_shutdown_writes_every_accepted_record() {
    let dir = tempfile::tempdir().unwrap();
    let config = common::config(repo("models"), dir.path());
    let db = config.database_url.clone();
    let app = Application::build(config).await.unwrap();
    let (_, key) = app
        .state()
        .store
        .create_key("t", Role::Workflow)
        .await
        .unwrap();
    let url = format!("http://{}", app.local_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::new();
    let shipments: Vec<Value> = (0..500)
        .map(|i| shipment(&format!("WH/OUT/Z{i}")))
        .collect();
    let (s1, s2) = shipments.split_at(250);
    let r = client
        .post(format!("{url}/v1/score/batch"))
        .bearer_auth(&key)
        .json(&json!({ "shipments": s1 }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    for s in s2 {
        let r = client
            .post(format!("{url}/v1/score"))
            .bearer_auth(&key)
            .json(s)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
    let store = Store::connect(db.expose()).await.unwrap();
    assert_eq!(store.count_rows(Table::Scores).await.unwrap(), 500);
}

/// While a batch streams into its transaction, the WAL's checkpoints wait (they would copy
/// pages and sync the database file beside its scoring and syncs); its end wakes them, and the
/// next one copies what was waiting.
#[tokio::test]
async fn checkpoints_wait_while_a_batch_streams_and_its_end_wakes_them() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("c.sqlite3").display());
    let store = Store::connect(&url).await.unwrap();
    // Frames for a checkpoint to copy.
    store.create_key("before", Role::Workflow).await.unwrap();
    let stream = store.recorder.stream(2_000).await.unwrap();
    assert!(store.recorder.streaming());
    assert_eq!(
        store.checkpoint().await.unwrap(),
        0,
        "a checkpoint ran beside a stream"
    );
    drop(stream);
    tokio::time::timeout(
        std::time::Duration::from_secs(5),
        store.recorder.stream_ended(),
    )
    .await
    .expect("a stream's end wakes the checkpoints");
    assert!(!store.recorder.streaming());
    assert!(
        store.checkpoint().await.unwrap() > 0,
        "nothing was copied after the stream"
    );
}
