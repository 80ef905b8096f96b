//! `/api/v1/databases/{id}/events`: a database's history, read-only.

use axum::Json;
use axum::extract::State;

use super::AppState;
use super::auth::Caller;
use super::databases::find;
use super::error::{ApiError, Problem};
use super::extract::{PathId, QueryParams};
use super::page::{Page, parse_time_id_cursor, time_id_cursor};
use super::validation::page_limit;
use dbaas_core::domain::Event;
use dbaas_store::EventQuery;

/// List a database's events, newest first (also after it was deleted).
#[utoipa::path(
    get, path = "/api/v1/databases/{id}/events", tag = "databases",
    params(
        ("id" = String, Path, description = "Database id"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 200, description = "Page size, 1 to 200 (default 50)"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
    ),
    responses(
        (status = 200, description = "A page of events", body = Page<Event>),
        (status = 400, description = "Invalid query parameter", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid API key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such database", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Store unavailable", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId,
    mut params: QueryParams,
) -> Result<Json<Page<Event>>, ApiError> {
    let limit = page_limit(params.take("limit")?.as_deref())?;
    let before = params
        .take("cursor")?
        .map(|c| parse_time_id_cursor(&c))
        .transpose()?;
    params.finish()?;
    let db = find(&state, &caller, &id).await?;
    let query = EventQuery {
        database_id: db.id,
        before,
        limit: Some(limit + 1),
    };
    let items = state.store.list_events(&query).await?;
    Ok(Json(Page::from_overfetch(items, limit, |e| {
        time_id_cursor(e.at, &e.id)
    })))
}
