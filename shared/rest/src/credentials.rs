//! `/api/v1/databases/{id}/credentials`: the login of a database, and
//! asking for a new one.
//!
//! Credentials are read from the auth Secret KubeDB made, at request time:
//! they are never copied into the store and never logged, and each read
//! leaves an event in the database's history. Rotation is declarative like
//! every other change: the handler records one more desired rotation and
//! the reconciler plans the `RotateAuth` OpsRequest.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use chrono::{SubsecRound, Utc};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::AppState;
use super::auth::Caller;
use super::databases::{find, respond, update_with_cas};
use super::error::{ApiError, Problem};
use super::extract::PathId;
use dbaas_cluster::Kind;
use dbaas_core::domain::{Database, DatabaseStatus, Event, EventType};
use dbaas_store::DesiredChange;

/// The login of a database. Never cache it: it changes with a rotation.
#[derive(Serialize, ToSchema)]
pub struct Credentials {
    #[schema(example = "postgres")]
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Read a database's credentials.
///
/// Read from the cluster at request time; the read is recorded in the
/// database's events. During a rotation the current credentials are
/// returned until the new ones are in place.
#[utoipa::path(
    get, path = "/api/v1/databases/{id}/credentials", tag = "databases",
    params(("id" = String, Path, description = "Database id")),
    responses(
        (status = 200, description = "Username and password", body = Credentials,
            headers(("Cache-Control" = String, description = "no-store"))),
        (status = 400, description = "The id is not valid UTF-8 once percent-decoded", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid API key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such database", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The database is not ready", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Store or cluster unavailable", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId,
) -> Result<Response, ApiError> {
    let db = find(&state, &caller, &id).await?;
    let connection = match (&db.connection, db.status) {
        (Some(c), DatabaseStatus::Ready | DatabaseStatus::Updating) => c,
        _ => return Err(not_ready(&db)),
    };
    let Some(cluster) = &state.cluster else {
        return Err(ApiError::unavailable(
            "credentials are not available: this API has no cluster access",
            None,
        ));
    };
    let secret = cluster
        .get(
            &Kind::secret(),
            &connection.namespace,
            &connection.auth_secret,
        )
        .await
        .map_err(|e| ApiError::unavailable("the cluster is unavailable; retry later", Some(e)))?
        .ok_or_else(|| not_ready(&db))?;
    let credentials = read_secret(&secret).ok_or_else(|| not_ready(&db))?;
    // Recorded before answering: no credentials leave without a record.
    let event = Event::new(
        &db,
        EventType::CredentialsRead,
        Some(&caller.api_key),
        format!("credentials read with API key {}", caller.api_key),
        Utc::now().trunc_subsecs(3),
    );
    state.store.insert_event(&event).await?;
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(credentials)).into_response())
}

/// Ask for new credentials.
///
/// Records one more desired rotation (a new generation); the reconciler
/// plans a `RotateAuth` OpsRequest and KubeDB generates a new password.
/// Rotations asked for before one starts are carried out as one.
#[utoipa::path(
    post, path = "/api/v1/databases/{id}/credentials/rotate", tag = "databases",
    params(("id" = String, Path, description = "Database id")),
    responses(
        (status = 202, description = "Rotation recorded", body = Database, headers(("ETag" = String))),
        (status = 400, description = "The id is not valid UTF-8 once percent-decoded", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid API key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such database", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Being deleted, or changed concurrently on every attempt", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Store unavailable", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn rotate(
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
        let observed = db.current_size.is_some();
        Ok(Some(DesiredChange {
            auth_rotation: Some(db.auth_rotation + 1),
            status: observed.then_some(DatabaseStatus::Updating),
            // Written with the change itself: neither exists without the other.
            events: vec![Event::new(
                db,
                EventType::CredentialsRotationRequested,
                Some(&caller.api_key),
                format!(
                    "rotation {} requested with API key {}",
                    db.auth_rotation + 1,
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

fn not_ready(db: &Database) -> ApiError {
    ApiError::conflict(format!(
        "database {} is {}: its credentials are available once it is ready",
        db.id,
        db.status.as_str()
    ))
}

/// `username` and `password` of a basic-auth Secret.
fn read_secret(secret: &Value) -> Option<Credentials> {
    let field = |key: &str| {
        let raw = B64.decode(secret["data"][key].as_str()?).ok()?;
        String::from_utf8(raw).ok()
    };
    Some(Credentials {
        username: field("username")?,
        password: field("password")?,
    })
}
