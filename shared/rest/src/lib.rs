//! The HTTP API: pre-checks, then desired state into the store.
//!
//! Handlers validate a request, authenticate its tenant and record what the
//! tenant wants. They never plan operations, enqueue or touch the cluster:
//! the reconciler sees the drift and acts on it. Every answer other than
//! success is `application/problem+json` ([`error::ApiError`]).

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;

use dbaas_cluster::Cluster;
use dbaas_store::Store;

mod admin;
mod auth;
mod body;
pub mod config;
mod console;
mod credentials;
mod databases;
pub mod error;
mod events;
mod extract;
mod metrics;
mod openapi;
mod operations;
mod page;
mod plan;
mod system;
mod validation;
mod versions;

pub use admin::{NewApiKey, create_api_key, create_tenant};
pub use error::ApiError;
pub use openapi::ApiDoc;

/// Largest request body accepted; larger ones are answered 413.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Per-request bounds.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Longest a request may run before it is answered 504.
    pub request_timeout: Duration,
    /// Steady requests per second per API key.
    pub rate_limit_per_second: NonZeroU32,
    /// Requests per API key allowed at once above the steady rate.
    pub rate_limit_burst: NonZeroU32,
    /// API requests served at once; more wait up to `admission_wait`, then
    /// are answered 503 with `Retry-After`.
    pub max_in_flight: usize,
    pub admission_wait: Duration,
    /// Of those, list requests (databases, operations, a database's
    /// events) served at once: a list costs the store far more than a read
    /// by id, and on FerretDB every matching record, so a few of them at
    /// once would otherwise run into the deadline together.
    pub max_lists_in_flight: usize,
    /// How long a verified API key is trusted without asking the store
    /// again (zero: ask every time). A key removed from the store keeps
    /// working for at most this long.
    pub api_key_cache_ttl: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            request_timeout: Duration::from_secs(5),
            rate_limit_per_second: NonZeroU32::new(100).expect("non-zero"),
            rate_limit_burst: NonZeroU32::new(200).expect("non-zero"),
            max_in_flight: 64,
            admission_wait: Duration::from_millis(100),
            max_lists_in_flight: 4,
            api_key_cache_ttl: Duration::from_secs(30),
        }
    }
}

/// What every handler shares: the store, the admin token and the limits.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    /// Where credentials are read from (the auth Secrets); `None`: the
    /// credentials route answers 503.
    pub cluster: Option<Arc<dyn Cluster>>,
    /// The bootstrap admin token; `None` disables the admin routes.
    pub admin_token: Option<String>,
    pub limits: Limits,
    rate_limiter: Arc<auth::RateLimiter>,
    metrics: Arc<metrics::Metrics>,
    /// One permit per API request in flight.
    admission: Arc<Semaphore>,
    /// And one per list request in flight.
    list_admission: Arc<Semaphore>,
    /// Verified API keys by hash, so a request costs one store read.
    api_keys: auth::ApiKeyCache,
}

impl AppState {
    /// An empty token counts as none, so `DBAAS_ADMIN_TOKEN=` cannot open
    /// the admin routes to an empty bearer.
    pub fn new(store: Arc<dyn Store>, admin_token: Option<String>, limits: Limits) -> Self {
        let rate_limiter = Arc::new(auth::RateLimiter::new(
            limits.rate_limit_per_second,
            limits.rate_limit_burst,
        ));
        AppState {
            store,
            cluster: None,
            admin_token: admin_token.filter(|t| !t.is_empty()),
            admission: Arc::new(Semaphore::new(limits.max_in_flight.max(1))),
            list_admission: Arc::new(Semaphore::new(limits.max_lists_in_flight.max(1))),
            api_keys: auth::ApiKeyCache::new(limits.api_key_cache_ttl),
            limits,
            rate_limiter,
            metrics: Arc::new(metrics::Metrics::new()),
        }
    }
}

