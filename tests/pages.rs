//! The manager's pages in a real Chromium, driven through ChromeDriver (the W3C WebDriver
//! protocol over HTTP): log in, find the approval a real score opened, open it, approve it with
//! a reason, see it leave the queue and its audit entry appear. Screenshots of the queue and the
//! item go to `target/tmp/screenshots/`. Without ChromeDriver the browser part says it was
//! skipped, unless `REQUIRE_BROWSER=1` (CI) makes that a failure; the HTTP checks (CSP,
//! cookies, CSRF, wrong password) run either way.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine;
use common::{repo, shipment, TestApp};
use dispatch_risk::store::keys::Role;
use serde_json::{json, Value};

const PASSWORD: &str = "a long enough password";

fn held(id: &str) -> Value {
    let mut s = shipment(id);
    s["credit_hold"] = json!(true);
    s
}

async fn app_with_manager() -> (TestApp, String) {
    let dir = tempfile::tempdir().unwrap();
    let config = common::config(repo("models"), dir.path());
    let app = TestApp::spawn_with(config, dir).await;
    let roles = vec!["credit_controller".to_string()];
    app.state
        .store
        .create_user("Alice Martin", "alice@example.com", &roles, Some(PASSWORD))
        .await
        .unwrap();
    let (s, body) = app
        .post("/v1/score", &held("UI/1").to_string(), Some(Role::Workflow))
        .await;
    assert_eq!(s, 200, "{body}");
    let id = body["approval"]["id"].as_str().unwrap().to_string();
    let note = serde_json::json!({"shipment_id": "UI/1", "text": "Truck broke down on the A7, driver waiting for a tow"});
    let (s, classified) = app
        .post(
            "/v1/exceptions/classify",
            &note.to_string(),
            Some(Role::Workflow),
        )
        .await;
    assert_eq!(s, 200, "{classified}");
    (app, id)
}

/// A client that keeps cookies but follows no redirects, to see what the pages answer.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The login form's hidden token and its cookie.
async fn login_form(app: &TestApp, c: &reqwest::Client) -> (String, String) {
    let r = c.get(format!("{}/ui/login", app.url)).send().await.unwrap();
    let cookie = r.headers()["set-cookie"]
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
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_string();
    (cookie, csrf)
}

