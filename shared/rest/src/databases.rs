//! `/api/v1/databases`: declare, read, change and delete databases.
//!
//! Handlers only record desired state. They never create operations, never
//! enqueue and never call Kubernetes: the reconciler notices the drift.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{SubsecRound, Utc};
use serde::Deserialize;
use utoipa::ToSchema;

use super::AppState;
use super::auth::Caller;
use super::error::{ApiError, FieldError, Problem};
use super::extract::{ApiJson, PathId, QueryParams};
use super::page::{Page, id_cursor, parse_id_cursor};
use super::validation::{check_create, check_patch, engine_param, page_limit};
use super::versions;
use dbaas_core::domain::{Database, DatabaseStatus, Event, EventType, OnDelete, Size};
use dbaas_core::engine::Engine;
use dbaas_store::{DatabaseQuery, DesiredChange};

/// How often a PATCH or DELETE re-reads and retries when another writer
/// changed the database between its read and its compare-and-set. Every
/// failed attempt means another write succeeded, so this bounds waiting,
/// not correctness.
pub(super) const CAS_ATTEMPTS: usize = 5;

/// A database to create.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateDatabase {
    /// A DNS-1123 label of at most 40 characters, unique within the tenant.
    #[schema(example = "orders")]
    pub name: String,
    pub engine: Engine,
    /// A version from the catalog (`GET /api/v1/versions`), not
    /// deprecated; defaults to the newest one that is not.
    #[schema(example = "16.4")]
    pub version: Option<String>,
    pub size: Size,
    /// 1 to 9, within the engine's topology rules.
    #[schema(example = 3, minimum = 1, maximum = 9)]
    pub replicas: u32,
    /// Storage in GiB, 10 to 10000.
    #[schema(example = 50, minimum = 10, maximum = 10000)]
    pub storage_gb: u32,
    /// While true, a DELETE is refused (default false).
    #[serde(default)]
    pub deletion_protection: bool,
    /// What a deletion keeps (default `wipeout`).
    #[serde(default)]
    pub deletion_policy: OnDelete,
}

/// A change to desired state: at least one field.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchDatabase {
    pub size: Option<Size>,
    #[schema(minimum = 1, maximum = 9)]
    pub replicas: Option<u32>,
    /// Storage in GiB; it can only grow.
    #[schema(minimum = 10, maximum = 10000)]
    pub storage_gb: Option<u32>,
    /// Upgrade to this catalog version: newer than the one running, not
    /// deprecated, and allowed from it (`GET .../upgrades`).
    #[schema(example = "16.4")]
    pub version: Option<String>,
    /// Halt the database (true: KubeDB removes its pods and keeps its
    /// volumes and Secret) or resume it (false). Changes to the other
    /// fields made while it is paused are kept and applied after the resume.
    pub paused: Option<bool>,
    /// While true, a DELETE is refused.
    pub deletion_protection: Option<bool>,
    /// What a deletion keeps.
    pub deletion_policy: Option<OnDelete>,
}

impl PatchDatabase {
    pub fn is_empty(&self) -> bool {
        self.size.is_none()
            && self.replicas.is_none()
            && self.storage_gb.is_none()
            && self.version.is_none()
            && self.paused.is_none()
            && self.deletion_protection.is_none()
            && self.deletion_policy.is_none()
    }

    /// `db` with this patch's desired fields, as a PATCH would leave it.
    pub(super) fn applied_to(&self, db: &Database) -> Database {
        Database {
            size: self.size.unwrap_or(db.size),
            replicas: self.replicas.unwrap_or(db.replicas),
            storage_gb: self.storage_gb.unwrap_or(db.storage_gb),
            version: self.version.clone().unwrap_or_else(|| db.version.clone()),
            paused: self.paused.unwrap_or(db.paused),
            deletion_protection: self.deletion_protection.unwrap_or(db.deletion_protection),
            deletion_policy: self.deletion_policy.unwrap_or(db.deletion_policy),
            ..db.clone()
        }
    }

