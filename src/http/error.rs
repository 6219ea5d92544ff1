//! The one error type at the HTTP boundary. Every failure answers with the same JSON shape,
//! `{"error": {"code", "message", "field"?}}`, where `code` is stable and machine-readable (the
//! workflows that call the service branch on it) and `message` says what was expected.
//!
//! The codes are [`Code`]'s; the README lists them, and a test holds it to that list.

use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

/// The stable codes of error answers: workflows branch on them, so a code never changes
/// meaning and new failures get new codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Code {
    InvalidRequest,
    InvalidField,
    MalformedJson,
    UnsupportedMediaType,
    PayloadTooLarge,
    BatchTooLarge,
    Unauthorized,
    Forbidden,
    NotFound,
    IdempotencyKeyReused,
    IdempotencyInProgress,
    OutcomeConflict,
    UnknownCarrier,
    PersonRequired,
    SeparationOfDuties,
    ApprovalClosed,
    ApprovalClaimed,
    VersionConflict,
    SecondApproverRequired,
    ExceptionResolved,
    RateLimited,
    ReloadRefused,
    Unavailable,
    StoreUnavailable,
    StoreFull,
    Overloaded,
    Timeout,
    Internal,
}

impl Code {
    pub const ALL: [Code; 28] = [
        Code::InvalidRequest,
        Code::InvalidField,
        Code::MalformedJson,
        Code::UnsupportedMediaType,
        Code::PayloadTooLarge,
        Code::BatchTooLarge,
        Code::Unauthorized,
        Code::Forbidden,
        Code::NotFound,
        Code::IdempotencyKeyReused,
        Code::IdempotencyInProgress,
        Code::OutcomeConflict,
        Code::UnknownCarrier,
        Code::PersonRequired,
        Code::SeparationOfDuties,
        Code::ApprovalClosed,
        Code::ApprovalClaimed,
        Code::VersionConflict,
        Code::SecondApproverRequired,
        Code::ExceptionResolved,
        Code::RateLimited,
        Code::ReloadRefused,
        Code::Unavailable,
        Code::StoreUnavailable,
        Code::StoreFull,
        Code::Overloaded,
        Code::Timeout,
        Code::Internal,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Code::InvalidRequest => "invalid_request",
            Code::InvalidField => "invalid_field",
            Code::MalformedJson => "malformed_json",
            Code::UnsupportedMediaType => "unsupported_media_type",
            Code::PayloadTooLarge => "payload_too_large",
            Code::BatchTooLarge => "batch_too_large",
            Code::Unauthorized => "unauthorized",
            Code::Forbidden => "forbidden",
            Code::NotFound => "not_found",
            Code::IdempotencyKeyReused => "idempotency_key_reused",
            Code::IdempotencyInProgress => "idempotency_in_progress",
            Code::OutcomeConflict => "outcome_conflict",
            Code::UnknownCarrier => "unknown_carrier",
            Code::PersonRequired => "person_required",
            Code::SeparationOfDuties => "separation_of_duties",
            Code::ApprovalClosed => "approval_closed",
            Code::ApprovalClaimed => "approval_claimed",
            Code::VersionConflict => "version_conflict",
            Code::SecondApproverRequired => "second_approver_required",
            Code::ExceptionResolved => "exception_resolved",
            Code::RateLimited => "rate_limited",
            Code::ReloadRefused => "reload_refused",
            Code::Unavailable => "unavailable",
            Code::StoreUnavailable => "store_unavailable",
            Code::StoreFull => "store_full",
            Code::Overloaded => "overloaded",
            Code::Timeout => "timeout",
            Code::Internal => "internal",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: Code,
    pub message: String,
    pub field: Option<String>,
    /// Seconds after which a retry may succeed (`Retry-After`), for a 503.
    pub retry_after: Option<u32>,
}

/// The error body, as documented in the OpenAPI description.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorDetail<'a> {
    /// Stable, machine-readable.
    code: &'a str,
    /// What was wrong and what was expected.
    message: &'a str,
    /// The request field at fault, when one is.
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, code: Code, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            field: None,
            retry_after: None,
        }
    }

    /// Says when a retry may succeed.
    pub fn retry_after(self, seconds: u32) -> Self {
        ApiError {
            retry_after: Some(seconds),
            ..self
        }
    }

    /// A request field holds a value the service cannot use.
    pub fn invalid_field(field: &str, message: impl Into<String>) -> Self {
        ApiError {
            field: Some(field.to_string()),
            ..Self::new(StatusCode::BAD_REQUEST, Code::InvalidField, message)
        }
    }

    /// A request whose JSON does not fit the route's type: a missing field, a wrong type.
    pub fn invalid_request(field: Option<String>, message: impl Into<String>) -> Self {
        ApiError {
            field,
            ..Self::new(StatusCode::BAD_REQUEST, Code::InvalidRequest, message)
        }
    }

    /// A request that is well-formed but breaks a rule of the route (a batch over the limit).
    pub fn unprocessable(code: Code, field: Option<&str>, message: impl Into<String>) -> Self {
        ApiError {
            field: field.map(str::to_string),
            ..Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
        }
    }

    pub fn conflict(code: Code, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, Code::NotFound, message)
    }

    /// A part the answer needs is not working (the policy threads, the store).
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, Code::Unavailable, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, Code::Internal, message)
    }
}

