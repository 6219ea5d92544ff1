//! The manager's pages, rendered by the binary itself (minijinja templates compiled in, HTML
//! escaped): log in, the queue of approvals waiting, one approval with why it waits, its risk
//! factors, carriers, scores and audit trail, and the forms that claim and decide it.
//!
//! People log in with their password; the session is a cookie (HttpOnly, SameSite=Strict,
//! Secure behind a proxy that says the request came over HTTPS) naming a server-side row with
//! idle and absolute expiries. Every form carries the session's CSRF token (the login form a
//! double-submitted one); every page is sent with a Content-Security-Policy that allows no
//! script at all and styles only from `/ui/app.css`. The steps themselves are the API's
//! ([`super::approvals::apply_step`]): one set of rules, one audit trail.

mod render;

use axum::extract::{Form, Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use chrono::Duration;
use serde::Deserialize;

use super::error::ApiError;
use super::middleware::RequestId;
use crate::approvals as domain;
use crate::auth::Caller;
use crate::policy::DecisionKind;
use crate::state::AppState;
use crate::store::audit::{Actor, AuditEntry};
use crate::store::keys::Role;
use crate::store::sessions::{Login, Session};

/// The session cookie's name.
const COOKIE: &str = "dr_session";
/// The login form's double-submitted CSRF cookie.
const LOGIN_COOKIE: &str = "dr_login";
/// A session unused this long ends.
pub const IDLE: Duration = Duration::minutes(30);
/// A session ends this long after login, used or not.
pub const ABSOLUTE: Duration = Duration::hours(12);

/// No script, no inline style, nothing from elsewhere; forms post only here; no framing.
const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
    frame-ancestors 'none'; base-uri 'none'";

/// The pages' routes, with their security headers.
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/ui", get(|| async { Redirect::to("/ui/queue") }))
        .route("/ui/app.css", get(stylesheet))
        .route("/ui/login", get(login_page).post(login))
        .route("/ui/logout", post(logout))
        .route("/ui/queue", get(queue))
        .route("/ui/dashboard", get(dashboard))
        .route("/ui/approvals/{id}", get(item))
        .route("/ui/approvals/{id}/{action}", post(act))
        .layer(axum::middleware::map_response(secure_headers))
}

async fn secure_headers(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

async fn stylesheet() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("app.css"),
    )
        .into_response()
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// Whether a proxy in front says the request came over HTTPS.
fn over_https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

