//! Tenants and API keys, created with the bootstrap admin token (over HTTP)
//! or by the `admin` subcommands (the same functions, called directly).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, SubsecRound, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::auth::Admin;
use super::error::{ApiError, FieldError, Problem};
use super::extract::{ApiJson, PathId};
use super::validation::tenant_name_error;
use dbaas_core::domain::{ApiKeyRecord, Tenant, hash_api_key, new_api_key, new_tenant_id};
use dbaas_store::Store;

/// Characters of a key kept in the clear to tell keys apart: `dbk_` and
/// four random characters, leaving 28 secret ones (over 140 bits).
const KEY_PREFIX_LEN: usize = 8;

/// A tenant to create.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTenant {
    /// Unique display name.
    #[schema(example = "acme")]
    pub name: String,
}

/// A freshly created API key. The key itself is shown only here, once:
/// the store keeps its hash.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct NewApiKey {
    /// Send as `Authorization: Bearer <key>`.
    pub key: String,
    pub tenant_id: String,
    /// The key's first characters, to recognise it later.
    pub prefix: String,
    pub created_at: DateTime<Utc>,
}

/// Creates a tenant; 409 naming `name` if the name is taken.
pub async fn create_tenant(store: &dyn Store, name: &str) -> Result<Tenant, ApiError> {
    if let Some(message) = tenant_name_error(name) {
        return Err(ApiError::invalid("name", message));
    }
    let tenant = Tenant {
        id: new_tenant_id(),
        name: name.to_owned(),
        created_at: Utc::now().trunc_subsecs(3),
    };
    match store.insert_tenant(&tenant).await {
        Ok(()) => Ok(tenant),
        Err(dbaas_core::Error::Conflict(_)) => Err(ApiError::Conflict {
            detail: format!("a tenant named {name} already exists"),
            errors: vec![FieldError::new("name", "already exists")],
        }),
        Err(e) => Err(e.into()),
    }
}

/// Creates an API key for tenant `tenant_id`; 404 if there is no such tenant.
pub async fn create_api_key(store: &dyn Store, tenant_id: &str) -> Result<NewApiKey, ApiError> {
    if store.get_tenant(tenant_id).await?.is_none() {
        return Err(ApiError::NotFound(format!("tenant {tenant_id} not found")));
    }
    let key = new_api_key();
    let record = ApiKeyRecord {
        key_hash: hash_api_key(&key),
        prefix: key[..KEY_PREFIX_LEN].to_owned(),
        tenant_id: tenant_id.to_owned(),
        created_at: Utc::now().trunc_subsecs(3),
    };
    store.insert_api_key(&record).await?;
    Ok(NewApiKey {
        key,
        tenant_id: record.tenant_id,
        prefix: record.prefix,
        created_at: record.created_at,
    })
}

/// Create a tenant.
#[utoipa::path(
    post, path = "/api/v1/admin/tenants", tag = "admin",
    request_body(content = CreateTenant, content_type = "application/json"),
    responses(
        (status = 201, description = "Created", body = Tenant),
        (status = 400, description = "Malformed JSON or invalid UTF-8", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid admin token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "A tenant key was used", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The name is taken", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over 64 KiB", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Store unavailable", body = Problem, content_type = "application/problem+json"),
    ),
    security(("admin_token" = []))
)]
pub async fn post_tenant(
    _: Admin,
    State(state): State<AppState>,
    ApiJson(req): ApiJson<CreateTenant>,
) -> Result<(StatusCode, Json<Tenant>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(create_tenant(state.store.as_ref(), &req.name).await?),
    ))
}

/// Create an API key for a tenant.
#[utoipa::path(
    post, path = "/api/v1/admin/tenants/{id}/api-keys", tag = "admin",
    params(("id" = String, Path, description = "Tenant id")),
    responses(
        (status = 201, description = "Created; the key is shown only now", body = NewApiKey),
        (status = 400, description = "The id is not valid UTF-8 once percent-decoded", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid admin token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "A tenant key was used", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such tenant", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Store unavailable", body = Problem, content_type = "application/problem+json"),
    ),
    security(("admin_token" = []))
)]
pub async fn post_api_key(
    _: Admin,
    State(state): State<AppState>,
    PathId(tenant_id): PathId,
) -> Result<(StatusCode, Json<NewApiKey>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(create_api_key(state.store.as_ref(), &tenant_id).await?),
    ))
}