impl AppState {
    /// Reads credentials from the auth Secrets in `cluster`.
    pub fn with_cluster(mut self, cluster: Arc<dyn Cluster>) -> Self {
        self.cluster = Some(cluster);
        self
    }
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field(
                "admin_token",
                &self.admin_token.as_ref().map(|_| "<redacted>"),
            )
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// The whole API as one router, around any [`Store`].
pub fn router(state: AppState) -> Router {
    let layers = ServiceBuilder::new()
        .layer(
            // One event per request: method, route and path, never headers
            // (they carry keys).
            TraceLayer::new_for_http()
                .make_span_with(|req: &Request| {
                    let route = req.extensions().get::<MatchedPath>().map(MatchedPath::as_str);
                    tracing::info_span!("request", method = %req.method(), route, path = %req.uri().path())
                })
                .on_response(DefaultOnResponse::new().level(Level::INFO)),
        )
        .layer(middleware::from_fn(log_server_errors))
        .layer(middleware::from_fn_with_state(state.metrics.clone(), metrics::track))
        .layer(CatchPanicLayer::custom(|_| ApiError::Internal(None).into_response()))
        .layer(middleware::from_fn_with_state(state.limits.request_timeout, deadline))
        .layer(middleware::from_fn_with_state(state.clone(), admit));

    Router::new()
        .route(
            "/api/v1/databases",
            get(databases::list).post(databases::create),
        )
        .route(
            "/api/v1/databases/{id}",
            get(databases::get)
                .patch(databases::patch)
                .delete(databases::delete),
        )
        .route("/api/v1/databases/{id}/credentials", get(credentials::get))
        .route(
            "/api/v1/databases/{id}/credentials/rotate",
            post(credentials::rotate),
        )
        .route("/api/v1/databases/{id}/events", get(events::list))
        .route("/api/v1/databases/{id}/upgrades", get(versions::upgrades))
        .route("/api/v1/versions", get(versions::list))
        .route("/api/v1/operations", get(operations::list))
        .route("/api/v1/operations/{id}", get(operations::get))
        .route("/api/v1/operations/{id}/cancel", post(operations::cancel))
        .route("/api/v1/databases/{id}/restart", post(databases::restart))
        .route("/api/v1/databases/{id}/plan", get(plan::get))
        .route("/api/v1/databases/plan", post(plan::preview))
        .route("/api/v1/admin/tenants", post(admin::post_tenant))
        .route(
            "/api/v1/admin/tenants/{id}/api-keys",
            post(admin::post_api_key),
        )
        .route("/healthz", get(system::healthz))
        .route("/readyz", get(system::readyz))
        .route("/metrics", get(system::metrics))
        .route("/openapi.json", get(system::openapi))
        // The web console: pages and assets, no key needed (see its doc).
        .merge(console::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn(body::buffer_body))
        .layer(layers)
        .with_state(state)
}

/// Bounds every request: a slow store makes a 504, never a hung client.
async fn deadline(State(limit): State<Duration>, req: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(response) => response,
        Err(_) => ApiError::Timeout(limit).into_response(),
    }
}

/// Admission control: at most `max_in_flight` API requests do store work
/// at once. A request past that waits briefly in a short queue, then gets
/// a fast 503 with `Retry-After` instead of a 504 after the whole deadline
/// (and instead of adding to the store's overload). List requests also need
/// one of the fewer list permits. Probes, metrics and the console's static
/// pages are not counted.
async fn admit(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if !req.uri().path().starts_with("/api/") {
        return next.run(req).await;
    }
    let wait = state.limits.admission_wait;
    let Some(permit) = admission(&state.admission, wait).await else {
        return overloaded();
    };
    let list_permit = if is_list(&req) {
        match admission(&state.list_admission, wait).await {
            Some(p) => Some(p),
            None => return overloaded(),
        }
    } else {
        None
    };
    let response = next.run(req).await;
    drop((permit, list_permit));
    response
}

/// A permit of `lane`, at once or within `wait`.
async fn admission(lane: &Arc<Semaphore>, wait: Duration) -> Option<OwnedSemaphorePermit> {
    match lane.clone().try_acquire_owned() {
        Ok(permit) => Some(permit),
        Err(_) => tokio::time::timeout(wait, lane.clone().acquire_owned())
            .await
            .ok()?
            .ok(),
    }
}

fn overloaded() -> Response {
    ApiError::Overloaded {
        retry_after: Duration::from_secs(1),
    }
    .into_response()
}

/// A request for a list: the routes whose store query returns many records.
fn is_list(req: &Request) -> bool {
    req.method() == http::Method::GET
        && matches!(
            req.extensions()
                .get::<MatchedPath>()
                .map(MatchedPath::as_str),
            Some("/api/v1/databases" | "/api/v1/operations" | "/api/v1/databases/{id}/events")
        )
}

async fn not_found(req: Request) -> ApiError {
    ApiError::NotFound(format!("no route for {}", req.uri().path()))
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

/// The one place server errors are logged: every 5xx answer carries its
/// cause (`ServerErrorCause`), written here once, inside the request's span.
async fn log_server_errors(req: Request, next: Next) -> Response {
    let response = next.run(req).await;
    if let Some(cause) = response.extensions().get::<error::ServerErrorCause>() {
        tracing::error!(status = response.status().as_u16(), cause = %cause.0, "request failed");
    }
    response
}