impl ApiError {
    /// What the client reads. A 5xx message is the service's own context ("store", "checking
    /// the batch"); what follows its first colon is the underlying error (a database's text,
    /// a path), which goes to the log under an id the answer gives instead.
    fn public_message(&self) -> std::borrow::Cow<'_, str> {
        if !self.status.is_server_error() {
            return self.message.as_str().into();
        }
        let id: u64 = rand::random();
        let id = format!("{id:016x}");
        tracing::error!(error_id = %id, code = self.code.as_str(), message = %self.message, "request failed");
        let context = self
            .message
            .split_once(':')
            .map_or(self.message.as_str(), |(c, _)| c);
        let summary = match self.code {
            Code::Internal => "internal error",
            _ => context,
        };
        format!("{summary} (error {id}; the details are in the service's log)").into()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let message = self.public_message();
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.as_str(),
                message: &message,
                field: self.field.as_deref(),
            },
        };
        let mut r = (self.status, Json(body)).into_response();
        if let Some(s) = self.retry_after {
            r.headers_mut()
                .insert(axum::http::header::RETRY_AFTER, s.into());
        }
        r
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        match r {
            JsonRejection::JsonDataError(e) => {
                // serde's message names the field and what it expected ("missing field `text`",
                // "invalid type: integer `3`, expected a string"); the path says where.
                let detail = std::error::Error::source(&e)
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| e.body_text());
                Self::invalid_request(field_of(&detail), detail)
            }
            JsonRejection::JsonSyntaxError(e) => super::json::malformed(&e.body_text()),
            JsonRejection::MissingJsonContentType(_) => super::json::not_json(),
            other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => Self::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                Code::PayloadTooLarge,
                "the body is larger than the service accepts",
            ),
            other => Self::new(other.status(), Code::InvalidRequest, other.body_text()),
        }
    }
}

/// A store that cannot be reached answers 503 with `Retry-After`; anything else it reports is
/// the service's fault.
impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        use crate::store::StoreError;
        match e {
            StoreError::Write(w) => super::idempotency::write_error(w),
            StoreError::Sql(ref sql) if crate::store::unreachable(sql) => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                Code::StoreUnavailable,
                format!("the database is unreachable: {e}"),
            )
            .retry_after(5),
            StoreError::RecorderStopped => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                Code::StoreUnavailable,
                format!("the store is shutting down: {e}"),
            )
            .retry_after(5),
            other => Self::internal(format!("store: {other}")),
        }
    }
}

/// The field a serde message is about: the path before `: ` ("items[0].text: invalid type"),
/// or the name in backticks of "missing field `text`" and "unknown field `colour`".
pub(crate) fn field_of(detail: &str) -> Option<String> {
    for prefix in ["missing field `", "unknown field `"] {
        if let Some(rest) = detail.strip_prefix(prefix) {
            return rest.split('`').next().map(str::to_string);
        }
    }
    detail
        .split_once(": ")
        .map(|(path, _)| path.to_string())
        .filter(|p| !p.contains(' '))
}

#[cfg(test)]
mod tests {
    use super::{field_of, ApiError};
    use axum::response::IntoResponse;

    async fn body_of(e: ApiError) -> (u16, serde_json::Value) {
        let r = e.into_response();
        let status = r.status().as_u16();
        let bytes = axum::body::to_bytes(r.into_body(), 1 << 16).await.unwrap();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn server_errors_keep_the_underlying_error_out_of_the_answer() {
        let secret = "relation \"scores\" does not exist at postgres://svc:hunter2@db/prod";
        let (s, b) = body_of(ApiError::internal(format!("idempotency store: {secret}"))).await;
        let m = b["error"]["message"].as_str().unwrap();
        assert_eq!((s, b["error"]["code"].as_str()), (500, Some("internal")));
        assert!(
            m.starts_with("internal error (error ") && !m.contains("hunter2"),
            "{m}"
        );
        let (s, b) = body_of(ApiError::unavailable(format!("store: {secret}"))).await;
        let m = b["error"]["message"].as_str().unwrap();
        assert_eq!(s, 503);
        assert!(
            m.starts_with("store (error ") && !m.contains("relation"),
            "{m}"
        );
        // Client errors say exactly what was wrong.
        let (s, b) = body_of(ApiError::invalid_field(
            "weight_kg",
            "-1 is not a number >= 0",
        ))
        .await;
        assert_eq!(
            (s, b["error"]["message"].as_str()),
            (400, Some("-1 is not a number >= 0"))
        );
    }

    #[test]
    fn the_readme_lists_every_code() {
        let readme = include_str!("../../README.md");
        let listed = readme
            .split("Error codes (`error.code`, stable):")
            .nth(1)
            .and_then(|rest| rest.split("\n\n").next())
            .expect("the README's list of error codes");
        for code in super::Code::ALL {
            assert!(
                listed.contains(&format!("`{}`", code.as_str())),
                "the README does not list `{}`",
                code.as_str()
            );
        }
    }

    #[test]
    fn serde_messages_name_their_field() {
        let f = |m: &str| field_of(m);
        assert_eq!(
            f("missing field `text` at line 1 column 2").as_deref(),
            Some("text")
        );
        assert_eq!(
            f("unknown field `colour`, expected `text`").as_deref(),
            Some("colour")
        );
        assert_eq!(
            f("items[0].text: invalid type: integer `3`, expected a string").as_deref(),
            Some("items[0].text")
        );
        assert_eq!(f("expected value at line 1 column 1"), None);
    }
}