fn set_cookie(name: &str, value: &str, max_age: i64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/ui; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Equal without saying where they differ.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// The request's live session, or `None`.
async fn session(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<(String, Session)>, ApiError> {
    let Some(token) = cookie(headers, COOKIE) else {
        return Ok(None);
    };
    Ok(state
        .store
        .session(&token, state.clock.now(), IDLE)
        .await?
        .map(|s| (token, s)))
}

/// The person of a session, as the approval steps see a caller.
fn caller_of(s: &Session) -> Caller {
    Caller {
        key_id: format!("session:{}", s.user.id),
        role: Role::Manager,
        person: Some(s.user.clone()),
    }
}

fn to_login() -> Response {
    Redirect::to("/ui/login").into_response()
}

fn page(status: StatusCode, html: Result<String, ApiError>) -> Response {
    match html {
        Ok(html) => (
            status,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            html,
        )
            .into_response(),
        Err(e) => e.into_response(),
    }
}

// --- Logging in and out ---------------------------------------------------------------------

async fn login_page(headers: HeaderMap) -> Response {
    login_form(&headers, StatusCode::OK, "", None)
}

/// The form, with a fresh double-submit token in a cookie and the form.
fn login_form(
    headers: &HeaderMap,
    status: StatusCode,
    email: &str,
    error: Option<&str>,
) -> Response {
    let token = crate::store::keys::random_hex(16);
    let mut r = page(status, render::login(&token, email, error));
    r.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(LOGIN_COOKIE, &token, 600, over_https(headers)),
    );
    r
}

#[derive(Deserialize)]
struct LoginForm {
    email: String,
    password: String,
    /// Missing is refused as a wrong token is (the refusal page), not as a malformed form.
    #[serde(default)]
    csrf: String,
}

async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let expected = cookie(&headers, LOGIN_COOKIE).unwrap_or_default();
    if expected.is_empty() || !same(&expected, &form.csrf) {
        return login_form(
            &headers,
            StatusCode::FORBIDDEN,
            &form.email,
            Some("The form expired: log in again."),
        );
    }
    let now = state.clock.now();
    let outcome = match state.store.login(&form.email, &form.password, now).await {
        Ok(o) => o,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let at = crate::clock::text(now);
    let attempt = |action: &str, user: Option<&str>| {
        let actor = match user {
            Some(id) => Actor::user(id, &form.email),
            None => Actor {
                kind: "anonymous".into(),
                id: None,
                name: Some(form.email.chars().take(200).collect()),
            },
        };
        AuditEntry::new(&at, actor, action)
    };
    match outcome {
        Login::Accepted(user) => {
            let (token, _) = match state.store.create_session(&user, now, ABSOLUTE).await {
                Ok(t) => t,
                Err(e) => return ApiError::from(e).into_response(),
            };
            let entry = attempt("user.login", Some(&user.id)).subject("user", &user.id);
            if let Err(e) = state.store.audit(&[entry]).await {
                return ApiError::from(e).into_response();
            }
            let mut r = Redirect::to("/ui/queue").into_response();
            let secure = over_https(&headers);
            r.headers_mut().append(
                header::SET_COOKIE,
                set_cookie(COOKIE, &token, ABSOLUTE.num_seconds(), secure),
            );
            r.headers_mut()
                .append(header::SET_COOKIE, set_cookie(LOGIN_COOKIE, "", 0, secure));
            r
        }
        Login::Refused {
            user_id,
            locked_now,
        } => {
            let mut entries = vec![attempt("user.login_failed", user_id.as_deref())];
            if let (true, Some(id)) = (locked_now, &user_id) {
                entries.push(attempt("user.locked", Some(id)).subject("user", id));
            }
            if let Err(e) = state.store.audit(&entries).await {
                return ApiError::from(e).into_response();
            }
            tracing::warn!(email = %form.email, locked_now, "login refused");
            login_form(
                &headers,
                StatusCode::UNAUTHORIZED,
                &form.email,
                Some("Wrong email or password."),
            )
        }
        Login::Locked { user_id, until } => {
            let entry = attempt("user.login_locked", Some(&user_id)).subject("user", &user_id);
            if let Err(e) = state.store.audit(&[entry]).await {
                return ApiError::from(e).into_response();
            }
            let message = format!("Too many failed logins: the account is locked until {until}.");
            login_form(
                &headers,
                StatusCode::TOO_MANY_REQUESTS,
                &form.email,
                Some(&message),
            )
        }
    }
}

#[derive(Deserialize)]
struct CsrfForm {
    /// Missing is refused as a wrong token is (the refusal page), not as a malformed form.
    #[serde(default)]
    csrf: String,
}

async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    let Ok(Some((token, s))) = session(&state, &headers).await else {
        return to_login();
    };
    if !same(&s.csrf, &form.csrf) {
        return forbidden_form();
    }
    let now = state.clock.now();
    let entry = AuditEntry::new(
        &crate::clock::text(now),
        caller_of(&s).actor(),
        "user.logout",
    )
    .subject("user", &s.user.id);
    if let Err(e) = async {
        state.store.end_session(&token, now).await?;
        state.store.audit(&[entry]).await
    }
    .await
    {
        return ApiError::from(e).into_response();
    }
    let mut r = to_login();
    r.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(COOKIE, "", 0, over_https(&headers)),
    );
    r
}

fn forbidden_form() -> Response {
    page(
        StatusCode::FORBIDDEN,
        Ok("<!doctype html><title>Refused</title><p>This form was not sent from this session's page (missing or wrong CSRF token). Go back, reload and try again.</p>".into()),
    )
}

