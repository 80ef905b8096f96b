//! The API's one error type: every failure becomes an RFC 9457
//! `application/problem+json` response naming the offending fields.

use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// One invalid input: the field (a body member or query parameter; empty
/// for the body as a whole) and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// An RFC 9457 problem document, the body of every 4xx and 5xx answer.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Problem {
    /// A URN naming the kind of problem, e.g. `urn:dbaas:problem:validation`.
    #[serde(rename = "type")]
    pub type_: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// The fields at fault; empty when the problem is not about input.
    pub errors: Vec<FieldError>,
}

/// Everything the API answers with other than success.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request could not be read: malformed JSON, invalid UTF-8, a bad
    /// query parameter, an empty PATCH.
    #[error("{detail}")]
    BadRequest {
        detail: String,
        errors: Vec<FieldError>,
    },
    /// No credentials, or credentials that match nothing.
    #[error("{0}")]
    Unauthorized(String),
    /// Valid credentials that may not call this route.
    #[error("{0}")]
    Forbidden(String),
    /// Absent, or owned by another tenant: both answer alike so ids of
    /// other tenants cannot be probed.
    #[error("{0}")]
    NotFound(String),
    #[error("method not allowed")]
    MethodNotAllowed,
    /// The request contradicts the resource's state (duplicate name,
    /// deletion in progress).
    #[error("{detail}")]
    Conflict {
        detail: String,
        errors: Vec<FieldError>,
    },
    /// `If-Match` named a version that is no longer current.
    #[error("{0}")]
    PreconditionFailed(String),
    #[error("the body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// Well-formed JSON whose values break the rules.
    #[error("invalid fields: {}", summary(.0))]
    Unprocessable(Vec<FieldError>),
    #[error("rate limit exceeded, retry in {}s", retry_after_secs(*.retry_after))]
    TooManyRequests { retry_after: Duration },
    /// A dependency (the store) failed; the request may be retried. The
    /// cause is logged (by `log_server_errors`), never sent.
    #[error("{detail}")]
    Unavailable {
        detail: String,
        #[source]
        cause: Option<dbaas_core::Error>,
    },
    /// Too many requests in flight: shed at once, to be retried.
    #[error("the API is at capacity; retry after the time in Retry-After")]
    Overloaded { retry_after: Duration },
    #[error("the request did not finish within {} ms", .0.as_millis())]
    Timeout(Duration),
    /// A bug: a handler panicked (no cause), or a call failed in a way no
    /// request should cause.
    #[error("internal error")]
    Internal(#[source] Option<dbaas_core::Error>),
}

