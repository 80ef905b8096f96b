//! `/api/v1/databases/{id}/plan` and `/api/v1/databases/plan`: what the
//! reconciler will do, without doing it.
//!
//! The steps come from [`drift::steps`], the same pure code the reconciler
//! plans with, over the last observed state the store holds (the API never
//! reads the cluster): the operation under way first, then each operation
//! the following passes would plan once the one before it succeeded.

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::AppState;
use super::auth::Caller;
use super::databases::{CreateDatabase, PatchDatabase, find};
use super::error::{ApiError, Problem};
use super::extract::{ApiJson, PathId, from_value};
use super::validation::{check_create, check_patch};
use super::versions;
use dbaas_core::domain::{Action, Database, DesiredState, OperationType, Spec};
use dbaas_core::drift::{self, Change, Disruption, Plan};

/// What the reconciler will do for a database, in order.
#[derive(Debug, Serialize, ToSchema)]
pub struct PlanView {
    /// Null for a database not created yet.
    pub database_id: Option<String>,
    /// Desired and current state agree and nothing is under way.
    pub in_sync: bool,
    /// Why nothing more is planned now, if something holds it back.
    pub waiting: Option<String>,
    pub steps: Vec<PlanStep>,
}

/// One operation of a plan.
#[derive(Debug, Serialize, ToSchema)]
pub struct PlanStep {
    #[serde(rename = "type")]
    pub type_: OperationType,
    /// The values it brings the database to.
    pub target: DesiredState,
    /// The KubeDB OpsRequest `spec.type` it creates; null when it creates,
    /// patches or deletes the database resource instead.
    pub ops_request_type: Option<&'static str>,
    pub disruption: Disruption,
    /// Why it is that disruptive, in one line.
    pub reason: &'static str,
    /// It is the operation under way (it comes first).
    pub running: bool,
    /// The operation, for the one under way.
    pub operation_id: Option<String>,
}

impl PlanStep {
    fn of(action: Action, replicas: u32, operation_id: Option<String>) -> PlanStep {
        let (disruption, reason) = action.disruption(replicas);
        PlanStep {
            type_: action.operation_type(),
            target: action.desired_state(),
            ops_request_type: match action {
                Action::Change(c) => c.ops_type(),
                Action::Provision(_) | Action::Deprovision => None,
            },
            disruption,
            reason,
            running: operation_id.is_some(),
            operation_id,
        }
    }
}

/// The plan for `db` as recorded: its unfinished active operation first,
/// then what the passes after it would plan.
async fn plan_for(state: &AppState, db: &Database) -> Result<PlanView, ApiError> {
    let observed = db.observed();
    let desired = db.desired(observed.as_ref());
    let mut steps = Vec::new();
    let mut in_flight = Vec::new();
    let mut current = observed;
    let mut waiting = None;
    if let Some(id) = &db.active_operation_id
        && let Some(op) = state.store.get_operation(id).await?
        && !op.status.is_final()
    {
        steps.push(PlanStep::of(op.action, db.replicas, Some(op.id.clone())));
        match op.action {
            Action::Change(c) => in_flight.push(c),
            // Its CR does not exist yet, or is going.
            Action::Provision(_) | Action::Deprovision => {
                current = drift::Observed::after(current, &desired, op.action);
            }
        }
        waiting = Some(format!(
            "operation {} ({}) is {}",
            op.id,
            op.type_().as_str(),
            op.status.as_str()
        ));
    }
    let (next, end) = drift::steps(&desired, current.as_ref(), &in_flight);
    // Each step's disruption depends on the replicas at that point.
    // (A new database's first step is its provision, whatever the count.)
    let mut replicas = current.map_or(0, |c| drift::effective(&c, &in_flight).replicas);
    for action in next {
        steps.push(PlanStep::of(action, replicas.max(1), None));
        match action {
            Action::Provision(spec) => replicas = spec.replicas,
            Action::Change(Change::Replicas(n)) => replicas = n,
            _ => {}
        }
    }
    if waiting.is_none() {
        waiting = match end {
            Plan::Paused => Some("paused: the other changes are applied after the resume".into()),
            Plan::Blocked => Some("storage cannot shrink: set storage_gb back".into()),
            _ if steps.is_empty() => None,
            _ if current.is_some_and(|c| !c.ready) => {
                Some("waiting for KubeDB to report the database ready".into())
            }
            _ => None,
        };
    }
    Ok(PlanView {
        database_id: Some(db.id.clone()),
        in_sync: steps.is_empty() && db.in_sync() && db.active_operation_id.is_none(),
        waiting,
        steps,
    })
}

/// What the reconciler will do for a database.
///
/// From the last observed state: the operation under way first, then each
/// operation the following passes would plan, in order, with its
/// OpsRequest type and how disruptive it is. Empty when in sync.
#[utoipa::path(
    get, path = "/api/v1/databases/{id}/plan", tag = "databases",
    params(("id" = String, Path, description = "Database id")),
    responses(
        (status = 200, description = "The plan", body = PlanView),
        (status = 400, description = "The id is not valid UTF-8 once percent-decoded", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid API key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such database", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Store unavailable", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId,
) -> Result<Json<PlanView>, ApiError> {
    let db = find(&state, &caller, &id).await?;
    Ok(Json(plan_for(&state, &db).await?))
}

/// What a create or a patch would make the reconciler do, without saving it.
///
/// The body is a create body (`POST /api/v1/databases`), or a patch body
/// (`PATCH /api/v1/databases/{id}`) with the database's `id` added. It is
/// validated exactly as the real request; nothing is recorded.
#[utoipa::path(
    post, path = "/api/v1/databases/plan", tag = "databases",
    request_body(content = Object, content_type = "application/json",
        description = "A create body, or a patch body with the database's `id`"),
    responses(
        (status = 200, description = "The plan", body = PlanView),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid API key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such database", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The database is being deleted", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over 64 KiB", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Store unavailable", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn preview(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(mut body): ApiJson<Value>,
) -> Result<Json<PlanView>, ApiError> {
    let id = match body.as_object_mut().and_then(|o| o.remove("id")) {
        None => None,
        Some(Value::String(id)) => Some(id),
        Some(_) => return Err(ApiError::bad_request("id", "must be a string")),
    };
    let Some(id) = id else {
        let create: CreateDatabase = from_value(body)?;
        check_create(&create)?;
        let version =
            versions::version_for_new(&state, create.engine, create.version.as_deref()).await?;
        let action = Action::Provision(Spec {
            size: create.size,
            replicas: create.replicas,
            storage_gb: create.storage_gb,
        });
        let mut target = action.desired_state();
        target.version = Some(version);
        let mut step = PlanStep::of(action, create.replicas, None);
        step.target = target;
        return Ok(Json(PlanView {
            database_id: None,
            in_sync: false,
            waiting: None,
            steps: vec![step],
        }));
    };
    let patch: PatchDatabase = from_value(body)?;
    let db = find(&state, &caller, &id).await?;
    if db.deletion_requested {
        return Err(ApiError::conflict(format!(
            "database {id} is being deleted"
        )));
    }
    check_patch(&db, &patch)?;
    if let Some(to) = patch.version.as_deref().filter(|v| *v != db.version) {
        let catalog = versions::catalog(&state, db.engine).await?;
        versions::check_upgrade(&catalog, &db, to)?;
    }
    let patched = patch.applied_to(&db);
    Ok(Json(plan_for(&state, &patched).await?))
}
