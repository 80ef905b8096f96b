//! The version catalog as the API offers it: `GET /api/v1/versions` and
//! `GET /api/v1/databases/{id}/upgrades`, and the checks behind `version`
//! on create and PATCH.
//!
//! The catalog is read from the cluster (KubeDB's `*Version` objects) on
//! each request that needs it: a handful of small cluster-scoped objects,
//! and an API that scales to zero has no cache worth keeping. An API
//! without cluster access knows one version per engine, the built-in
//! default.

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use super::auth::Caller;
use super::databases::find;
use super::error::{ApiError, Problem};
use super::extract::{PathId, QueryParams};
use super::validation::engine_param;
use dbaas_cluster::Kind;
use dbaas_core::catalog::{Catalog, CatalogVersion};
use dbaas_core::domain::Database;
use dbaas_core::engine::Engine;

/// One version the cluster offers, and where a database on it may go.
#[derive(Debug, Serialize, ToSchema)]
pub struct VersionInfo {
    #[serde(flatten)]
    pub version: CatalogVersion,
    /// The versions a database on this one may be upgraded to.
    pub upgrades: Vec<String>,
}

/// A list of versions.
#[derive(Debug, Serialize, ToSchema)]
pub struct Versions {
    pub items: Vec<VersionInfo>,
}

/// The catalog of `engine`.
pub(super) async fn catalog(state: &AppState, engine: Engine) -> Result<Catalog, ApiError> {
    let Some(cluster) = &state.cluster else {
        let default = engine.spec().default_version;
        return Ok(Catalog::new(
            engine,
            [CatalogVersion::new(engine, default, default, false)],
        ));
    };
    let objects = cluster
        .list(&Kind::catalog(engine), "")
        .await
        .map_err(|e| {
            ApiError::unavailable("the version catalog is unavailable; retry later", Some(e))
        })?;
    Ok(Catalog::new(
        engine,
        objects.iter().filter_map(CatalogVersion::from_value),
    ))
}

/// The version a new database gets: the one asked for if the catalog
/// offers it, else the newest that is not deprecated.
pub(super) async fn version_for_new(
    state: &AppState,
    engine: Engine,
    asked: Option<&str>,
) -> Result<String, ApiError> {
    let catalog = catalog(state, engine).await?;
    match asked {
        Some(name) => catalog
            .check_new(name)
            .map(|v| v.name.clone())
            .map_err(|r| ApiError::invalid("version", r.0)),
        None => catalog
            .default_version()
            .map(|v| v.name.clone())
            .ok_or_else(|| {
                ApiError::invalid(
                    "engine",
                    format!("the cluster offers no {} versions", engine.as_str()),
                )
            }),
    }
}

/// Checks that `db` may move to `to`, from the version it runs (or is
/// being created with).
pub(super) fn check_upgrade(catalog: &Catalog, db: &Database, to: &str) -> Result<(), ApiError> {
    catalog
        .check_upgrade(running(db), to)
        .map(|_| ())
        .map_err(|r| ApiError::invalid("version", r.0))
}

fn running(db: &Database) -> &str {
    db.current_version.as_deref().unwrap_or(&db.version)
}

fn info(catalog: &Catalog, v: &CatalogVersion) -> VersionInfo {
    VersionInfo {
        version: v.clone(),
        upgrades: catalog
            .upgrades(&v.name)
            .into_iter()
            .map(|t| t.name.clone())
            .collect(),
    }
}

/// List the versions the cluster offers, oldest first.
#[utoipa::path(
    get, path = "/api/v1/versions", tag = "databases",
    params(("engine" = Option<Engine>, Query, description = "Only this engine")),
    responses(
        (status = 200, description = "The catalog", body = Versions),
        (status = 400, description = "Invalid query parameter", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid API key", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Catalog unavailable", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn list(
    State(state): State<AppState>,
    _caller: Caller,
    mut params: QueryParams,
) -> Result<Json<Versions>, ApiError> {
    let engine = engine_param(params.take("engine")?)?;
    params.finish()?;
    let engines = engine.map_or(Engine::ALL.to_vec(), |e| vec![e]);
    let mut items = Vec::new();
    for engine in engines {
        let catalog = catalog(&state, engine).await?;
        items.extend(catalog.versions().iter().map(|v| info(&catalog, v)));
    }
    Ok(Json(Versions { items }))
}

/// List the versions a database may be upgraded to.
#[utoipa::path(
    get, path = "/api/v1/databases/{id}/upgrades", tag = "databases",
    params(("id" = String, Path, description = "Database id")),
    responses(
        (status = 200, description = "Allowed targets, oldest first", body = Versions),
        (status = 400, description = "The id is not valid UTF-8 once percent-decoded", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid API key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such database", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Store or catalog unavailable", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn upgrades(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId,
) -> Result<Json<Versions>, ApiError> {
    let db = find(&state, &caller, &id).await?;
    let catalog = catalog(&state, db.engine).await?;
    let items = catalog
        .upgrades(running(&db))
        .into_iter()
        .map(|v| info(&catalog, v))
        .collect();
    Ok(Json(Versions { items }))
}
