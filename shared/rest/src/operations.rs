//! `/api/v1/operations`: the changes the reconciler planned, read-only.

use axum::Json;
use axum::extract::State;

use super::AppState;
use super::auth::Caller;
use super::error::{ApiError, Problem};
use super::extract::{PathId, QueryParams};
use super::page::{Page, parse_time_id_cursor, time_id_cursor};
use super::validation::page_limit;
use dbaas_core::domain::Operation;
use dbaas_store::OperationQuery;

/// List the caller's operations, newest first.
#[utoipa::path(
    get, path = "/api/v1/operations", tag = "operations",
    params(
        ("database_id" = Option<String>, Query, description = "Only this database's operations"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 200, description = "Page size, 1 to 200 (default 50)"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
    ),
    responses(
        (status = 200, description = "A page of operations", body = Page<Operation>),
        (status = 400, description = "Invalid query parameter", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid API key", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Store unavailable", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    mut params: QueryParams,
) -> Result<Json<Page<Operation>>, ApiError> {
    let limit = page_limit(params.take("limit")?.as_deref())?;
    let before = params
        .take("cursor")?
        .map(|c| parse_time_id_cursor(&c))
        .transpose()?;
    let database_id = params.take("database_id")?;
    params.finish()?;
    let query = OperationQuery {
        tenant_id: Some(caller.tenant_id),
        database_id,
        statuses: Vec::new(),
        before,
        limit: Some(limit + 1),
    };
    let items = state.store.list_operations(&query).await?;
    Ok(Json(Page::from_overfetch(items, limit, |op| {
        time_id_cursor(op.created_at, &op.id)
    })))
}

/// Read an operation.
#[utoipa::path(
    get, path = "/api/v1/operations/{id}", tag = "operations",
    params(("id" = String, Path, description = "Operation id")),
    responses(
        (status = 200, description = "The operation", body = Operation),
        (status = 400, description = "The id is not valid UTF-8 once percent-decoded", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid API key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such operation", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Store unavailable", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId,
) -> Result<Json<Operation>, ApiError> {
    match state.store.get_operation(&id).await? {
        Some(op) if op.tenant_id == caller.tenant_id => Ok(Json(op)),
        _ => Err(ApiError::NotFound(format!("operation {id} not found"))),
    }
}
