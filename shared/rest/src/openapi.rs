//! The OpenAPI document, generated from the handlers' annotations.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::admin::{self, CreateTenant, NewApiKey};
use super::credentials::{self, Credentials};
use super::databases::{self, CreateDatabase, PatchDatabase};
use super::error::{FieldError, Problem};
use super::plan::{self, PlanStep, PlanView};
use super::versions::{self, VersionInfo, Versions};
use super::{events, operations, system};
use dbaas_core::catalog::CatalogVersion;
use dbaas_core::domain::{
    Condition, Connection, Database, DatabaseStatus, DesiredState, Event, EventType, OnDelete,
    Operation, OperationStatus, OperationType, Size, Tenant,
};
use dbaas_core::drift::Disruption;
use dbaas_core::engine::Engine;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "DBaaS API",
        description = "Declare databases on KubeDB. The API records desired state; \
                       a reconciler detects drift and plans the operations that close it."
    ),
    paths(
        databases::create, databases::list, databases::get, databases::patch, databases::delete,
        databases::restart, plan::get, plan::preview,
        credentials::get, credentials::rotate, events::list, versions::list, versions::upgrades,
        operations::list, operations::get, operations::cancel,
        admin::post_tenant, admin::post_api_key,
        system::healthz, system::readyz, system::metrics, system::openapi,
    ),
    components(schemas(
        CreateDatabase, PatchDatabase, Database, DatabaseStatus, Condition, Engine, Size,
        Operation, OperationType, OperationStatus, DesiredState, Connection, Credentials,
        Event, EventType, OnDelete, PlanView, PlanStep, Disruption, Versions, VersionInfo, CatalogVersion,
        CreateTenant, Tenant, NewApiKey, Problem, FieldError,
    )),
    modifiers(&BearerSchemes),
    tags(
        (name = "databases", description = "Desired and observed state of databases"),
        (name = "operations", description = "Changes planned by the reconciler"),
        (name = "admin", description = "Tenants and API keys (admin token)"),
        (name = "system", description = "Probes, metrics, this document"),
    )
)]
pub struct ApiDoc;

/// Both credentials are bearer tokens: tenant API keys and the admin token.
struct BearerSchemes;

impl Modify for BearerSchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let bearer = |description: &str| {
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(description))
                    .build(),
            )
        };
        components.add_security_scheme("api_key", bearer("A tenant API key"));
        components.add_security_scheme(
            "admin_token",
            bearer("The DBAAS_ADMIN_TOKEN bootstrap token"),
        );
    }
}
