//! The HTTP client: bearer auth, problem+json answers as one-line errors,
//! and retries of idempotent requests over network trouble.

use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use reqwest::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::Error;
use crate::model::{Database, Operation};

/// Retries of an idempotent request: about 4 s in all before giving up.
const RETRIES: usize = 4;

/// How long one request may take, answer included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A client of one API with one key.
pub struct Client {
    http: reqwest::Client,
    base: String,
    key: String,
}

/// An RFC 9457 problem body, as the API sends with every error.
#[derive(Debug, Default, Deserialize)]
struct Problem {
    #[serde(default)]
    title: String,
    #[serde(default)]
    detail: String,
    #[serde(default)]
    errors: Vec<FieldError>,
}

#[derive(Debug, Deserialize)]
struct FieldError {
    #[serde(default)]
    field: String,
    #[serde(default)]
    message: String,
}

/// A query without parameters.
pub const NO_QUERY: &[(&str, &str); 0] = &[];

impl Client {
    pub fn new(base: &str, key: String) -> Result<Client, Error> {
        let base = base.trim_end_matches('/').to_string();
        reqwest::Url::parse(&base)
            .map_err(|e| Error::Usage(format!("invalid API URL {base}: {e}")))?;
        let http = reqwest::Client::builder()
            .user_agent(concat!("dbaasctl/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(5))
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|e| Error::Network(format!("cannot set up the HTTP client: {e}")))?;
        Ok(Client { http, base, key })
    }

    /// GET `/api/v1{path}`.
    pub async fn get(&self, path: &str, query: &impl Serialize) -> Result<Value, Error> {
        self.call(Method::GET, path, query, None::<&()>).await
    }

    /// POST `/api/v1{path}`, never retried: the API may have acted on it.
    pub async fn post(&self, path: &str, body: Option<&impl Serialize>) -> Result<Value, Error> {
        self.call(Method::POST, path, NO_QUERY, body).await
    }

    /// PATCH `/api/v1{path}`, never retried.
    pub async fn patch(&self, path: &str, body: &impl Serialize) -> Result<Value, Error> {
        self.call(Method::PATCH, path, NO_QUERY, Some(body)).await
    }

    /// DELETE `/api/v1{path}`.
    pub async fn delete(&self, path: &str) -> Result<Value, Error> {
        self.call(Method::DELETE, path, NO_QUERY, None::<&()>).await
    }

    /// The operation working on `db`, for context in tables and progress
    /// lines only: one that cannot be read (it may have just ended) is
    /// left out rather than failing the command.
    pub async fn active_operation(&self, db: &Database) -> Option<Operation> {
        let id = db.active_operation_id.as_deref()?;
        let value = self.get(&op_path(id), NO_QUERY).await.ok()?;
        serde_json::from_value(value).ok()
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        query: &impl Serialize,
        body: Option<&impl Serialize>,
    ) -> Result<Value, Error> {
        let url = format!("{}/api/v1{path}", self.base);
        let once = || self.once(method.clone(), &url, query, body);
        if method.is_idempotent() {
            once.retry(
                ExponentialBuilder::default()
                    .with_min_delay(Duration::from_millis(250))
                    .with_max_delay(Duration::from_secs(5))
                    .with_max_times(RETRIES)
                    .with_jitter(),
            )
            .when(is_transient)
            .await
        } else {
            once().await
        }
    }

    async fn once(
        &self,
        method: Method,
        url: &str,
        query: &impl Serialize,
        body: Option<&impl Serialize>,
    ) -> Result<Value, Error> {
        let mut request = self
            .http
            .request(method, url)
            .bearer_auth(&self.key)
            .query(query);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|e| network(&self.base, &e))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| network(&self.base, &e))?;
        if !status.is_success() {
            return Err(Error::Api {
                status: status.as_u16(),
                message: problem_line(status, &bytes),
            });
        }
        serde_json::from_slice(&bytes).map_err(|e| Error::Decode {
            url: url.to_string(),
            reason: e.to_string(),
        })
    }
}

