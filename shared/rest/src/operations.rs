//! `/api/v1/operations`: the changes the reconciler planned, and cancelling
//! one that has not reached the cluster yet.

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, SubsecRound, TimeDelta, Utc};

use super::AppState;
use super::auth::Caller;
use super::databases::{CAS_ATTEMPTS, describe_change};
use super::error::{ApiError, Problem};
use super::extract::{PathId, QueryParams};
use super::page::{Page, parse_time_id_cursor, time_id_cursor};
use super::validation::page_limit;
use dbaas_core::domain::{Event, EventType, Operation, OperationStatus};
use dbaas_store::{DesiredChange, OperationQuery};

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
    Ok(Json(find(&state, &caller, &id).await?))
}

async fn find(state: &AppState, caller: &Caller, id: &str) -> Result<Operation, ApiError> {
    match state.store.get_operation(id).await? {
        Some(op) if op.tenant_id == caller.tenant_id => Ok(op),
        _ => Err(ApiError::NotFound(format!("operation {id} not found"))),
    }
}

/// Why `op` cannot be cancelled now, if it cannot.
fn refusal(op: &Operation) -> Option<String> {
    if let Some(why) = op.cancel_refusal() {
        return Some(why.to_string());
    }
    if op.status.is_final() {
        return Some(format!(
            "operation {} already ended {}",
            op.id,
            op.status.as_str()
        ));
    }
    match (&op.ops_request_name, op.status) {
        (Some(name), OperationStatus::Pending | OperationStatus::Running) => Some(format!(
            "the OpsRequest {name} exists and KubeDB cannot cancel it: wait for it to end, then PATCH the database back"
        )),
        _ => None,
    }
}

/// Cancel an operation: take its change back.
///
/// Allowed while the operation's OpsRequest does not exist yet (pending,
/// or claimed by a worker that has not created it) or after its attempt
/// failed. The operation ends `cancelled` and the database's desired field
/// it targets goes back to its current value (a new generation), unless a
/// later change replaced that value. Provisions, deletions, pauses,
/// resumes and deletion policy changes cannot be cancelled.
#[utoipa::path(
    post, path = "/api/v1/operations/{id}/cancel", tag = "operations",
    params(("id" = String, Path, description = "Operation id")),
    responses(
        (status = 200, description = "Cancelled; its change was taken back", body = Operation),
        (status = 400, description = "The id is not valid UTF-8 once percent-decoded", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid API key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such operation", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Ended, its OpsRequest exists, or of a type that cannot be cancelled", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Store unavailable", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId,
) -> Result<Json<Operation>, ApiError> {
    let op = find(&state, &caller, &id).await?;
    if let Some(why) = refusal(&op) {
        return Err(ApiError::conflict(why));
    }
    let now = Utc::now().trunc_subsecs(3);
    let mut event = Event::of_operation(
        &op,
        EventType::OperationCancelled,
        format!("cancelled with API key {}", caller.api_key),
        now,
    );
    event.api_key = Some(caller.api_key.clone());
    // The commit point: a compare-and-set that a worker recording its
    // OpsRequest name excludes, so no OpsRequest is made after it.
    let Some(cancelled) = state.store.cancel_operation(&id, now, &[event]).await? else {
        // Something moved first: say what.
        let now_op = find(&state, &caller, &id).await?;
        return Err(ApiError::conflict(refusal(&now_op).unwrap_or_else(|| {
            format!("operation {id} changed while being cancelled; retry")
        })));
    };
    take_back(&state, &caller, &cancelled, now).await?;
    state
        .store
        .end_operation(&cancelled.database_id, &cancelled.id)
        .await?;
    Ok(Json(cancelled))
}

/// Puts the desired field a cancelled operation targeted back to its
/// current value. If this process dies first, the reconciler does it. Its
/// event is dated after `cancelled_at`, so the history lists the cancel
/// first even within one millisecond (ties sort by random id).
async fn take_back(
    state: &AppState,
    caller: &Caller,
    op: &Operation,
    cancelled_at: DateTime<Utc>,
) -> Result<(), ApiError> {
    let at = Utc::now()
        .trunc_subsecs(3)
        .max(cancelled_at + TimeDelta::milliseconds(1));
    for _ in 0..CAS_ATTEMPTS {
        let Some(db) = state.store.get_database(&op.database_id).await? else {
            return Ok(());
        };
        let Some(back) = db.taken_back(op).filter(|_| !db.deletion_requested) else {
            return Ok(());
        };
        let mut change = DesiredChange::setting(back);
        change.events.push(Event::new(
            &db,
            EventType::DesiredChanged,
            Some(&caller.api_key),
            format!(
                "{} (taken back by the cancel of {}, API key {})",
                describe_change(&db, &change),
                op.id,
                caller.api_key
            ),
            at,
        ));
        if state
            .store
            .update_desired(&db.id, db.generation, &change)
            .await?
            .is_some()
        {
            return Ok(());
        }
    }
    // The reconciler finishes it (see its handling of cancelled operations).
    Ok(())
}
