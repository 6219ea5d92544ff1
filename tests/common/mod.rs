//! The service as tests run it: `Application::build` on port 0 with a fresh database (an SQLite
//! file in a temporary directory, or a new database on the PostgreSQL server named by
//! `TEST_DATABASE_URL`), a key per role, and a real HTTP client.
// Each test binary uses a different part of these helpers.
#![allow(dead_code)]

pub mod process;
pub mod proxy;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use dispatch_risk::clock::{SharedClock, SystemClock};
use dispatch_risk::state::AppState;
use dispatch_risk::store::keys::Role;
use dispatch_risk::{Application, ServeConfig};
use serde_json::Value;

pub fn repo(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

pub struct TestApp {
    pub url: String,
    pub state: AppState,
    pub keys: HashMap<Role, String>,
    /// Each role's key id (the owner of its idempotency claims).
    pub key_ids: HashMap<Role, String>,
    pub client: reqwest::Client,
    _dir: tempfile::TempDir,
}

/// Copies the files of `from` (not its subdirectories) into `to`.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.path().is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

/// A configuration on the repository's policies and a fresh SQLite file in `dir`.
pub fn config(models_dir: PathBuf, dir: &Path) -> ServeConfig {
    let mut c = ServeConfig::new(
        models_dir,
        format!("sqlite:{}", dir.join("test.sqlite3").display()),
    );
    c.bind = "127.0.0.1:0".parse().unwrap();
    c.policies_dir = repo("policies");
    c.encoders_dir = Some(repo("models/encoders"));
    c.spool_path = dir.join("spool");
    c
}

impl TestApp {
    pub async fn spawn(models_dir: PathBuf) -> TestApp {
        let dir = tempfile::tempdir().unwrap();
        let c = config(models_dir, dir.path());
        Self::spawn_with(c, dir).await
    }

    /// Starts `config` (its database must be fresh) and creates a key per role.
    pub async fn spawn_with(config: ServeConfig, dir: tempfile::TempDir) -> TestApp {
        Self::spawn_on(config, dir, std::sync::Arc::new(SystemClock)).await
    }

    /// As [`TestApp::spawn_with`], on `clock` (a [`dispatch_risk::clock::ManualClock`] sets
    /// the service's time).
    pub async fn spawn_on(
        config: ServeConfig,
        dir: tempfile::TempDir,
        clock: SharedClock,
    ) -> TestApp {
        let app = Application::build_with_clock(config, clock)
            .await
            .expect("the service starts");
        let state = app.state().clone();
        let (mut keys, mut key_ids) = (HashMap::new(), HashMap::new());
        for role in Role::ALL {
            let (info, secret) = state
                .store
                .create_key(&format!("test {}", role.as_str()), role)
                .await
                .unwrap();
            keys.insert(role, secret);
            key_ids.insert(role, info.id);
        }
        let url = format!("http://{}", app.local_addr());
        tokio::spawn(app.run_until_stopped());
        TestApp {
            url,
            state,
            keys,
            key_ids,
            // A request the service never answers fails its test instead of holding CI.
            client: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(60))
                .build()
                .expect("a client without TLS builds"),
            _dir: dir,
        }
    }

    pub fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        role: Option<Role>,
    ) -> reqwest::RequestBuilder {
        let mut r = self.client.request(method, format!("{}{path}", self.url));
        if let Some(role) = role {
            r = r.bearer_auth(&self.keys[&role]);
        }
        r
    }

    /// POSTs a JSON body with a key of `role`; the status and the JSON answer.
    pub async fn post(&self, path: &str, body: &str, role: Option<Role>) -> (u16, Value) {
        let r = self
            .request(reqwest::Method::POST, path, role)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.expect("every answer is JSON"))
    }

    /// `POST /v1/score/batch` of `shipments` with a workflow key.
    pub async fn score_batch(&self, shipments: &[Value]) -> (u16, Value) {
        let body = serde_json::json!({ "shipments": shipments }).to_string();
        self.post("/v1/score/batch", &body, Some(Role::Workflow))
            .await
    }

    /// `copies` identical batches of `shipments` sent at once with one `Idempotency-Key`:
    /// each answer's status, whether it says it was replayed, and its body.
    pub async fn score_batch_concurrently(
        &self,
        shipments: &[Value],
        key: &str,
        copies: usize,
    ) -> Vec<(u16, bool, String)> {
        self.score_batch_concurrently_at(std::slice::from_ref(&self.url), shipments, key, copies)
            .await
    }

    /// As [`TestApp::score_batch_concurrently`], the copies spread over the instances at
    /// `urls` (which share this one's database and keys).
    pub async fn score_batch_concurrently_at(
        &self,
        urls: &[String],
        shipments: &[Value],
        key: &str,
        copies: usize,
    ) -> Vec<(u16, bool, String)> {
        let body = serde_json::json!({ "shipments": shipments }).to_string();
        let sent: Vec<_> = (0..copies)
            .map(|i| {
                tokio::spawn(
                    self.client
                        .post(format!("{}/v1/score/batch", urls[i % urls.len()]))
                        .bearer_auth(&self.keys[&Role::Workflow])
                        .header("content-type", "application/json")
                        .header("Idempotency-Key", key)
                        .body(body.clone())
                        .send(),
                )
            })
            .collect();
        let mut answers = Vec::new();
        for a in sent {
            let a = a.await.expect("the request task").expect("an answer");
            let replayed = a.headers().contains_key("idempotent-replayed");
            answers.push((a.status().as_u16(), replayed, a.text().await.unwrap()));
        }
        answers
    }

    /// Scores `[a, b, a]` in one batch and checks that each shipment's latest score is its
    /// own from that batch (the recorder sends one row per shipment per upsert; `a`'s two
    /// share a timestamp, so either may be the latest). Answers `a`'s latest score id.
    pub async fn score_a_repeat_in_one_batch(&self, a: &str, b: &str) -> Option<String> {
        let (s, batch) = self
            .score_batch(&[shipment(a), shipment(b), shipment(a)])
            .await;
        assert_eq!(s, 200, "{batch}");
        let id = |i: usize| batch["scores"][i]["score_id"].as_str().map(str::to_string);
        assert_eq!(self.latest_score_id(b).await, id(1));
        let latest = self.latest_score_id(a).await;
        assert!(latest == id(0) || latest == id(2), "{latest:?}");
        latest
    }

    pub async fn get(&self, path: &str, role: Option<Role>) -> (u16, Value) {
        let r = self
            .request(reqwest::Method::GET, path, role)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.expect("every answer is JSON"))
    }

    /// The id of the score outcomes would join for `shipment_id`, once every record is written.
    pub async fn latest_score_id(&self, shipment_id: &str) -> Option<String> {
        self.state.store.flush().await.unwrap();
        self.state
            .store
            .last_score(shipment_id)
            .await
            .unwrap()
            .map(|s| s.score_id)
    }
}

