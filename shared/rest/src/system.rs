//! Probes, metrics and the OpenAPI document.

use std::sync::LazyLock;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use serde_json::{Value, json};
use utoipa::OpenApi;

use super::AppState;
use super::error::{ApiError, Problem};
use super::openapi::ApiDoc;

/// Longest a readiness probe waits for the store.
const READINESS_TIMEOUT: Duration = Duration::from_secs(2);

/// Generated on first request, not at start-up, to keep cold starts fast.
static OPENAPI_JSON: LazyLock<String> = LazyLock::new(|| {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).expect("the OpenAPI document serializes");
    allow_empty_query_values(&mut doc);
    serde_json::to_string_pretty(&doc).expect("the OpenAPI document serializes")
});

/// Query parameters take an empty value as absent (`limit=` is the default
/// page size, see `QueryParams::take`); the document says so with
/// `allowEmptyValue`, which utoipa cannot set.
fn allow_empty_query_values(doc: &mut Value) {
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for operation in paths
        .values_mut()
        .filter_map(Value::as_object_mut)
        .flat_map(|p| p.values_mut())
    {
        let Some(params) = operation
            .get_mut("parameters")
            .and_then(Value::as_array_mut)
        else {
            continue;
        };
        for param in params.iter_mut().filter(|p| p["in"] == "query") {
            param["allowEmptyValue"] = Value::Bool(true);
        }
    }
}

/// Liveness: the process answers. Touches nothing else, so a store outage
/// does not get the pod restarted.
#[utoipa::path(get, path = "/healthz", tag = "system",
    responses((status = 200, description = "Alive", body = Value, example = json!({"status": "ok"}))))]
pub async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// Readiness: the store answers a ping in time.
#[utoipa::path(get, path = "/readyz", tag = "system",
    responses(
        (status = 200, description = "Ready", body = Value, example = json!({"status": "ready"})),
        (status = 503, description = "The store is unreachable", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn readyz(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    // Half the request budget at most, so the probe answers 503 itself
    // rather than being cut off by the request timeout.
    let budget = READINESS_TIMEOUT.min(state.limits.request_timeout / 2);
    match tokio::time::timeout(budget, state.store.ping()).await {
        Ok(Ok(())) => Ok(Json(json!({"status": "ready"}))),
        Ok(Err(e)) => Err(e.into()),
        Err(_) => Err(ApiError::unavailable(
            format!(
                "the store did not answer a ping within {} ms",
                budget.as_millis()
            ),
            None,
        )),
    }
}

/// Prometheus metrics in the text exposition format.
#[utoipa::path(get, path = "/metrics", tag = "system",
    responses((status = 200, description = "Metrics", body = String, content_type = "text/plain")))]
pub async fn metrics(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let text = state
        .metrics
        .render()
        .map_err(|e| ApiError::Internal(Some(dbaas_core::Error::Metrics(Box::new(e)))))?;
    Ok(([(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)], text))
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "system",
    responses((status = 200, description = "The OpenAPI 3.1 document", body = Value)))]
pub async fn openapi() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        OPENAPI_JSON.as_str(),
    )
}