fn summary(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(|e| {
            if e.field.is_empty() {
                e.message.clone()
            } else {
                format!("{}: {}", e.field, e.message)
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Whole seconds, rounded up so a client never retries too early.
fn retry_after_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

impl ApiError {
    pub fn bad_request(field: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        let detail = if field.is_empty() {
            message.clone()
        } else {
            format!("{field}: {message}")
        };
        ApiError::BadRequest {
            detail,
            errors: vec![FieldError::new(field, message)],
        }
    }

    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        ApiError::Unprocessable(vec![FieldError::new(field, message)])
    }

    pub fn conflict(detail: impl Into<String>) -> Self {
        ApiError::Conflict {
            detail: detail.into(),
            errors: Vec::new(),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::PreconditionFailed(_) => StatusCode::PRECONDITION_FAILED,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable { .. } | ApiError::Overloaded { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn slug(&self) -> &'static str {
        match self {
            ApiError::BadRequest { .. } => "bad-request",
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) => "not-found",
            ApiError::MethodNotAllowed => "method-not-allowed",
            ApiError::Conflict { .. } => "conflict",
            ApiError::PreconditionFailed(_) => "precondition-failed",
            ApiError::PayloadTooLarge(_) => "payload-too-large",
            ApiError::UnsupportedMediaType(_) => "unsupported-media-type",
            ApiError::Unprocessable(_) => "validation",
            ApiError::TooManyRequests { .. } => "rate-limited",
            ApiError::Unavailable { .. } => "unavailable",
            ApiError::Overloaded { .. } => "overloaded",
            ApiError::Timeout(_) => "timeout",
            ApiError::Internal(_) => "internal",
        }
    }

    /// The response body.
    pub fn problem(&self) -> Problem {
        let status = self.status();
        let errors = match self {
            ApiError::BadRequest { errors, .. }
            | ApiError::Conflict { errors, .. }
            | ApiError::Unprocessable(errors) => errors.clone(),
            _ => Vec::new(),
        };
        Problem {
            type_: format!("urn:dbaas:problem:{}", self.slug()),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: self.to_string(),
            errors,
        }
    }
}

impl ApiError {
    /// The store could not answer: the client may retry.
    pub fn unavailable(detail: impl Into<String>, cause: Option<dbaas_core::Error>) -> Self {
        ApiError::Unavailable {
            detail: detail.into(),
            cause,
        }
    }
}

impl From<dbaas_core::Error> for ApiError {
    /// A store that is down or slow is the client's to retry: 503. Anything
    /// else from below is a bug: 500. The cause stays in the log (it can
    /// name internals), written once by `log_server_errors`.
    fn from(e: dbaas_core::Error) -> Self {
        use dbaas_core::Error;
        match e {
            Error::Conflict(_) => {
                ApiError::conflict("the request conflicts with an existing resource")
            }
            e @ (Error::Store(_) | Error::Timeout(_)) => {
                ApiError::unavailable("the store is unavailable; retry later", Some(e))
            }
            e => ApiError::Internal(Some(e)),
        }
    }
}

/// Why a request failed on the server's side, attached to a 5xx response
/// for `log_server_errors`: the error and its sources, one line.
#[derive(Debug, Clone)]
pub struct ServerErrorCause(pub std::sync::Arc<str>);

impl ServerErrorCause {
    fn of(e: &ApiError) -> Self {
        let mut text = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            text.push_str(": ");
            text.push_str(&s.to_string());
            source = s.source();
        }
        if matches!(e, ApiError::Internal(None)) {
            text.push_str(": a handler panicked");
        }
        ServerErrorCause(text.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self.problem()).expect("a problem always serializes");
        let mut response = (self.status(), body).into_response();
        if self.status().is_server_error() {
            response
                .extensions_mut()
                .insert(ServerErrorCause::of(&self));
        }
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        match &self {
            ApiError::Unauthorized(_) => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            ApiError::TooManyRequests { retry_after } | ApiError::Overloaded { retry_after } => {
                headers.insert(header::RETRY_AFTER, retry_after_secs(*retry_after).into());
            }
            _ => {}
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_carry_status_title_and_fields() {
        let p = ApiError::invalid("size", "unknown size").problem();
        assert_eq!(p.status, 422);
        assert_eq!(p.type_, "urn:dbaas:problem:validation");
        assert_eq!(p.title, "Unprocessable Entity");
        assert_eq!(p.errors, vec![FieldError::new("size", "unknown size")]);
        assert_eq!(p.detail, "invalid fields: size: unknown size");
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(retry_after_secs(Duration::from_millis(10)), 1);
        assert_eq!(retry_after_secs(Duration::from_secs(2)), 2);
        let r = ApiError::TooManyRequests {
            retry_after: Duration::from_millis(1500),
        }
        .into_response();
        assert_eq!(r.headers()[header::RETRY_AFTER], "2");
        assert_eq!(r.headers()[header::CONTENT_TYPE], PROBLEM_JSON);
    }

    #[test]
    fn store_errors_are_unavailable_not_internal() {
        let e: ApiError = dbaas_core::Error::Store("connection refused".into()).into();
        assert_eq!(e.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(!e.to_string().contains("connection refused"));
        let r = e.into_response();
        let cause = r.extensions().get::<ServerErrorCause>().expect("a cause");
        assert!(cause.0.contains("connection refused"), "{}", cause.0);
    }

    #[test]
    fn other_errors_from_below_are_bugs() {
        let e: ApiError = dbaas_core::Error::Config("no such thing".into()).into();
        assert_eq!(e.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(e.problem().detail, "internal error");
    }
}