/// A fresh database on the PostgreSQL server of `TEST_DATABASE_URL`, or `None` (with a note)
/// when the variable is not set.
pub async fn postgres_database(test: &str) -> Option<String> {
    let Ok(base) = std::env::var("TEST_DATABASE_URL") else {
        eprintln!("{test}: skipped: TEST_DATABASE_URL is not set (no PostgreSQL to test against)");
        return None;
    };
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    let name = format!("dispatch_risk_test_{:016x}", rand_id());
    let mut conn = sqlx::AnyConnection::connect(&base)
        .await
        .expect("TEST_DATABASE_URL connects");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .expect("creating a test database");
    let (prefix, _) = base
        .rsplit_once('/')
        .expect("a database URL ends in /dbname");
    Some(format!("{prefix}/{name}"))
}

fn rand_id() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos(),
    );
    h.finish()
}

/// A shipment request as a workflow sends it.
pub fn shipment(id: &str) -> Value {
    serde_json::json!({
        "shipment_id": id,
        "scheduled_date": "2024-04-20T08:00:00Z",
        "date_deadline": "2024-04-23T18:00:00Z",
        "carrier": "NordFreight",
        "warehouse": "WH-WEST",
        "destination": "IT-TO Turin",
        "customer_tier": "standard",
        "priority": "0",
        "order_value": 633.38,
        "weight_kg": 32.4,
        "volume_m3": 0.178,
        "package_count": 2,
        "distance_km": 881.0,
        "shipping_cost": 34.25,
        "hazardous": false,
        "temperature_controlled": false,
        "transport_mode": "road",
        "service_level": "standard"
    })
}

/// Chromium for the browser tests: `CHROMIUM`, else the first of the usual names on PATH.
pub fn chromium() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    [
        "chromium",
        "chromium-browser",
        "google-chrome",
        "google-chrome-stable",
    ]
    .iter()
    .find_map(|name| {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join(name))
                .find(|p| p.is_file())
        })
    })
}