// --- The queue and an approval --------------------------------------------------------------

/// The queue's filters, as the form sends them (empty fields are no filter).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct QueueFilters {
    #[serde(default)]
    pub queue: String,
    #[serde(default)]
    pub role: String,
    #[serde(default)]
    pub warehouse: String,
    #[serde(default)]
    pub carrier: String,
    #[serde(default)]
    pub tier: String,
    #[serde(default)]
    pub band: String,
    #[serde(default)]
    pub done: String,
}

async fn queue(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(filters): Query<QueueFilters>,
) -> Response {
    let Ok(Some((_, s))) = session(&state, &headers).await else {
        return to_login();
    };
    page(StatusCode::OK, render::queue(&state, &s, &filters).await)
}

async fn dashboard(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let Ok(Some((_, s))) = session(&state, &headers).await else {
        return to_login();
    };
    page(StatusCode::OK, render::dashboard(&state, &s).await)
}

#[derive(Debug, Default, Deserialize)]
struct ItemQuery {
    #[serde(default)]
    done: String,
}

async fn item(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<ItemQuery>,
) -> Response {
    let Ok(Some((_, s))) = session(&state, &headers).await else {
        return to_login();
    };
    let message = (!q.done.is_empty()).then(|| format!("Done: {}.", q.done));
    page(
        StatusCode::OK,
        render::item(&state, &s, &id, message.as_deref(), false).await,
    )
}

/// A form on an approval's page: claim, release or decision.
#[derive(Debug, Deserialize)]
struct ActionForm {
    /// Missing is refused as a wrong token is (the refusal page), not as a malformed form.
    #[serde(default)]
    csrf: String,
    decision: Option<DecisionKind>,
    reason_code: Option<String>,
    comment: Option<String>,
    version: Option<i64>,
    carrier: Option<String>,
}

async fn act(
    State(state): State<AppState>,
    headers: HeaderMap,
    request_id: Option<Extension<RequestId>>,
    Path((id, action)): Path<(String, String)>,
    Form(form): Form<ActionForm>,
) -> Response {
    let Ok(Some((_, s))) = session(&state, &headers).await else {
        return to_login();
    };
    if !same(&s.csrf, &form.csrf) {
        return forbidden_form();
    }
    let caller = caller_of(&s);
    let request_id = request_id.map(|Extension(RequestId(r))| r);
    let a = match super::approvals::find(&state, &id).await {
        Ok(a) => a,
        Err(e) => return e.into_response(),
    };
    let now = state.clock.now();
    let policies = state.policies.source();
    let step = match action.as_str() {
        "claim" => domain::claim(&a, &caller, &policies.approvals, now),
        "release" => domain::release(&a, &caller, now),
        "decision" => {
            let request = domain::DecisionRequest {
                kind: form.decision.unwrap_or(DecisionKind::Approve),
                reason_code: form.reason_code.unwrap_or_default(),
                comment: form.comment.filter(|c| !c.trim().is_empty()),
                version: form.version.unwrap_or(-1),
                carrier: form.carrier.filter(|c| !c.is_empty()),
                release_at: None,
            };
            let carriers = match super::approvals::carriers_of(&state, &a).await {
                Ok(c) => c,
                Err(e) => return e.into_response(),
            };
            domain::decide(&a, &caller, &request, &policies.approvals, &carriers, now)
        }
        _ => return ApiError::not_found("no such action").into_response(),
    };
    match super::approvals::apply_step(&state, &caller, &a, step, request_id).await {
        Ok(after) if after.is_open() => {
            Redirect::to(&format!("/ui/approvals/{id}?done={action}")).into_response()
        }
        Ok(after) => Redirect::to(&format!("/ui/queue?done={}", after.state)).into_response(),
        Err(e) => page(
            e.status,
            render::item(&state, &s, &id, Some(&e.message), true).await,
        ),
    }
}