    /// The change that brings `db` to this patch, or `None` when the patch
    /// asks for nothing new (so an idempotent PATCH does not bump the
    /// generation and wake the reconciler).
    fn change_for(&self, db: &Database, caller: &Caller) -> Option<DesiredChange> {
        let size = self.size.filter(|s| *s != db.size);
        let replicas = self.replicas.filter(|r| *r != db.replicas);
        let storage_gb = self.storage_gb.filter(|g| *g != db.storage_gb);
        let version = self.version.clone().filter(|v| *v != db.version);
        let paused = self.paused.filter(|p| *p != db.paused);
        let deletion_protection = self
            .deletion_protection
            .filter(|p| *p != db.deletion_protection);
        let deletion_policy = self.deletion_policy.filter(|p| *p != db.deletion_policy);
        if size.is_none()
            && replicas.is_none()
            && storage_gb.is_none()
            && version.is_none()
            && paused.is_none()
            && deletion_protection.is_none()
            && deletion_policy.is_none()
        {
            return None;
        }
        let observed = db.current_size.is_some()
            || db.current_replicas.is_some()
            || db.current_storage_gb.is_some();
        let next = self.applied_to(db);
        // Before the first observation the database is still provisioning;
        // after it, a change that differs from what runs is an update.
        let status = (observed && !next.in_sync()).then_some(DatabaseStatus::Updating);
        let mut change = DesiredChange {
            size,
            replicas,
            storage_gb,
            version,
            paused,
            deletion_protection,
            deletion_policy,
            status,
            ..Default::default()
        };
        change.events.push(Event::new(
            db,
            EventType::DesiredChanged,
            Some(&caller.api_key),
            format!(
                "{} (API key {})",
                describe_change(db, &change),
                caller.api_key
            ),
            Utc::now().trunc_subsecs(3),
        ));
        Some(change)
    }
}

/// The desired fields `change` sets, `field: old → new`, for the history.
pub(super) fn describe_change(db: &Database, change: &DesiredChange) -> String {
    let mut parts = Vec::new();
    let mut note = |field: &str, old: String, new: Option<String>| {
        if let Some(new) = new {
            parts.push(format!("{field}: {old} → {new}"));
        }
    };
    note(
        "size",
        db.size.to_string(),
        change.size.map(|s| s.to_string()),
    );
    note(
        "replicas",
        db.replicas.to_string(),
        change.replicas.map(|r| r.to_string()),
    );
    note(
        "storage_gb",
        db.storage_gb.to_string(),
        change.storage_gb.map(|g| g.to_string()),
    );
    note("version", db.version.clone(), change.version.clone());
    note(
        "paused",
        db.paused.to_string(),
        change.paused.map(|p| p.to_string()),
    );
    note(
        "deletion_protection",
        db.deletion_protection.to_string(),
        change.deletion_protection.map(|p| p.to_string()),
    );
    note(
        "deletion_policy",
        db.deletion_policy.as_str().to_string(),
        change.deletion_policy.map(|p| p.as_str().to_string()),
    );
    note(
        "auth_rotation",
        db.auth_rotation.to_string(),
        change.auth_rotation.map(|n| n.to_string()),
    );
    note(
        "restarts",
        db.restarts.to_string(),
        change.restarts.map(|n| n.to_string()),
    );
    parts.join(", ")
}

fn not_found(id: &str) -> ApiError {
    ApiError::NotFound(format!("database {id} not found"))
}