/// The path of a database. Ids are the API's own (`db-…`), but a typed one
/// may hold anything, so it is escaped as one path segment.
pub fn db_path(id: &str) -> String {
    format!("/databases/{}", segment(id))
}

pub fn op_path(id: &str) -> String {
    format!("/operations/{}", segment(id))
}

fn segment(id: &str) -> String {
    let mut url = reqwest::Url::parse("http://x/").expect("a valid base");
    url.path_segments_mut().expect("a base URL").push(id);
    url.path().trim_start_matches('/').to_string()
}

/// Worth another try: no answer at all, or a gateway or rate limit saying
/// "not now".
fn is_transient(e: &Error) -> bool {
    match e {
        Error::Network(_) => true,
        Error::Api { status, .. } => matches!(*status, 429 | 502 | 503 | 504),
        _ => false,
    }
}

/// A transport failure in one line: for a refused connection the OS's
/// reason, not reqwest's nested wrappers.
fn network(base: &str, e: &reqwest::Error) -> Error {
    if e.is_timeout() {
        return Error::Network(format!("{base} did not answer in time"));
    }
    let mut innermost: &dyn std::error::Error = e;
    while let Some(source) = innermost.source() {
        innermost = source;
    }
    let what = if e.is_connect() {
        "cannot connect to"
    } else {
        "lost the connection to"
    };
    Error::Network(format!("{what} {base}: {innermost}"))
}

/// The error answer as one line naming the fields at fault: for a
/// validation error `storage_gb: storage only grows: ...` (its detail only
/// repeats that), otherwise the detail with the fields after it. The title,
/// or the status's reason, when the body says nothing more.
fn problem_line(status: StatusCode, body: &[u8]) -> String {
    let problem: Problem = serde_json::from_slice(body).unwrap_or_default();
    let fields = problem
        .errors
        .iter()
        .map(|e| {
            if e.field.is_empty() {
                e.message.clone()
            } else {
                format!("{}: {}", e.field, e.message)
            }
        })
        .collect::<Vec<_>>()
        .join("; ");
    let text = match (fields.is_empty(), problem.detail.is_empty()) {
        (false, true) => fields,
        (false, false) if problem.detail.contains(&fields) => fields,
        (false, false) => format!("{} ({fields})", problem.detail),
        (true, false) => problem.detail,
        (true, true) if !problem.title.is_empty() => problem.title,
        (true, true) => status.canonical_reason().unwrap_or("error").to_string(),
    };
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_become_one_line_naming_the_fields() {
        let body = br#"{"type":"urn:dbaas:problem:validation","title":"Unprocessable Entity","status":422,
            "detail":"invalid fields: storage_gb: storage only grows; size: unknown size\nx",
            "errors":[{"field":"storage_gb","message":"storage only grows"},{"field":"size","message":"unknown size\nx"}]}"#;
        assert_eq!(
            problem_line(StatusCode::UNPROCESSABLE_ENTITY, body),
            "storage_gb: storage only grows; size: unknown size x"
        );
        let body =
            br#"{"title":"Not Found","status":404,"detail":"database db-x not found","errors":[]}"#;
        assert_eq!(
            problem_line(StatusCode::NOT_FOUND, body),
            "database db-x not found"
        );
        assert_eq!(
            problem_line(StatusCode::BAD_GATEWAY, b"<html>proxy</html>"),
            "Bad Gateway"
        );
    }

    #[test]
    fn typed_ids_stay_one_path_segment() {
        assert_eq!(db_path("db-abc"), "/databases/db-abc");
        assert_eq!(db_path("../admin?x"), "/databases/..%2Fadmin%3Fx");
        assert_eq!(op_path("op 1"), "/operations/op%201");
    }

    #[test]
    fn only_unanswered_or_gateway_errors_are_retried() {
        assert!(is_transient(&Error::Network("refused".into())));
        for status in [429, 502, 503, 504] {
            assert!(is_transient(&Error::Api {
                status,
                message: String::new()
            }));
        }
        for status in [400, 404, 409, 422, 500] {
            assert!(!is_transient(&Error::Api {
                status,
                message: String::new()
            }));
        }
    }
}
