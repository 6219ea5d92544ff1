//! `ApiJson<T>`: axum's JSON extractor with its rejections turned into [`ApiError`], so a
//! malformed body gets the same error shape as every other failure.

use axum::extract::{FromRequest, Request};

use super::error::{ApiError, Code};

pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    axum::Json<T>: FromRequest<S, Rejection = axum::extract::rejection::JsonRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let axum::Json(value) = axum::Json::<T>::from_request(req, state).await?;
        Ok(ApiJson(value))
    }
}

/// Whether the request says its body is JSON (`application/json`, or `application/*+json`),
/// as axum's extractor requires.
pub fn is_json(headers: &axum::http::HeaderMap) -> bool {
    let Some(ct) = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

pub fn not_json() -> ApiError {
    ApiError::new(
        axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
        Code::UnsupportedMediaType,
        "send the body as JSON with `Content-Type: application/json`",
    )
}

pub fn malformed(detail: &str) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::BAD_REQUEST,
        Code::MalformedJson,
        format!("the body is not valid JSON: {detail}"),
    )
}

/// The raw body, its rejections (over the route's size limit, mostly) in the API's shape.
pub struct ApiBytes(pub axum::body::Bytes);

impl<S: Send + Sync> FromRequest<S> for ApiBytes {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        axum::body::Bytes::from_request(req, state)
            .await
            .map(ApiBytes)
            .map_err(|r| {
                if r.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::new(
                        axum::http::StatusCode::PAYLOAD_TOO_LARGE,
                        Code::PayloadTooLarge,
                        "the body is larger than the service accepts",
                    )
                } else {
                    ApiError::new(r.status(), Code::InvalidRequest, r.body_text())
                }
            })
    }
}