async fn log_in(app: &TestApp, c: &reqwest::Client, password: &str) -> reqwest::Response {
    let (cookie, csrf) = login_form(app, c).await;
    c.post(format!("{}/ui/login", app.url))
        .header("cookie", cookie)
        .form(&[
            ("email", "alice@example.com"),
            ("password", password),
            ("csrf", &csrf),
        ])
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn pages_log_in_refuse_bad_passwords_and_forms_without_their_token() {
    let (app, id) = app_with_manager().await;
    let c = client();
    let r = c.get(format!("{}/ui/queue", app.url)).send().await.unwrap();
    assert_eq!(r.status(), 303, "no session: to the login page");
    let r = c.get(format!("{}/ui/login", app.url)).send().await.unwrap();
    let csp = r.headers()["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("default-src 'none'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    let html = r.text().await.unwrap();
    assert!(
        !html.contains("<script") && !html.contains("style="),
        "no script, no inline style"
    );

    let refused = log_in(&app, &c, "not the password").await;
    assert_eq!(refused.status(), 401);
    assert!(refused
        .text()
        .await
        .unwrap()
        .contains("Wrong email or password"));
    // A login form posted without its double-submitted token is refused.
    let r = c
        .post(format!("{}/ui/login", app.url))
        .form(&[
            ("email", "alice@example.com"),
            ("password", PASSWORD),
            ("csrf", "guess"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    let r = log_in(&app, &c, PASSWORD).await;
    assert_eq!(r.status(), 303);
    let set: Vec<&str> = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    let session = set
        .iter()
        .find(|c| c.starts_with("dr_session="))
        .expect("a session cookie");
    assert!(
        session.contains("HttpOnly") && session.contains("SameSite=Strict"),
        "{session}"
    );
    let cookie = session.split(';').next().unwrap().to_string();
    let page = c
        .get(format!("{}/ui/approvals/{id}", app.url))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(
        html.contains("The customer&#x27;s credit is on hold")
            || html.contains("credit is on hold"),
        "reasons in words"
    );
    let dashboard = c
        .get(format!("{}/ui/dashboard", app.url))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(dashboard.status(), 200);
    let html = dashboard.text().await.unwrap();
    assert!(
        html.contains("Decision quality") && html.contains("exception open"),
        "{html}"
    );
    // A form without the session's CSRF token changes nothing.
    let r = c
        .post(format!("{}/ui/approvals/{id}/claim", app.url))
        .header("cookie", &cookie)
        .form(&[("csrf", "wrong")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let a = app.state.store.approval(&id).await.unwrap().unwrap();
    assert_eq!((a.version, a.claimed_by), (1, None));
    // Five failures lock the account, and the lock is audited.
    for _ in 0..5 {
        log_in(&app, &c, "wrong again").await;
    }
    let locked = log_in(&app, &c, PASSWORD).await;
    assert_eq!(locked.status(), 429);
    let actions: Vec<String> = app
        .state
        .store
        .audit_page(0, None, 1000)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.entry.action)
        .collect();
    for expected in [
        "user.login_failed",
        "user.login",
        "user.locked",
        "user.login_locked",
    ] {
        assert!(
            actions.iter().any(|a| a == expected),
            "{expected} not in {actions:?}"
        );
    }
}

// --- WebDriver --------------------------------------------------------------------------------

struct Driver {
    child: Child,
    url: String,
    session: String,
    http: reqwest::Client,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

impl Driver {
    async fn start(chromium: &std::path::Path) -> Option<Driver> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child =
            Command::new(std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into()))
                .arg(format!("--port={port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .ok()?;
        let url = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let mut up = false;
        for _ in 0..100 {
            if http.get(format!("{url}/status")).send().await.is_ok() {
                up = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(up, "chromedriver did not come up");
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1000"],
            }
        }}});
        let v: Value = http
            .post(format!("{url}/session"))
            .json(&caps)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let session = v["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("{v}"))
            .to_string();
        let d = Driver {
            child,
            url,
            session,
            http,
        };
        // Finding an element waits for it to appear (a page loading after a click).
        d.call(
            reqwest::Method::POST,
            "/timeouts",
            Some(json!({"implicit": 5000})),
        )
        .await;
        Some(d)
    }

    /// Waits until the page's address contains `part` (a form's redirect landing).
    async fn wait_for_url(&self, part: &str) {
        for _ in 0..100 {
            if self.current_url().await.contains(part) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("never reached {part}: at {}", self.current_url().await);
    }

    /// Waits until the text of `css` contains `part` (a page that is still loading after a
    /// form's post has the old page's text, or none).
    async fn wait_for_text(&self, css: &str, part: &str) {
        let mut seen = String::new();
        for _ in 0..100 {
            // A script, not an element reference: the element may be replaced while the
            // next page loads, and a stale reference is an error.
            let v = self
                .call(
                    reqwest::Method::POST,
                    "/execute/sync",
                    Some(json!({"script": "const e = document.querySelector(arguments[0]); return e ? e.innerText : '';", "args": [css]})),
                )
                .await;
            seen = v.as_str().unwrap_or_default().to_string();
            if seen.contains(part) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{css} never said {part:?}: {seen:?}");
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut r = self.http.request(
            method,
            format!("{}/session/{}{path}", self.url, self.session),
        );
        if let Some(b) = body {
            r = r.json(&b);
        }
        let v: Value = r.send().await.unwrap().json().await.unwrap();
        assert!(v["value"].get("error").is_none(), "{path}: {v}");
        v["value"].clone()
    }

    async fn go(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({"url": url})))
            .await;
    }

    async fn find(&self, css: &str) -> String {
        let v = self
            .call(
                reqwest::Method::POST,
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        v[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("{css}: {v}"))
            .to_string()
    }

    async fn count(&self, css: &str) -> usize {
        let v = self
            .call(
                reqwest::Method::POST,
                "/elements",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        v.as_array().map_or(0, Vec::len)
    }

    async fn type_into(&self, css: &str, text: &str) {
        let e = self.find(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{e}/value"),
            Some(json!({"text": text})),
        )
        .await;
    }

    async fn click(&self, css: &str) {
        let e = self.find(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{e}/click"),
            Some(json!({})),
        )
        .await;
    }

    async fn text(&self, css: &str) -> String {
        let e = self.find(css).await;
        self.call(reqwest::Method::GET, &format!("/element/{e}/text"), None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    async fn current_url(&self) -> String {
        self.call(reqwest::Method::GET, "/url", None)
            .await
            .as_str()
            .unwrap()
            .to_string()
    }

    async fn screenshot(&self, name: &str) -> std::path::PathBuf {
        let v = self.call(reqwest::Method::GET, "/screenshot", None).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap())
            .unwrap();
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, png).unwrap();
        path
    }
}

#[tokio::test]
async fn a_manager_approves_in_chromium() {
    let (app, id) = app_with_manager().await;
    let required = std::env::var("REQUIRE_BROWSER").is_ok();
    let Some(browser) = common::chromium() else {
        assert!(
            !required,
            "REQUIRE_BROWSER is set but no Chromium was found"
        );
        eprintln!("skipped: no Chromium");
        return;
    };
    let Some(d) = Driver::start(&browser).await else {
        assert!(
            !required,
            "REQUIRE_BROWSER is set but chromedriver would not start"
        );
        eprintln!("skipped: no chromedriver (apt-get install chromium-driver)");
        return;
    };
    // A wrong password keeps the manager on the login page.
    d.go(&format!("{}/ui/login", app.url)).await;
    d.type_into("#email", "alice@example.com").await;
    d.type_into("#password", "wrong password here").await;
    d.click("#submit").await;
    assert!(d.text("#message").await.contains("Wrong email or password"));
    d.type_into("#password", PASSWORD).await;
    d.click("#submit").await;
    d.wait_for_url("/ui/queue").await;
    let row = format!("tr[data-approval='{id}']");
    assert_eq!(d.count(&row).await, 1, "the pending item is in the queue");
    d.screenshot("queue.png").await;
    d.click(&format!("{row} a")).await;
    d.wait_for_url(&id).await;
    assert_eq!(d.text("#state").await, "pending");
    assert!(d.text("#reasons").await.contains("credit is on hold"));
    assert!(
        d.count("#factors rect.bar").await >= 1,
        "the factors are drawn"
    );
    let notes = d.text("#exceptions").await;
    assert!(
        notes.contains("Truck broke down") && notes.contains("open"),
        "{notes}"
    );
    d.screenshot("item.png").await;
    // A form posted without its session's CSRF token (the token taken out of the page, as a
    // forged form would lack it) is refused, and nothing changes.
    d.call(
        reqwest::Method::POST,
        "/execute/sync",
        Some(json!({"script": "document.querySelector('#form-approve input[name=csrf]').remove();", "args": []})),
    )
    .await;
    d.click("#approve").await;
    d.wait_for_url("/decision").await;
    d.wait_for_text("body", "CSRF").await;
    let a = app.state.store.approval(&id).await.unwrap().unwrap();
    assert_eq!((a.state.as_str(), a.version), ("pending", 1));
    d.go(&format!("{}/ui/approvals/{id}", app.url)).await;
    d.wait_for_url(&id).await;
    d.click("#reason-approve option:nth-child(2)").await;
    d.type_into("#comment-approve", "customer paid this morning")
        .await;
    d.click("#approve").await;
    d.wait_for_url("/ui/queue?done").await;
    assert!(d.text("#message").await.contains("approved"));
    assert_eq!(d.count(&row).await, 0, "the decided item left the queue");
    d.go(&format!("{}/ui/approvals/{id}", app.url)).await;
    let audit = d.text("#audit").await;
    assert!(
        audit.contains("approval.approved") && audit.contains("Alice Martin"),
        "{audit}"
    );
    assert!(audit.contains("customer paid this morning"), "{audit}");
    let a = app.state.store.approval(&id).await.unwrap().unwrap();
    assert_eq!(a.state, "approved");
    assert_eq!(a.decision_reason.as_deref(), Some("customer_informed"));
    let _ = d.call(reqwest::Method::DELETE, "", None).await;
}