/// The caller's database `id`. Another tenant's database answers exactly
/// like an absent one.
pub(super) async fn find(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<Database, ApiError> {
    match state.store.get_database(id).await? {
        Some(db) if db.tenant_id == caller.tenant_id => Ok(db),
        _ => Err(not_found(id)),
    }
}

/// Applies the change `change_for` derives from the caller's database
/// `id`, as a compare-and-set on its generation: another write in between
/// makes it read again and derive again. `change_for` refuses with an
/// error, or answers `None` when there is nothing to write (the database is
/// returned as it is). The events written with the change are flushed
/// after.
pub(super) async fn update_with_cas(
    state: &AppState,
    caller: &Caller,
    id: &str,
    mut change_for: impl FnMut(&Database) -> Result<Option<DesiredChange>, ApiError>,
) -> Result<Database, ApiError> {
    for _ in 0..CAS_ATTEMPTS {
        let db = find(state, caller, id).await?;
        let Some(change) = change_for(&db)? else {
            return Ok(db);
        };
        if let Some(updated) = state
            .store
            .update_desired(id, db.generation, &change)
            .await?
        {
            return Ok(updated);
        }
    }
    Err(ApiError::conflict(format!(
        "database {id} kept changing concurrently; retry"
    )))
}

/// The database as JSON with its ETag.
pub(super) fn respond(status: StatusCode, db: Database) -> Response {
    (status, [(header::ETAG, db.etag())], Json(db)).into_response()
}

/// Whether an `If-Match` header list names `etag` (strong comparison;
/// `*` matches any existing database).
fn if_match_holds(headers: &HeaderMap, etag: &str) -> Option<bool> {
    let mut values = headers.get_all(header::IF_MATCH).iter().peekable();
    values.peek()?;
    Some(
        values
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .any(|t| t == "*" || t == etag),
    )
}

/// Create a database.
///
/// Records the desired state with status `provisioning`; the reconciler
/// provisions it.
#[utoipa::path(
    post, path = "/api/v1/databases", tag = "databases",
    request_body(content = CreateDatabase, content_type = "application/json"),
    responses(
        (status = 201, description = "Declared", body = Database,
            headers(("Location" = String, description = "URL of the database"), ("ETag" = String))),
        (status = 400, description = "Malformed JSON or invalid UTF-8", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid API key", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The tenant has a database of this name", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over 64 KiB", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Store unavailable", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<CreateDatabase>,
) -> Result<Response, ApiError> {
    check_create(&req)?;
    // Stores keep milliseconds; answering with what a later GET returns.
    let now = Utc::now().trunc_subsecs(3);
    let mut db = Database::declared(
        caller.tenant_id,
        req.name,
        req.engine,
        req.size,
        req.replicas,
        req.storage_gb,
        now,
    );
    db.version = versions::version_for_new(&state, req.engine, req.version.as_deref()).await?;
    db.deletion_protection = req.deletion_protection;
    db.deletion_policy = req.deletion_policy;
    let created = Event::new(
        &db,
        EventType::Created,
        Some(&caller.api_key),
        format!(
            "declared {} {} {} × {} with {} GiB (API key {})",
            db.engine.as_str(),
            db.version,
            db.size,
            db.replicas,
            db.storage_gb,
            caller.api_key
        ),
        now,
    );
    match state.store.insert_database(&db, &[created]).await {
        Ok(()) => {}
        Err(dbaas_core::Error::Conflict(_)) => {
            return Err(ApiError::Conflict {
                detail: format!("a database named {} already exists", db.name),
                errors: vec![FieldError::new("name", "already exists")],
            });
        }
        Err(e) => return Err(e.into()),
    }
    let location = format!("/api/v1/databases/{}", db.id);
    Ok((
        [(header::LOCATION, location)],
        respond(StatusCode::CREATED, db),
    )
        .into_response())
}

/// List the caller's databases, ordered by id.
///
/// Deleted databases are left out unless `status=deleted` is asked for.
#[utoipa::path(
    get, path = "/api/v1/databases", tag = "databases",
    params(
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 200, description = "Page size, 1 to 200 (default 50)"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
        ("engine" = Option<Engine>, Query, description = "Only this engine"),
        ("status" = Option<DatabaseStatus>, Query, description = "Only this status"),
    ),
    responses(
        (status = 200, description = "A page of databases", body = Page<Database>),
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
) -> Result<Json<Page<Database>>, ApiError> {
    let limit = page_limit(params.take("limit")?.as_deref())?;
    let after_id = params
        .take("cursor")?
        .map(|c| parse_id_cursor(&c))
        .transpose()?;
    let engine = engine_param(params.take("engine")?)?;
    let status = params
        .take("status")?
        .map(|s| {
            DatabaseStatus::parse(&s)
                .ok_or_else(|| ApiError::bad_request("status", format!("unknown status {s}")))
        })
        .transpose()?;
    params.finish()?;
    let query = DatabaseQuery {
        tenant_id: Some(caller.tenant_id),
        engine,
        status,
        after_id,
        exclude_deleted: status != Some(DatabaseStatus::Deleted),
        limit: Some(limit + 1),
    };
    let items = state.store.list_databases(&query).await?;
    Ok(Json(Page::from_overfetch(items, limit, |db| {
        id_cursor(&db.id)
    })))
}

/// Read a database: desired state, observed state and status.
#[utoipa::path(
    get, path = "/api/v1/databases/{id}", tag = "databases",
    params(("id" = String, Path, description = "Database id")),
    responses(
        (status = 200, description = "The database", body = Database, headers(("ETag" = String))),
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
) -> Result<Response, ApiError> {
    Ok(respond(StatusCode::OK, find(&state, &caller, &id).await?))
}

/// Change desired fields: size, replicas, storage, version, paused,
/// deletion protection and policy.
///
/// A compare-and-set on the generation: concurrent PATCHes are applied one
/// after another, the last accepted wins and none is lost. With `If-Match`,
/// the PATCH applies only to that version.
#[utoipa::path(
    patch, path = "/api/v1/databases/{id}", tag = "databases",
    params(
        ("id" = String, Path, description = "Database id"),
        ("If-Match" = Option<String>, Header, description = "Apply only if the ETag still matches"),
    ),
    request_body(content = PatchDatabase, content_type = "application/json"),
    responses(
        (status = 200, description = "Desired state recorded", body = Database, headers(("ETag" = String))),
        (status = 400, description = "Empty patch or malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid API key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such database", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Being deleted, or changed concurrently on every attempt", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "If-Match does not match", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over 64 KiB", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Store unavailable", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn patch(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId,
    headers: HeaderMap,
    ApiJson(patch): ApiJson<PatchDatabase>,
) -> Result<Response, ApiError> {
    // Read once, not on every compare-and-set attempt.
    let mut catalog = None;
    for _ in 0..CAS_ATTEMPTS {
        let db = find(&state, &caller, &id).await?;
        if db.deletion_requested {
            return Err(ApiError::conflict(format!(
                "database {id} is being deleted"
            )));
        }
        if if_match_holds(&headers, &db.etag()) == Some(false) {
            return Err(ApiError::PreconditionFailed(format!(
                "If-Match does not match the current ETag {}",
                db.etag()
            )));
        }
        check_patch(&db, &patch)?;
        if let Some(to) = patch.version.as_deref().filter(|v| *v != db.version) {
            if catalog.is_none() {
                catalog = Some(versions::catalog(&state, db.engine).await?);
            }
            let catalog = catalog.as_ref().expect("read above");
            versions::check_upgrade(catalog, &db, to)?;
        }
        let Some(change) = patch.change_for(&db, &caller) else {
            return Ok(respond(StatusCode::OK, db));
        };
        if let Some(updated) = state
            .store
            .update_desired(&id, db.generation, &change)
            .await?
        {
            return Ok(respond(StatusCode::OK, updated));
        }
        // Another write landed since the read: re-read and re-check the
        // patch against that write's result.
    }
    Err(ApiError::conflict(format!(
        "database {id} kept changing concurrently; retry"
    )))
}

/// Request deletion.
///
/// Records deletion as desired state (status `deleting`); the reconciler
/// removes the cluster resources as `deletion_policy` says. Deleting again
/// is accepted alike. Refused while `deletion_protection` is on.
#[utoipa::path(
    delete, path = "/api/v1/databases/{id}", tag = "databases",
    params(("id" = String, Path, description = "Database id")),
    responses(
        (status = 202, description = "Deletion recorded", body = Database, headers(("ETag" = String))),
        (status = 400, description = "The id is not valid UTF-8 once percent-decoded", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid API key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such database", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Deletion protection is on, or changed concurrently on every attempt", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Store unavailable", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId,
) -> Result<Response, ApiError> {
    // The compare-and-set on the generation also catches protection
    // turned on since the read.
    let db = update_with_cas(&state, &caller, &id, |db| {
        if db.deletion_requested {
            return Ok(None);
        }
        if db.deletion_protection {
            return Err(ApiError::Conflict {
                detail: format!(
                    "database {id} has deletion protection on: PATCH deletion_protection to false first"
                ),
                errors: vec![FieldError::new("deletion_protection", "is true")],
            });
        }
        Ok(Some(DesiredChange {
            delete: true,
            status: Some(DatabaseStatus::Deleting),
            events: vec![Event::new(
                db,
                EventType::DeletionRequested,
                Some(&caller.api_key),
                format!(
                    "deletion requested with policy {} (API key {})",
                    db.deletion_policy.as_str(),
                    caller.api_key
                ),
                Utc::now().trunc_subsecs(3),
            )],
            ..Default::default()
        }))
    })
    .await?;
    Ok(respond(StatusCode::ACCEPTED, db))
}

/// Restart the database's pods.
///
/// Records one more desired restart; the reconciler plans a KubeDB
/// `Restart` OpsRequest. Requests made before it runs are served by one
/// restart.
#[utoipa::path(
    post, path = "/api/v1/databases/{id}/restart", tag = "databases",
    params(("id" = String, Path, description = "Database id")),
    responses(
        (status = 202, description = "Restart recorded", body = Database, headers(("ETag" = String))),
        (status = 400, description = "The id is not valid UTF-8 once percent-decoded", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid API key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such database", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Being deleted, paused, or changed concurrently on every attempt", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Store unavailable", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn restart(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId,
) -> Result<Response, ApiError> {
    let db = update_with_cas(&state, &caller, &id, |db| {
        if db.deletion_requested {
            return Err(ApiError::conflict(format!(
                "database {id} is being deleted"
            )));
        }
        if db.paused {
            return Err(ApiError::Conflict {
                detail: format!("database {id} is paused: resume it to restart it"),
                errors: vec![FieldError::new("paused", "is true")],
            });
        }
        let observed = db.current_size.is_some();
        Ok(Some(DesiredChange {
            restarts: Some(db.restarts + 1),
            status: observed.then_some(DatabaseStatus::Updating),
            events: vec![Event::new(
                db,
                EventType::RestartRequested,
                Some(&caller.api_key),
                format!(
                    "restart {} requested (API key {})",
                    db.restarts + 1,
                    caller.api_key
                ),
                Utc::now().trunc_subsecs(3),
            )],
            ..Default::default()
        }))
    })
    .await?;
    Ok(respond(StatusCode::ACCEPTED, db))
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn if_match_lists() {
        let mut headers = HeaderMap::new();
        assert_eq!(if_match_holds(&headers, "\"g2\""), None);
        headers.insert(header::IF_MATCH, HeaderValue::from_static("\"g1\", \"g2\""));
        assert_eq!(if_match_holds(&headers, "\"g2\""), Some(true));
        assert_eq!(if_match_holds(&headers, "\"g3\""), Some(false));
        headers.insert(header::IF_MATCH, HeaderValue::from_static("W/\"g3\""));
        assert_eq!(if_match_holds(&headers, "\"g3\""), Some(false));
        headers.insert(header::IF_MATCH, HeaderValue::from_static("*"));
        assert_eq!(if_match_holds(&headers, "\"g3\""), Some(true));
    }
}
