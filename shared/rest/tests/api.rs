//! The HTTP API driven through its router, against every store adapter.
//!
//! Each case runs twice: on an in-memory SQLite store and on MongoDB. The
//! MongoDB runs need a server: run `just rig-up; source target/rig/env`
//! (it exports MONGODB_URI) first.

use std::num::NonZeroU32;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use chrono::{DateTime, TimeDelta, Utc};
use dbaas_cluster::embedded::EmbeddedCluster;
use dbaas_cluster::{Cluster, Kind};
use dbaas_core::domain::{
    Action, ApiKeyRecord, Connection, Database, DatabaseStatus, Event, Operation, OperationStatus,
    OperationType, Size, Tenant, hash_api_key, random_token,
};
use dbaas_core::drift::Change;
use dbaas_core::naming;
use dbaas_rest::{AppState, Limits, router};
use dbaas_store::mongo::MongoStore;
use dbaas_store::{
    DatabaseQuery, DesiredChange, EventQuery, ObservedUpdate, OperationQuery, OperationUpdate,
    Store,
};
use futures::FutureExt;
use serde_json::{Value, json};
use tower::ServiceExt;

const ADMIN_TOKEN: &str = "test-admin-token-0123456789";
const NAMESPACE: &str = naming::DEFAULT_NAMESPACE;

/// Declares each case as a test on SQLite and a test on MongoDB.
macro_rules! store_cases {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    let store = dbaas_store::embedded::SqliteStore::in_memory()
                        .expect("open an in-memory store");
                    super::$case(std::sync::Arc::new(store)).await;
                }
            )*
        }
        mod mongo {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    super::with_mongo(super::$case).await;
                }
            )*
        }
    };
}

store_cases!(
    plans_show_the_steps_and_save_nothing,
    lifecycle_fields_restart_and_history,
    cancel_takes_the_change_back,
    credentials_and_rotation,
    versions_and_upgrades,
    system_endpoints,
    unknown_routes_and_methods,
    admin_routes_need_the_admin_token,
    admin_creates_tenants_and_keys,
    tenant_routes_need_a_key,
    create_database,
    create_prechecks,
    list_pagination_and_filters,
    tenant_isolation,
    patch_records_desired_state_only,
    patch_prechecks_and_if_match,
    example_3_fast_multiple_updates,
    concurrent_patches_are_never_lost,
    delete_is_desired_state_and_idempotent,
    operations_are_listed_newest_first,
    rate_limit_per_key,
);

/// Runs `case` on a fresh MongoDB database, dropped afterwards even when
/// the case fails.
async fn with_mongo<F, Fut>(case: F)
where
    F: FnOnce(Arc<dyn Store>) -> Fut,
    Fut: Future<Output = ()>,
{
    let uri = std::env::var("MONGODB_URI")
        .expect("MONGODB_URI is not set: run just rig-up; source target/rig/env");
    let name = format!("dbaas_api_{}", random_token(8));
    let store = MongoStore::new(&uri, &name)
        .await
        .expect("create the store");
    store
        .ensure_indexes()
        .await
        .expect("create indexes (is the MongoDB server up?)");
    let outcome = AssertUnwindSafe(case(Arc::new(store.clone())))
        .catch_unwind()
        .await;
    store
        .database()
        .drop()
        .await
        .expect("drop the test database");
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

// ---------------------------------------------------------------- harness

struct App {
    router: Router,
    store: Arc<dyn Store>,
    /// Where the credentials route reads auth Secrets.
    cluster: Arc<dyn Cluster>,
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
    text: String,
}

impl Reply {
    /// Asserts a problem+json answer with `status` and returns the body.
    #[track_caller]
    fn problem(&self, status: u16) -> &Value {
        assert_eq!(self.status.as_u16(), status, "{}", self.text);
        assert_eq!(
            self.headers[header::CONTENT_TYPE],
            "application/problem+json"
        );
        for member in ["type", "title", "status", "detail", "errors"] {
            assert!(
                self.body.get(member).is_some(),
                "problem without {member}: {}",
                self.text
            );
        }
        assert_eq!(self.body["status"], status);
        &self.body
    }

    /// Asserts a problem with `status` naming `field` in `errors`.
    #[track_caller]
    fn problem_naming(&self, status: u16, field: &str) {
        let errors = self.problem(status)["errors"]
            .as_array()
            .expect("errors is an array");
        assert!(
            errors.iter().any(|e| e["field"] == field),
            "expected an error naming {field}: {}",
            self.text
        );
    }

    #[track_caller]
    fn ok(&self, status: u16) -> &Value {
        assert_eq!(self.status.as_u16(), status, "{}", self.text);
        &self.body
    }

    fn header(&self, name: header::HeaderName) -> &str {
        self.headers
            .get(&name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }
}

impl App {
    async fn new(store: Arc<dyn Store>) -> App {
        App::with_limits(store, Limits::default()).await
    }

    /// The API over `store`, reading credentials and the version catalog
    /// (KubeDB's, as the stand-in installs it) from an embedded cluster.
    async fn with_limits(store: Arc<dyn Store>, limits: Limits) -> App {
        let cluster: Arc<dyn Cluster> = Arc::new(EmbeddedCluster::in_memory());
        dbaas_standin::catalog::install(&*cluster)
            .await
            .expect("install the catalog");
        let state = AppState::new(store.clone(), Some(ADMIN_TOKEN.to_owned()), limits)
            .with_cluster(cluster.clone());
        App {
            router: router(state),
            store,
            cluster,
        }
    }

    async fn call(&self, req: Request<Body>) -> Reply {
        let response = self
            .router
            .clone()
            .oneshot(req)
            .await
            .expect("the router is infallible");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("read body");
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            body,
            text,
        }
    }

    /// A request with an optional bearer and JSON body.
    async fn send(&self, method: &str, uri: &str, key: Option<&str>, body: Option<Value>) -> Reply {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(key) = key {
            req = req.header(header::AUTHORIZATION, format!("Bearer {key}"));
        }
        let req = match body {
            Some(body) => req
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body.to_string())),
            None => req.body(Body::empty()),
        };
        self.call(req.expect("valid request")).await
    }

    /// A request with a raw body and content type.
    async fn send_raw(
        &self,
        method: &str,
        uri: &str,
        key: &str,
        content_type: Option<&str>,
        body: impl Into<Body>,
    ) -> Reply {
        let mut req = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::AUTHORIZATION, format!("Bearer {key}"));
        if let Some(ct) = content_type {
            req = req.header(header::CONTENT_TYPE, ct);
        }
        self.call(req.body(body.into()).expect("valid request"))
            .await
    }

    async fn get(&self, uri: &str, key: &str) -> Reply {
        self.send("GET", uri, Some(key), None).await
    }

    async fn patch(&self, id: &str, key: &str, body: Value) -> Reply {
        self.send(
            "PATCH",
            &format!("/api/v1/databases/{id}"),
            Some(key),
            Some(body),
        )
        .await
    }

    /// A new tenant and one API key for it, through the admin API.
    async fn tenant(&self, name: &str) -> (String, String) {
        let tenant = self
            .send(
                "POST",
                "/api/v1/admin/tenants",
                Some(ADMIN_TOKEN),
                Some(json!({"name": name})),
            )
            .await;
        let id = tenant.ok(201)["id"].as_str().expect("tenant id").to_owned();
        let key = self
            .send(
                "POST",
                &format!("/api/v1/admin/tenants/{id}/api-keys"),
                Some(ADMIN_TOKEN),
                None,
            )
            .await;
        let key = key.ok(201)["key"].as_str().expect("key").to_owned();
        (id, key)
    }

    /// Creates a database and returns its JSON.
    async fn database(&self, key: &str, body: Value) -> Value {
        self.send("POST", "/api/v1/databases", Some(key), Some(body))
            .await
            .ok(201)
            .clone()
    }

    async fn operation_count(&self) -> usize {
        self.store
            .list_operations(&OperationQuery::default())
            .await
            .expect("list")
            .len()
    }
}

fn pg(name: &str) -> Value {
    json!({"name": name, "engine": "postgres", "size": "db.t3.small", "replicas": 1, "storage_gb": 20})
}

fn id_of(db: &Value) -> String {
    db["id"].as_str().expect("id").to_owned()
}

/// Records observed state as the reconciler would.
async fn observe(store: &dyn Store, id: &str, size: Size, replicas: u32, storage_gb: u32) {
    let db = store.get_database(id).await.expect("get").expect("exists");
    let cr = naming::cr_name(&db.name, &db.id);
    let update = ObservedUpdate {
        current_size: Some(size),
        current_replicas: Some(replicas),
        current_storage_gb: Some(storage_gb),
        connection: Some(Connection::of(
            db.engine,
            &cr,
            NAMESPACE,
            &naming::auth_secret(&cr),
            replicas,
        )),
        observed_generation: Some(db.generation),
        status: Some(DatabaseStatus::Ready),
        ..Default::default()
    };
    assert!(
        store
            .update_observed(id, &update)
            .await
            .expect("update observed")
    );
}

// ------------------------------------------------------------------ cases

async fn system_endpoints(store: Arc<dyn Store>) {
    let app = App::new(store).await;
    assert_eq!(
        app.send("GET", "/healthz", None, None).await.ok(200)["status"],
        "ok"
    );
    assert_eq!(
        app.send("GET", "/readyz", None, None).await.ok(200)["status"],
        "ready"
    );

    let doc = app.send("GET", "/openapi.json", None, None).await;
    let doc = doc.ok(200);
    let paths = doc["paths"].as_object().expect("paths");
    for (path, methods) in [
        ("/api/v1/databases", &["get", "post"][..]),
        ("/api/v1/databases/{id}", &["get", "patch", "delete"]),
        ("/api/v1/operations", &["get"]),
        ("/api/v1/operations/{id}", &["get"]),
        ("/api/v1/admin/tenants", &["post"]),
        ("/api/v1/admin/tenants/{id}/api-keys", &["post"]),
        ("/healthz", &["get"]),
        ("/readyz", &["get"]),
        ("/metrics", &["get"]),
        ("/openapi.json", &["get"]),
    ] {
        for method in methods {
            assert!(
                paths[path].get(*method).is_some(),
                "{method} {path} missing from the document"
            );
        }
    }
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["api_key"]["scheme"], "bearer");
    assert_eq!(schemes["admin_token"]["scheme"], "bearer");
    for schema in [
        "Database",
        "CreateDatabase",
        "PatchDatabase",
        "Operation",
        "Problem",
        "FieldError",
    ] {
        assert!(
            doc["components"]["schemas"].get(schema).is_some(),
            "schema {schema} missing"
        );
    }
    let not_found = &paths["/api/v1/databases/{id}"]["get"]["responses"]["404"]["content"];
    assert!(
        not_found.get("application/problem+json").is_some(),
        "{not_found}"
    );

    let (_, key) = app.tenant("metrics").await;
    app.get("/api/v1/databases/db-nope", &key)
        .await
        .problem(404);
    let metrics = app.send("GET", "/metrics", None, None).await;
    assert_eq!(metrics.status, StatusCode::OK);
    assert!(
        metrics
            .header(header::CONTENT_TYPE)
            .starts_with("text/plain")
    );
    let line = metrics
        .text
        .lines()
        .find(|l| l.starts_with("dbaas_http_requests_total{") && l.contains("status=\"404\""))
        .expect("a counter for the 404");
    assert!(line.contains("route=\"/api/v1/databases/{id}\""), "{line}");
    assert!(line.contains("method=\"GET\""), "{line}");
    assert!(
        !metrics.text.contains("db-nope"),
        "raw paths must not become labels"
    );
    assert!(
        metrics
            .text
            .contains("dbaas_http_request_duration_seconds_bucket{")
    );
}

async fn unknown_routes_and_methods(store: Arc<dyn Store>) {
    let app = App::new(store).await;
    app.send("GET", "/nope", None, None).await.problem(404);
    app.send("GET", "/api/v1/databases/a/b", None, None)
        .await
        .problem(404);
    app.send("PUT", "/api/v1/databases", None, None)
        .await
        .problem(405);
    app.send("POST", "/healthz", None, None).await.problem(405);
}

async fn admin_routes_need_the_admin_token(store: Arc<dyn Store>) {
    let app = App::new(store.clone()).await;
    let body = Some(json!({"name": "acme"}));
    let missing = app
        .send("POST", "/api/v1/admin/tenants", None, body.clone())
        .await;
    missing.problem(401);
    assert!(
        missing
            .header(header::WWW_AUTHENTICATE)
            .starts_with("Bearer")
    );
    let wrong = app
        .send(
            "POST",
            "/api/v1/admin/tenants",
            Some("not-the-token"),
            body.clone(),
        )
        .await;
    wrong.problem(401);
    assert!(wrong.header(header::WWW_AUTHENTICATE).starts_with("Bearer"));

    let (tenant_id, key) = app.tenant("acme").await;
    app.send("POST", "/api/v1/admin/tenants", Some(&key), body.clone())
        .await
        .problem(403);
    let uri = format!("/api/v1/admin/tenants/{tenant_id}/api-keys");
    app.send("POST", &uri, Some(&key), None).await.problem(403);

    // Without a configured token the admin routes are closed to everyone.
    let closed = router(AppState::new(store, None, Limits::default()));
    let closed = App {
        router: closed,
        store: app.store.clone(),
        cluster: app.cluster.clone(),
    };
    closed
        .send(
            "POST",
            "/api/v1/admin/tenants",
            Some(ADMIN_TOKEN),
            body.clone(),
        )
        .await
        .problem(401);
    closed
        .send("POST", "/api/v1/admin/tenants", Some(""), body)
        .await
        .problem(401);
}

async fn admin_creates_tenants_and_keys(store: Arc<dyn Store>) {
    let app = App::new(store).await;
    let created = app
        .send(
            "POST",
            "/api/v1/admin/tenants",
            Some(ADMIN_TOKEN),
            Some(json!({"name": "acme"})),
        )
        .await;
    let tenant = created.ok(201).clone();
    let tenant_id = tenant["id"].as_str().unwrap();
    assert!(tenant_id.starts_with("tn-"), "{tenant}");
    assert_eq!(tenant["name"], "acme");

    let dup = app
        .send(
            "POST",
            "/api/v1/admin/tenants",
            Some(ADMIN_TOKEN),
            Some(json!({"name": "acme"})),
        )
        .await;
    dup.problem_naming(409, "name");
    let bad = app
        .send(
            "POST",
            "/api/v1/admin/tenants",
            Some(ADMIN_TOKEN),
            Some(json!({"name": "x", "plan": 1})),
        )
        .await;
    bad.problem_naming(422, "plan");
    let blank = app
        .send(
            "POST",
            "/api/v1/admin/tenants",
            Some(ADMIN_TOKEN),
            Some(json!({"name": " "})),
        )
        .await;
    blank.problem_naming(422, "name");

    let uri = format!("/api/v1/admin/tenants/{tenant_id}/api-keys");
    let first = app
        .send("POST", &uri, Some(ADMIN_TOKEN), None)
        .await
        .ok(201)
        .clone();
    let second = app
        .send("POST", &uri, Some(ADMIN_TOKEN), None)
        .await
        .ok(201)
        .clone();
    assert_eq!(first["tenant_id"], tenant_id);
    let key = first["key"].as_str().unwrap();
    assert_ne!(key, second["key"].as_str().unwrap());
    assert!(key.len() >= 32, "{key}");
    assert!(key.starts_with(first["prefix"].as_str().unwrap()));
    // Only the hash is stored.
    let record = app
        .store
        .find_api_key(&hash_api_key(key))
        .await
        .unwrap()
        .expect("stored");
    assert_eq!(record.tenant_id, tenant_id);
    assert!(app.store.find_api_key(key).await.unwrap().is_none());
    // Both keys work.
    for k in [key, second["key"].as_str().unwrap()] {
        app.get("/api/v1/databases", k).await.ok(200);
    }

    let unknown = app
        .send(
            "POST",
            "/api/v1/admin/tenants/tn-nope/api-keys",
            Some(ADMIN_TOKEN),
            None,
        )
        .await;
    unknown.problem(404);
}

async fn tenant_routes_need_a_key(store: Arc<dyn Store>) {
    let app = App::new(store).await;
    for (method, uri) in [
        ("GET", "/api/v1/databases"),
        ("POST", "/api/v1/databases"),
        ("GET", "/api/v1/databases/db-x"),
        ("PATCH", "/api/v1/databases/db-x"),
        ("DELETE", "/api/v1/databases/db-x"),
        ("GET", "/api/v1/operations"),
        ("GET", "/api/v1/operations/op-x"),
    ] {
        let reply = app.send(method, uri, None, None).await;
        reply.problem(401);
        assert_eq!(
            reply.header(header::WWW_AUTHENTICATE),
            "Bearer",
            "{method} {uri}"
        );
        app.send(method, uri, Some("dbk_not_a_key"), None)
            .await
            .problem(401);
        // The admin token is not a tenant key.
        app.send(method, uri, Some(ADMIN_TOKEN), None)
            .await
            .problem(401);
    }
    let basic = Request::get("/api/v1/databases")
        .header(header::AUTHORIZATION, "Basic dXNlcjpwYXNz")
        .body(Body::empty())
        .unwrap();
    app.call(basic).await.problem(401);
}

async fn create_database(store: Arc<dyn Store>) {
    let app = App::new(store).await;
    let (tenant_id, key) = app.tenant("acme").await;
    let reply = app
        .send(
            "POST",
            "/api/v1/databases",
            Some(&key),
            Some(json!({"name": "orders", "engine": "postgres", "size": "db.t3.medium", "replicas": 3, "storage_gb": 50})),
        )
        .await;
    let db = reply.ok(201).clone();
    let id = id_of(&db);
    assert!(id.starts_with("db-"), "{id}");
    assert_eq!(
        reply.header(header::LOCATION),
        format!("/api/v1/databases/{id}")
    );
    assert_eq!(reply.header(header::ETAG), "\"g1\"");
    assert_eq!(db["tenant_id"], tenant_id);
    assert_eq!(db["name"], "orders");
    assert_eq!(db["engine"], "postgres");
    // No version asked for: the newest the catalog offers, not deprecated.
    assert_eq!(db["version"], "17.2");
    assert_eq!(db["size"], "db.t3.medium");
    assert_eq!(db["replicas"], 3);
    assert_eq!(db["storage_gb"], 50);
    assert_eq!(db["status"], "provisioning");
    assert_eq!(db["generation"], 1);
    assert_eq!(db["observed_generation"], 0);
    for observed in ["current_size", "current_replicas", "current_storage_gb"] {
        assert!(
            db[observed].is_null(),
            "{observed} before observation: {db}"
        );
    }
    assert_eq!(db["conditions"], json!([]));
    for stamp in ["created_at", "updated_at"] {
        assert!(
            db[stamp].as_str().unwrap().parse::<DateTime<Utc>>().is_ok(),
            "{stamp}"
        );
    }

    let got = app.get(&format!("/api/v1/databases/{id}"), &key).await;
    assert_eq!(got.ok(200), &db);
    assert_eq!(got.header(header::ETAG), "\"g1\"");

    let explicit = app
        .database(&key, json!({"name": "cache", "engine": "mysql", "version": "8.0.36", "size": "db.t3.micro", "replicas": 3, "storage_gb": 10}))
        .await;
    assert_eq!(explicit["version"], "8.0.36");
    // A merge-patch style content type is JSON too.
    let merge = app
        .send_raw(
            "POST",
            "/api/v1/databases",
            &key,
            Some("application/json; charset=utf-8"),
            pg("charset").to_string(),
        )
        .await;
    merge.ok(201);

    assert_eq!(
        app.operation_count().await,
        0,
        "the API never creates operations"
    );
}

async fn create_prechecks(store: Arc<dyn Store>) {
    let app = App::new(store).await;
    let (_, key) = app.tenant("acme").await;
    app.database(&key, pg("taken")).await;

    let with = |patch: Value| {
        let mut body = pg("fresh");
        for (k, v) in patch.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };
    let cases: Vec<(Value, u16, &str)> = vec![
        (with(json!({"extra": true})), 422, "extra"),
        (with(json!({"size": "db.t3.huge"})), 422, "size"),
        (with(json!({"engine": "oracle"})), 422, "engine"),
        (with(json!({"replicas": 0})), 422, "replicas"),
        (with(json!({"replicas": 10})), 422, "replicas"),
        (with(json!({"replicas": -1})), 422, "replicas"),
        (with(json!({"replicas": "3"})), 422, "replicas"),
        (with(json!({"replicas": 1.5})), 422, "replicas"),
        (
            with(json!({"engine": "mysql", "replicas": 2})),
            422,
            "replicas",
        ),
        (
            with(json!({"engine": "redis", "replicas": 3})),
            422,
            "replicas",
        ),
        (with(json!({"storage_gb": 9})), 422, "storage_gb"),
        (with(json!({"storage_gb": 10001})), 422, "storage_gb"),
        (with(json!({"storage_gb": "big"})), 422, "storage_gb"),
        (with(json!({"name": "Not_A_Label"})), 422, "name"),
        (with(json!({"name": "-dash"})), 422, "name"),
        (with(json!({"name": "a".repeat(41)})), 422, "name"),
        (with(json!({"name": ""})), 422, "name"),
        (with(json!({"version": "8; drop"})), 422, "version"),
        (with(json!({"name": "taken"})), 409, "name"),
        (
            json!({"name": "fresh", "engine": "postgres", "replicas": 1, "storage_gb": 20}),
            422,
            "size",
        ),
        (json!(["not", "an", "object"]), 422, ""),
    ];
    for (body, status, field) in cases {
        let reply = app
            .send("POST", "/api/v1/databases", Some(&key), Some(body.clone()))
            .await;
        assert_eq!(reply.status.as_u16(), status, "{body} -> {}", reply.text);
        reply.problem_naming(status, field);
    }

    let raw = |ct: Option<&'static str>, body: Vec<u8>| {
        let app = &app;
        let key = key.clone();
        async move {
            app.send_raw("POST", "/api/v1/databases", &key, ct, body)
                .await
        }
    };
    raw(Some("application/json"), b"{\"name\": ".to_vec())
        .await
        .problem(400);
    raw(Some("application/json"), b"".to_vec())
        .await
        .problem(400);
    raw(Some("application/json"), b"{\"name\": \"a\xff\"}".to_vec())
        .await
        .problem(400);
    raw(Some("text/plain"), pg("plain").to_string().into_bytes())
        .await
        .problem(415);
    raw(None, pg("none").to_string().into_bytes())
        .await
        .problem(415);
    raw(Some("application/json"), vec![b' '; 65 * 1024])
        .await
        .problem(413);
    let mut big = pg("big");
    big["padding"] = json!("x".repeat(70 * 1024));
    raw(Some("application/json"), big.to_string().into_bytes())
        .await
        .problem(413);

    let listed = app.get("/api/v1/databases", &key).await;
    assert_eq!(
        listed.ok(200)["items"].as_array().unwrap().len(),
        1,
        "nothing invalid was stored"
    );
}

async fn list_pagination_and_filters(store: Arc<dyn Store>) {
    let app = App::new(store).await;
    let (_, key) = app.tenant("acme").await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let engine = if i % 2 == 0 { "postgres" } else { "mongodb" };
        let db = app
            .database(&key, json!({"name": format!("db{i}"), "engine": engine, "size": "db.t3.small", "replicas": 1, "storage_gb": 20}))
            .await;
        ids.push(id_of(&db));
    }
    ids.sort();

    let mut seen = Vec::new();
    let mut uri = "/api/v1/databases?limit=2".to_owned();
    loop {
        let page = app.get(&uri, &key).await.ok(200).clone();
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 2);
        seen.extend(items.iter().map(id_of));
        match page["next_cursor"].as_str() {
            Some(cursor) => uri = format!("/api/v1/databases?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen, ids, "pages cover every database once, in id order");

    let all = app.get("/api/v1/databases", &key).await.ok(200).clone();
    assert_eq!(all["items"].as_array().unwrap().len(), 5);
    assert!(all["next_cursor"].is_null());

    let mongos = app
        .get("/api/v1/databases?engine=mongodb", &key)
        .await
        .ok(200)
        .clone();
    let mongos = mongos["items"].as_array().unwrap();
    assert_eq!(mongos.len(), 2);
    assert!(mongos.iter().all(|d| d["engine"] == "mongodb"));

    app.send(
        "DELETE",
        &format!("/api/v1/databases/{}", ids[0]),
        Some(&key),
        None,
    )
    .await
    .ok(202);
    let deleting = app
        .get("/api/v1/databases?status=deleting", &key)
        .await
        .ok(200)
        .clone();
    assert_eq!(
        deleting["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(id_of)
            .collect::<Vec<_>>(),
        [ids[0].clone()]
    );
    let provisioning = app
        .get("/api/v1/databases?status=provisioning&limit=200", &key)
        .await
        .ok(200)
        .clone();
    assert_eq!(provisioning["items"].as_array().unwrap().len(), 4);

    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=201", "limit"),
        ("limit=abc", "limit"),
        ("cursor=%21%21", "cursor"),
        ("engine=oracle", "engine"),
        ("status=sleeping", "status"),
        ("limit=1&limit=2", "limit"),
        ("engnie=postgres", "engnie"),
    ] {
        app.get(&format!("/api/v1/databases?{query}"), &key)
            .await
            .problem_naming(400, field);
    }
}

async fn tenant_isolation(store: Arc<dyn Store>) {
    let app = App::new(store.clone()).await;
    let (_, alice) = app.tenant("alice").await;
    let (_, bob) = app.tenant("bob").await;
    let db = app.database(&alice, pg("secret")).await;
    let id = id_of(&db);
    let op = operation(&*store, &db, 0, Utc::now()).await;
    assert!(store.insert_operation(&op, &[]).await.unwrap());

    // Bob sees exactly what he would see for an id that does not exist.
    let absent = "db-doesnotexist";
    let same = |theirs: &Reply, missing: &Reply| {
        theirs.problem(404);
        missing.problem(404);
        assert_eq!(theirs.text.replace(&id, absent), missing.text);
    };
    let uri = |id: &str| format!("/api/v1/databases/{id}");
    same(
        &app.get(&uri(&id), &bob).await,
        &app.get(&uri(absent), &bob).await,
    );
    same(
        &app.patch(&id, &bob, json!({"size": "db.t3.large"})).await,
        &app.patch(absent, &bob, json!({"size": "db.t3.large"}))
            .await,
    );
    same(
        &app.send("DELETE", &uri(&id), Some(&bob), None).await,
        &app.send("DELETE", &uri(absent), Some(&bob), None).await,
    );
    app.get(&format!("/api/v1/operations/{}", op.id), &bob)
        .await
        .problem(404);

    let listed = app.get("/api/v1/databases", &bob).await.ok(200).clone();
    assert_eq!(listed["items"], json!([]));
    let ops = app
        .get(&format!("/api/v1/operations?database_id={id}"), &bob)
        .await
        .ok(200)
        .clone();
    assert_eq!(ops["items"], json!([]));
    let ops = app.get("/api/v1/operations", &bob).await.ok(200).clone();
    assert_eq!(ops["items"], json!([]));

    // Alice's database is untouched, and the same name is free for Bob.
    let still = app.get(&uri(&id), &alice).await.ok(200).clone();
    assert_eq!(still, db);
    app.database(&bob, pg("secret")).await;
}

async fn patch_records_desired_state_only(store: Arc<dyn Store>) {
    let app = App::new(store.clone()).await;
    let (_, key) = app.tenant("acme").await;
    let db = app.database(&key, pg("orders")).await;
    let id = id_of(&db);

    let reply = app.patch(&id, &key, json!({"size": "db.t3.large"})).await;
    let patched = reply.ok(200).clone();
    assert_eq!(reply.header(header::ETAG), "\"g2\"");
    assert_eq!(patched["size"], "db.t3.large");
    assert_eq!(patched["generation"], 2);
    assert_eq!(patched["observed_generation"], 0);
    assert_eq!(
        patched["status"], "provisioning",
        "not observed yet: still provisioning"
    );
    assert!(patched["current_size"].is_null());
    assert_eq!(
        app.operation_count().await,
        0,
        "a PATCH creates no operation"
    );
    let ops = app
        .get(&format!("/api/v1/operations?database_id={id}"), &key)
        .await
        .ok(200)
        .clone();
    assert_eq!(ops["items"], json!([]));

    // Once observed, an accepted change shows as updating.
    observe(&*store, &id, Size::Large, 1, 20).await;
    let reply = app
        .patch(&id, &key, json!({"replicas": 3, "storage_gb": 40}))
        .await;
    let updating = reply.ok(200).clone();
    assert_eq!(updating["status"], "updating");
    assert_eq!(updating["replicas"], 3);
    assert_eq!(updating["storage_gb"], 40);
    assert_eq!(
        updating["current_replicas"], 1,
        "observed state is not the API's to change"
    );
    assert_eq!(updating["generation"], 3);

    // Asking again for what is already desired changes nothing.
    let same = app.patch(&id, &key, json!({"replicas": 3})).await;
    assert_eq!(same.ok(200)["generation"], 3);
    assert_eq!(same.header(header::ETAG), "\"g3\"");
    // A merge-patch content type works too.
    let merge = app
        .send_raw(
            "PATCH",
            &format!("/api/v1/databases/{id}"),
            &key,
            Some("application/merge-patch+json"),
            json!({"size": "db.t3.xlarge"}).to_string(),
        )
        .await;
    assert_eq!(merge.ok(200)["size"], "db.t3.xlarge");
    assert_eq!(app.operation_count().await, 0);
}

async fn patch_prechecks_and_if_match(store: Arc<dyn Store>) {
    let app = App::new(store.clone()).await;
    let (_, key) = app.tenant("acme").await;
    let db = app
        .database(&key, json!({"name": "shop", "engine": "mysql", "size": "db.t3.small", "replicas": 3, "storage_gb": 50}))
        .await;
    let id = id_of(&db);

    for (body, status, field) in [
        (json!({}), 400, ""),
        (json!({"size": null}), 400, ""),
        (json!({"storage_gb": 40}), 422, "storage_gb"),
        (json!({"storage_gb": 10_001}), 422, "storage_gb"),
        (json!({"replicas": 2}), 422, "replicas"),
        (json!({"replicas": 1}), 422, "replicas"),
        (json!({"replicas": 10}), 422, "replicas"),
        (json!({"replicas": "5"}), 422, "replicas"),
        (json!({"size": "db.t3.tiny"}), 422, "size"),
        (json!({"name": "renamed"}), 422, "name"),
    ] {
        app.patch(&id, &key, body)
            .await
            .problem_naming(status, field);
    }
    app.patch("db-absent", &key, json!({"size": "db.t3.large"}))
        .await
        .problem(404);
    let raw = app
        .send_raw(
            "PATCH",
            &format!("/api/v1/databases/{id}"),
            &key,
            Some("text/plain"),
            "{}",
        )
        .await;
    raw.problem(415);
    let unchanged = app
        .get(&format!("/api/v1/databases/{id}"), &key)
        .await
        .ok(200)
        .clone();
    assert_eq!(
        unchanged["generation"], 1,
        "rejected patches change nothing"
    );

    let conditional = |etag: &'static str, size: &'static str| {
        let app = &app;
        let uri = format!("/api/v1/databases/{id}");
        let key = key.clone();
        async move {
            let req = Request::patch(uri)
                .header(header::AUTHORIZATION, format!("Bearer {key}"))
                .header(header::CONTENT_TYPE, "application/json")
                .header(header::IF_MATCH, etag)
                .body(Body::from(json!({"size": size}).to_string()))
                .unwrap();
            app.call(req).await
        }
    };
    let ok = conditional("\"g1\"", "db.t3.medium").await;
    assert_eq!(ok.ok(200)["size"], "db.t3.medium");
    assert_eq!(ok.header(header::ETAG), "\"g2\"");
    conditional("\"g1\"", "db.t3.large").await.problem(412);
    conditional("W/\"g2\"", "db.t3.large").await.problem(412);
    assert_eq!(
        conditional("\"g0\", \"g2\"", "db.t3.large").await.ok(200)["generation"],
        3
    );
    assert_eq!(
        conditional("*", "db.t3.xlarge").await.ok(200)["generation"],
        4
    );
    // The ETag versions desired state only: observations do not make it stale.
    observe(&*store, &id, Size::Small, 3, 50).await;
    assert_eq!(
        conditional("\"g4\"", "db.t3.2xlarge").await.ok(200)["size"],
        "db.t3.2xlarge"
    );
    assert_eq!(app.operation_count().await, 0);
}

/// The design's Example 3: two quick PATCHes leave only the last desired
/// value; nothing is queued for the intermediate one.
async fn example_3_fast_multiple_updates(store: Arc<dyn Store>) {
    let app = App::new(store.clone()).await;
    let (_, key) = app.tenant("acme").await;
    let db = app.database(&key, pg("db-123")).await;
    let id = id_of(&db);
    observe(&*store, &id, Size::Small, 1, 20).await;

    app.patch(&id, &key, json!({"size": "db.t3.medium"}))
        .await
        .ok(200);
    app.patch(&id, &key, json!({"size": "db.t3.large"}))
        .await
        .ok(200);

    let now = app
        .get(&format!("/api/v1/databases/{id}"), &key)
        .await
        .ok(200)
        .clone();
    assert_eq!(now["size"], "db.t3.large", "the last desired value wins");
    assert_eq!(
        now["current_size"], "db.t3.small",
        "current state is untouched"
    );
    assert_eq!(now["generation"], 3);
    assert_eq!(now["status"], "updating");
    assert_eq!(
        app.operation_count().await,
        0,
        "no operation for db.t3.medium or anything else"
    );
}

async fn concurrent_patches_are_never_lost(store: Arc<dyn Store>) {
    let app = Arc::new(App::new(store).await);
    let (_, key) = app.tenant("acme").await;
    let db = app
        .database(&key, json!({"name": "busy", "engine": "postgres", "size": "db.t3.micro", "replicas": 1, "storage_gb": 20}))
        .await;
    let id = id_of(&db);
    const SIZES: [&str; 5] = [
        "db.t3.small",
        "db.t3.medium",
        "db.t3.large",
        "db.t3.xlarge",
        "db.t3.2xlarge",
    ];
    let tasks: Vec<_> = SIZES
        .iter()
        .map(|size| {
            let (app, key, id) = (app.clone(), key.clone(), id.clone());
            tokio::spawn(async move { app.patch(&id, &key, json!({"size": size})).await })
        })
        .collect();
    let mut replies = Vec::new();
    for task in tasks {
        let reply = task.await.unwrap();
        replies.push(reply.ok(200).clone());
    }
    let mut generations: Vec<u64> = replies
        .iter()
        .map(|r| r["generation"].as_u64().unwrap())
        .collect();
    generations.sort();
    assert_eq!(
        generations,
        [2, 3, 4, 5, 6],
        "every PATCH was applied exactly once"
    );
    let last = replies
        .iter()
        .max_by_key(|r| r["generation"].as_u64())
        .unwrap();
    let now = app
        .get(&format!("/api/v1/databases/{id}"), &key)
        .await
        .ok(200)
        .clone();
    assert_eq!(now["generation"], 6);
    assert_eq!(now["size"], last["size"], "the last accepted PATCH wins");
}

async fn delete_is_desired_state_and_idempotent(store: Arc<dyn Store>) {
    let app = App::new(store.clone()).await;
    let (_, key) = app.tenant("acme").await;
    let db = app.database(&key, pg("doomed")).await;
    let id = id_of(&db);
    let uri = format!("/api/v1/databases/{id}");

    let reply = app.send("DELETE", &uri, Some(&key), None).await;
    let deleting = reply.ok(202).clone();
    assert_eq!(deleting["status"], "deleting");
    assert_eq!(deleting["deletion_requested"], true);
    assert_eq!(deleting["generation"], 2);
    assert_eq!(reply.header(header::ETAG), "\"g2\"");

    let again = app.send("DELETE", &uri, Some(&key), None).await;
    assert_eq!(
        again.ok(202),
        &deleting,
        "deleting again is accepted and changes nothing"
    );
    assert_eq!(app.get(&uri, &key).await.ok(200)["status"], "deleting");

    let patch = app.patch(&id, &key, json!({"size": "db.t3.large"})).await;
    assert!(
        patch.problem(409)["detail"]
            .as_str()
            .unwrap()
            .contains("deleted")
    );
    // The name stays taken until the deletion is finished.
    app.send("POST", "/api/v1/databases", Some(&key), Some(pg("doomed")))
        .await
        .problem_naming(409, "name");
    app.send("DELETE", "/api/v1/databases/db-absent", Some(&key), None)
        .await
        .problem(404);
    assert_eq!(
        app.operation_count().await,
        0,
        "a DELETE creates no operation"
    );

    assert!(store.finalize_deletion(&id, &[]).await.unwrap());
    app.database(&key, pg("doomed")).await;
    let listed = app.get("/api/v1/databases", &key).await.ok(200).clone();
    assert_eq!(
        listed["items"].as_array().unwrap().len(),
        1,
        "finished deletions are not listed"
    );
    let deleted = app
        .get("/api/v1/databases?status=deleted", &key)
        .await
        .ok(200)
        .clone();
    assert_eq!(deleted["items"][0]["id"], id.as_str());
}

/// A pending size change of `db` at generation 2, its `seq`-th operation.
async fn operation(
    store: &dyn Store,
    db: &Value,
    seq: u64,
    created_at: DateTime<Utc>,
) -> Operation {
    let db = store
        .get_database(&id_of(db))
        .await
        .unwrap()
        .expect("the database");
    Operation {
        id: Operation::id_for(&db.id, OperationType::ScaleVertical, 2, seq),
        target_generation: 2,
        attempts: 0,
        ..Operation::planned(&db, Action::Change(Change::Size(Size::Large)), created_at)
    }
}

async fn operations_are_listed_newest_first(store: Arc<dyn Store>) {
    let app = App::new(store.clone()).await;
    let (_, key) = app.tenant("acme").await;
    let db = app.database(&key, pg("busy")).await;
    let other = app.database(&key, pg("quiet")).await;
    let base = DateTime::from_timestamp_millis(Utc::now().timestamp_millis()).unwrap();
    let mut ops = Vec::new();
    for seq in 0..5 {
        // Two operations share a timestamp: the id breaks the tie.
        let at = base + TimeDelta::milliseconds(10 * (seq as i64 / 2 * 2));
        let op = operation(&*store, &db, seq, at).await;
        assert!(store.insert_operation(&op, &[]).await.unwrap());
        ops.push(op);
    }
    assert!(
        store
            .insert_operation(&operation(&*store, &other, 0, base).await, &[])
            .await
            .unwrap()
    );
    ops.sort_by(|a, b| (b.created_at, &b.id).cmp(&(a.created_at, &a.id)));
    let expected: Vec<String> = ops.iter().map(|o| o.id.clone()).collect();

    let database_id = id_of(&db);
    let mut seen = Vec::new();
    let mut uri = format!("/api/v1/operations?database_id={database_id}&limit=2");
    loop {
        let page = app.get(&uri, &key).await.ok(200).clone();
        seen.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|o| o["id"].as_str().unwrap().to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(cursor) => {
                uri =
                    format!("/api/v1/operations?database_id={database_id}&limit=2&cursor={cursor}")
            }
            None => break,
        }
    }
    assert_eq!(seen, expected, "newest first, each once");
    let all = app.get("/api/v1/operations", &key).await.ok(200).clone();
    assert_eq!(all["items"].as_array().unwrap().len(), 6);

    let one = app
        .get(&format!("/api/v1/operations/{}", ops[0].id), &key)
        .await
        .ok(200)
        .clone();
    assert_eq!(one["id"], ops[0].id.as_str());
    assert_eq!(one["type"], "scale_vertical");
    assert_eq!(one["desired_state"], json!({"size": "db.t3.large"}));
    app.get("/api/v1/operations/op-absent", &key)
        .await
        .problem(404);
    for (query, field) in [
        ("cursor=bm9wZQ", "cursor"),
        ("limit=0", "limit"),
        ("state=x", "state"),
    ] {
        app.get(&format!("/api/v1/operations?{query}"), &key)
            .await
            .problem_naming(400, field);
    }
}

async fn rate_limit_per_key(store: Arc<dyn Store>) {
    let limits = Limits {
        rate_limit_per_second: NonZeroU32::new(1).unwrap(),
        rate_limit_burst: NonZeroU32::new(2).unwrap(),
        ..Limits::default()
    };
    let app = App::with_limits(store, limits).await;
    let (_, alice) = app.tenant("alice").await;
    let (_, bob) = app.tenant("bob").await;
    app.get("/api/v1/databases", &alice).await.ok(200);
    app.get("/api/v1/databases", &alice).await.ok(200);
    let limited = app.get("/api/v1/databases", &alice).await;
    limited.problem(429);
    let retry: u64 = limited
        .header(header::RETRY_AFTER)
        .parse()
        .expect("Retry-After seconds");
    assert!((1..=2).contains(&retry), "{retry}");
    app.get("/api/v1/databases", &bob).await.ok(200);
}

// ------------------------------------------------- store failures (no I/O)

/// A store that is down: every call fails, or never answers.
struct DownStore {
    hang: bool,
}

impl DownStore {
    async fn fail<T>(&self) -> dbaas_core::Result<T> {
        if self.hang {
            std::future::pending::<()>().await;
        }
        Err(dbaas_core::Error::Store("connection refused".into()))
    }
}

#[async_trait]
impl Store for DownStore {
    async fn ping(&self) -> dbaas_core::Result<()> {
        self.fail().await
    }
    async fn insert_tenant(&self, _: &Tenant) -> dbaas_core::Result<()> {
        self.fail().await
    }
    async fn get_tenant(&self, _: &str) -> dbaas_core::Result<Option<Tenant>> {
        self.fail().await
    }
    async fn insert_api_key(&self, _: &ApiKeyRecord) -> dbaas_core::Result<()> {
        self.fail().await
    }
    async fn find_api_key(&self, _: &str) -> dbaas_core::Result<Option<ApiKeyRecord>> {
        self.fail().await
    }
    async fn insert_database(&self, _: &Database, _: &[Event]) -> dbaas_core::Result<()> {
        self.fail().await
    }
    async fn get_database(&self, _: &str) -> dbaas_core::Result<Option<Database>> {
        self.fail().await
    }
    async fn list_databases(&self, _: &DatabaseQuery) -> dbaas_core::Result<Vec<Database>> {
        self.fail().await
    }
    async fn update_desired(
        &self,
        _: &str,
        _: u64,
        _: &DesiredChange,
    ) -> dbaas_core::Result<Option<Database>> {
        self.fail().await
    }
    async fn update_observed(&self, _: &str, _: &ObservedUpdate) -> dbaas_core::Result<bool> {
        self.fail().await
    }
    async fn begin_operation(&self, _: &str, _: &str, _: u64) -> dbaas_core::Result<bool> {
        self.fail().await
    }
    async fn end_operation(&self, _: &str, _: &str) -> dbaas_core::Result<bool> {
        self.fail().await
    }
    async fn finalize_deletion(&self, _: &str, _: &[Event]) -> dbaas_core::Result<bool> {
        self.fail().await
    }
    async fn insert_operation(&self, _: &Operation, _: &[Event]) -> dbaas_core::Result<bool> {
        self.fail().await
    }
    async fn cancel_operation(
        &self,
        _: &str,
        _: DateTime<Utc>,
        _: &[Event],
    ) -> dbaas_core::Result<Option<Operation>> {
        self.fail().await
    }
    async fn get_operation(&self, _: &str) -> dbaas_core::Result<Option<Operation>> {
        self.fail().await
    }
    async fn list_operations(&self, _: &OperationQuery) -> dbaas_core::Result<Vec<Operation>> {
        self.fail().await
    }
    async fn update_operation(
        &self,
        _: &str,
        _: &[OperationStatus],
        _: &OperationUpdate,
    ) -> dbaas_core::Result<Option<Operation>> {
        self.fail().await
    }
    async fn update_claimed_operation(
        &self,
        _: &str,
        _: &str,
        _: &OperationUpdate,
    ) -> dbaas_core::Result<Option<Operation>> {
        self.fail().await
    }
    async fn claim_operation(
        &self,
        _: &str,
        _: DateTime<Utc>,
        _: DateTime<Utc>,
        _: &str,
    ) -> dbaas_core::Result<Option<Operation>> {
        self.fail().await
    }
    async fn add_to_counter(&self, _: &str, _: f64) -> dbaas_core::Result<f64> {
        self.fail().await
    }
    async fn insert_event(&self, _: &Event) -> dbaas_core::Result<()> {
        self.fail().await
    }
    async fn list_events(&self, _: &EventQuery) -> dbaas_core::Result<Vec<Event>> {
        self.fail().await
    }
    async fn flush_events(&self) -> dbaas_core::Result<usize> {
        self.fail().await
    }
}

#[tokio::test]
async fn a_failing_store_answers_503_never_500() {
    let app = App::new(Arc::new(DownStore { hang: false })).await;
    app.send("GET", "/healthz", None, None).await.ok(200);
    let ready = app.send("GET", "/readyz", None, None).await;
    assert!(
        !ready.problem(503)["detail"]
            .as_str()
            .unwrap()
            .contains("refused"),
        "no internals leak"
    );
    app.get("/api/v1/databases", "dbk_any").await.problem(503);
    app.send(
        "POST",
        "/api/v1/admin/tenants",
        Some(ADMIN_TOKEN),
        Some(json!({"name": "a"})),
    )
    .await
    .problem(503);
}

#[tokio::test]
async fn a_hanging_store_times_out() {
    let limits = Limits {
        request_timeout: Duration::from_millis(300),
        ..Limits::default()
    };
    let app = App::with_limits(Arc::new(DownStore { hang: true }), limits).await;
    let started = std::time::Instant::now();
    app.send("GET", "/readyz", None, None).await.problem(503);
    app.get("/api/v1/databases", "dbk_any").await.problem(504);
    app.patch("db-x", "dbk_any", json!({"size": "db.t3.large"}))
        .await
        .problem(504);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    app.send("GET", "/healthz", None, None).await.ok(200);
}

/// Over a real socket, an oversized body gets its 413 every time: the
/// server reads the rest before answering, so the kernel has no unread
/// input to answer with a reset that would destroy the response.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_bodies_get_a_413_not_a_reset() {
    let store = dbaas_store::embedded::SqliteStore::in_memory().expect("open a store");
    let app = App::new(Arc::new(store)).await;
    let (_, key) = app.tenant("big").await;
    let app = app.router;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!(
        "http://{}/api/v1/databases",
        listener.local_addr().expect("address")
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    let http = reqwest::Client::new();
    for round in 0..20 {
        // With a Content-Length, then streamed (chunked, no length).
        let sized = http.post(&url).body(vec![b' '; 16 << 20]);
        let chunks = (0..40).map(|_| Ok::<_, std::io::Error>(vec![b' '; 64 << 10]));
        let streamed = http
            .post(&url)
            .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)));
        for (kind, req) in [("sized", sized), ("streamed", streamed)] {
            let resp = req
                .header("content-type", "application/json")
                .bearer_auth(&key)
                .send()
                .await
                .unwrap_or_else(|e| panic!("round {round}, {kind} body: no answer: {e:?}"));
            assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE, "{kind}");
            let body: Value =
                serde_json::from_slice(&resp.bytes().await.expect("a body")).expect("JSON");
            assert_eq!(body["status"], 413, "{body}");
        }
    }
}

/// Credentials come from the auth Secret once the database is ready, never
/// cached, each read an event; a rotation is recorded desired state.
async fn credentials_and_rotation(store: Arc<dyn Store>) {
    let app = App::new(store.clone()).await;
    let (_, key) = app.tenant("keys").await;
    let (_, other) = app.tenant("others").await;
    let db = app.database(&key, pg("login")).await;
    let id = id_of(&db);
    assert_eq!(db["connection"], Value::Null, "nothing observed yet");
    let creds = format!("/api/v1/databases/{id}/credentials");
    app.get(&creds, &key).await.problem(409);

    observe(&*store, &id, Size::Small, 1, 20).await;
    let db = app
        .get(&format!("/api/v1/databases/{id}"), &key)
        .await
        .ok(200)
        .clone();
    let cr = naming::cr_name("login", &id);
    let connection = &db["connection"];
    assert_eq!(connection["host"], format!("{cr}.{NAMESPACE}.svc"));
    assert_eq!(connection["port"], 5432);
    assert_eq!(connection["primary_service"], cr.as_str());
    assert_eq!(connection["standby_service"], Value::Null);
    assert_eq!(connection["pods_service"], format!("{cr}-pods"));
    assert_eq!(connection["auth_secret"], format!("{cr}-auth"));
    assert_eq!(
        connection["uri"],
        format!("postgresql://postgres@{cr}.{NAMESPACE}.svc:5432/postgres")
    );
    // Ready, but KubeDB has not made the Secret (yet): still a 409.
    app.get(&creds, &key).await.problem(409);
    let secret = json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": format!("{cr}-auth"), "namespace": NAMESPACE},
        "type": "kubernetes.io/basic-auth",
        "data": {"username": "cG9zdGdyZXM=", "password": "czNjcjN0LXBhc3M="},
    });
    app.cluster
        .ensure_namespace(NAMESPACE)
        .await
        .expect("namespace");
    app.cluster
        .create(&Kind::secret(), NAMESPACE, &secret)
        .await
        .expect("create the Secret");
    let reply = app.get(&creds, &key).await;
    assert_eq!(
        reply.ok(200),
        &json!({"username": "postgres", "password": "s3cr3t-pass"})
    );
    assert_eq!(reply.header(header::CACHE_CONTROL), "no-store");
    app.get(&creds, &other).await.problem(404);
    // An API without cluster access says so, and records no read.
    let blind = router(AppState::new(store.clone(), None, Limits::default()));
    let req = Request::builder()
        .uri(&creds)
        .header(header::AUTHORIZATION, format!("Bearer {key}"))
        .body(Body::empty())
        .unwrap();
    let response = blind.oneshot(req).await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);

    let events = format!("/api/v1/databases/{id}/events");
    let page = app.get(&events, &key).await.ok(200).clone();
    let items = page["items"].as_array().expect("items");
    assert_eq!(
        items.len(),
        2,
        "one read, one event after the creation's: {page}"
    );
    assert_eq!(items[0]["type"], "credentials_read");
    assert_eq!(items[1]["type"], "created");
    assert_eq!(items[0]["api_key"], key[..8].to_string());
    assert!(
        !page.to_string().contains("s3cr3t"),
        "no password in events"
    );
    app.get(&events, &other).await.problem(404);

    let rotate = format!("/api/v1/databases/{id}/credentials/rotate");
    let reply = app.send("POST", &rotate, Some(&key), None).await;
    let rotated = reply.ok(202).clone();
    assert_eq!(
        (
            &rotated["auth_rotation"],
            &rotated["current_auth_rotation"],
            &rotated["generation"],
            &rotated["status"]
        ),
        (&json!(1), &json!(0), &json!(2), &json!("updating"))
    );
    assert_eq!(reply.header(header::ETAG), "\"g2\"");
    app.send("POST", &rotate, Some(&other), None)
        .await
        .problem(404);
    let page = app
        .get(&format!("{events}?limit=1"), &key)
        .await
        .ok(200)
        .clone();
    assert_eq!(page["items"][0]["type"], "credentials_rotation_requested");
    let next = page["next_cursor"].as_str().expect("a second page");
    let rest = app
        .get(&format!("{events}?limit=1&cursor={next}"), &key)
        .await
        .ok(200)
        .clone();
    assert_eq!(rest["items"][0]["type"], "credentials_read");
    assert_eq!(app.operation_count().await, 0, "the API plans nothing");

    app.send(
        "DELETE",
        &format!("/api/v1/databases/{id}"),
        Some(&key),
        None,
    )
    .await
    .ok(202);
    app.send("POST", &rotate, Some(&key), None)
        .await
        .problem(409);
    app.get(&creds, &key).await.problem(409);
}

/// The catalog as the API lists it, and `version` checked against it on
/// create and PATCH: 422s naming `version`, nothing recorded.
async fn versions_and_upgrades(store: Arc<dyn Store>) {
    let app = App::new(store.clone()).await;
    let (_, key) = app.tenant("versions").await;
    let listed = app
        .get("/api/v1/versions?engine=postgres", &key)
        .await
        .ok(200)
        .clone();
    let items = listed["items"].as_array().expect("items");
    let names: Vec<&str> = items.iter().map(|v| v["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["13.13", "14.13", "15.8", "16.1", "16.4", "17.2"]);
    assert_eq!(items[0]["deprecated"], true);
    assert_eq!(items[2]["upgrades"], json!(["16.1", "16.4"]));
    assert!(items.iter().all(|v| v["engine"] == "postgres"));
    let all = app.get("/api/v1/versions", &key).await.ok(200).clone();
    assert!(all["items"].as_array().unwrap().len() > items.len());
    app.get("/api/v1/versions?engine=oracle", &key)
        .await
        .problem_naming(400, "engine");

    for (version, why) in [
        ("13.13", "deprecated"),
        ("9.6", "not in the version catalog"),
    ] {
        let mut body = pg("old");
        body["version"] = json!(version);
        let reply = app
            .send("POST", "/api/v1/databases", Some(&key), Some(body))
            .await;
        reply.problem_naming(422, "version");
        assert!(reply.text.contains(why), "{}", reply.text);
    }
    let mut body = pg("upgradable");
    body["version"] = json!("15.8");
    let db = app.database(&key, body).await;
    let id = id_of(&db);
    assert_eq!(db["version"], "15.8");
    let running = ObservedUpdate {
        current_version: Some("15.8".into()),
        ..Default::default()
    };
    assert!(store.update_observed(&id, &running).await.unwrap());
    let upgrades = app
        .get(&format!("/api/v1/databases/{id}/upgrades"), &key)
        .await
        .ok(200)
        .clone();
    let targets: Vec<&str> = upgrades["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(targets, ["16.1", "16.4"]);

    for (version, why) in [
        ("17.2", "cannot be upgraded to 17.2 directly"),
        ("14.13", "downgrades are not supported"),
        ("13.13", "deprecated"),
        ("99.0", "not in the version catalog"),
    ] {
        let reply = app.patch(&id, &key, json!({"version": version})).await;
        reply.problem_naming(422, "version");
        assert!(reply.text.contains(why), "{version}: {}", reply.text);
    }
    let unchanged = app
        .get(&format!("/api/v1/databases/{id}"), &key)
        .await
        .ok(200)
        .clone();
    assert_eq!(
        (&unchanged["version"], &unchanged["generation"]),
        (&json!("15.8"), &json!(1))
    );

    let patched = app
        .patch(&id, &key, json!({"version": "16.4"}))
        .await
        .ok(200)
        .clone();
    assert_eq!(patched["version"], "16.4");
    assert_eq!(
        patched["current_version"], "15.8",
        "the CR moves only after KubeDB succeeded"
    );
    assert_eq!(patched["generation"], 2);
    assert_eq!(app.operation_count().await, 0, "the API plans nothing");
}

fn event_types(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|e| e["type"].as_str().expect("type").to_string())
        .collect()
}

async fn lifecycle_fields_restart_and_history(store: Arc<dyn Store>) {
    let app = App::new(store.clone()).await;
    let (_, key) = app.tenant("acme").await;
    let mut body = pg("kept");
    body["deletion_protection"] = json!(true);
    body["deletion_policy"] = json!("halt");
    let db = app.database(&key, body).await;
    let id = id_of(&db);
    assert_eq!(
        (
            &db["deletion_protection"],
            &db["deletion_policy"],
            &db["paused"]
        ),
        (&json!(true), &json!("halt"), &json!(false))
    );
    let mut bad = pg("bad-policy");
    bad["deletion_policy"] = json!("keep");
    app.send("POST", "/api/v1/databases", Some(&key), Some(bad))
        .await
        .problem_naming(422, "deletion_policy");
    app.patch(&id, &key, json!({"deletion_policy": "keep"}))
        .await
        .problem_naming(422, "deletion_policy");
    app.patch(&id, &key, json!({"paused": "yes"}))
        .await
        .problem_naming(422, "paused");

    // Protected: refused with the field named, and nothing changes.
    let uri = format!("/api/v1/databases/{id}");
    app.send("DELETE", &uri, Some(&key), None)
        .await
        .problem_naming(409, "deletion_protection");
    let same = app.get(&uri, &key).await.ok(200).clone();
    assert_eq!(
        (&same["deletion_requested"], &same["generation"]),
        (&json!(false), &json!(1))
    );

    let paused = app.patch(&id, &key, json!({"paused": true})).await;
    assert_eq!(
        (&paused.ok(200)["paused"], &paused.body["generation"]),
        (&json!(true), &json!(2))
    );
    let restart = format!("/api/v1/databases/{id}/restart");
    app.send("POST", &restart, Some(&key), None)
        .await
        .problem_naming(409, "paused");
    app.patch(
        &id,
        &key,
        json!({"paused": false, "deletion_protection": false}),
    )
    .await
    .ok(200);
    let restarted = app.send("POST", &restart, Some(&key), None).await;
    assert_eq!(
        (
            &restarted.ok(202)["restarts"],
            &restarted.body["generation"]
        ),
        (&json!(1), &json!(4))
    );
    app.send("DELETE", &uri, Some(&key), None).await.ok(202);

    let events = app
        .get(&format!("{uri}/events"), &key)
        .await
        .ok(200)
        .clone();
    assert_eq!(
        event_types(&events),
        [
            "deletion_requested",
            "restart_requested",
            "desired_changed",
            "desired_changed",
            "created"
        ],
        "{events}"
    );
    let items = events["items"].as_array().expect("items");
    assert!(items.iter().all(|e| e["api_key"] == key[..8]), "{events}");
    assert!(
        items[3]["message"]
            .as_str()
            .is_some_and(|m| m.contains("paused: false → true")),
        "{events}"
    );
    assert!(
        items[2]["message"]
            .as_str()
            .is_some_and(|m| m.contains("paused: true → false")
                && m.contains("deletion_protection: true → false")),
        "{events}"
    );
    assert_eq!(app.operation_count().await, 0, "the API plans nothing");
}

async fn cancel_takes_the_change_back(store: Arc<dyn Store>) {
    let app = App::new(store.clone()).await;
    let (_, key) = app.tenant("acme").await;
    let (_, other) = app.tenant("other").await;
    let db = app.database(&key, pg("undo")).await;
    let id = id_of(&db);
    let running = ObservedUpdate {
        current_size: Some(Size::Small),
        current_replicas: Some(1),
        current_storage_gb: Some(20),
        current_version: db["version"].as_str().map(str::to_string),
        ..Default::default()
    };
    assert!(store.update_observed(&id, &running).await.unwrap());
    app.patch(&id, &key, json!({"size": "db.t3.large"}))
        .await
        .ok(200);
    // What the reconciler would plan for it.
    let plan = |seq: u64, size: Size| {
        let store = store.clone();
        let id = id.clone();
        async move {
            let db = store.get_database(&id).await.unwrap().expect("db");
            let op = Operation::planned(&db, Action::Change(Change::Size(size)), Utc::now());
            assert!(store.insert_operation(&op, &[]).await.unwrap());
            assert!(store.begin_operation(&id, &op.id, seq).await.unwrap());
            op
        }
    };
    let op = plan(0, Size::Large).await;
    let cancel = |op: &str| format!("/api/v1/operations/{op}/cancel");
    app.send("POST", &cancel(&op.id), Some(&other), None)
        .await
        .problem(404);
    let cancelled = app.send("POST", &cancel(&op.id), Some(&key), None).await;
    assert_eq!(cancelled.ok(200)["status"], "cancelled");
    let back = app
        .get(&format!("/api/v1/databases/{id}"), &key)
        .await
        .ok(200)
        .clone();
    assert_eq!(
        (
            &back["size"],
            &back["generation"],
            &back["active_operation_id"]
        ),
        (&json!("db.t3.small"), &json!(3), &Value::Null),
        "taken back as a new generation, and the database released"
    );
    let again = app.send("POST", &cancel(&op.id), Some(&key), None).await;
    assert!(
        again.problem(409)["detail"]
            .as_str()
            .unwrap()
            .contains("already ended")
    );
    let events = app
        .get(&format!("/api/v1/databases/{id}/events?limit=2"), &key)
        .await
        .ok(200)
        .clone();
    assert_eq!(
        event_types(&events),
        ["desired_changed", "operation_cancelled"],
        "{events}"
    );
    assert!(
        events["items"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("size: db.t3.large → db.t3.small")),
        "{events}"
    );

    // Once the worker has named its OpsRequest, KubeDB cannot cancel it.
    app.patch(&id, &key, json!({"size": "db.t3.large"}))
        .await
        .ok(200);
    let op = plan(1, Size::Large).await;
    store
        .update_operation(
            &op.id,
            &[OperationStatus::Pending],
            &OperationUpdate {
                status: Some(OperationStatus::Running),
                ops_request_name: Some(Some(op.ops_request_name_for_attempt())),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .expect("running");
    let refused = app.send("POST", &cancel(&op.id), Some(&key), None).await;
    assert!(
        refused.problem(409)["detail"]
            .as_str()
            .unwrap()
            .contains("OpsRequest")
    );
    let db = store.get_database(&id).await.unwrap().expect("db");
    assert_eq!(
        (db.size, db.generation),
        (Size::Large, 4),
        "nothing changed"
    );
    store
        .update_operation(
            &op.id,
            &[OperationStatus::Running],
            &OperationUpdate {
                status: Some(OperationStatus::Succeeded),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(store.end_operation(&id, &op.id).await.unwrap());

    // Eight cancels at once: one wins, the change is taken back once.
    app.patch(&id, &key, json!({"size": "db.t3.medium"}))
        .await
        .ok(200);
    let op = plan(2, Size::Medium).await;
    let uri = cancel(&op.id);
    let (app_ref, key_ref, uri_ref) = (&app, &key, &uri);
    let replies = futures::future::join_all(
        (0..8).map(|_| async move { app_ref.send("POST", uri_ref, Some(key_ref), None).await }),
    )
    .await;
    let won = replies
        .iter()
        .filter(|r| r.status == StatusCode::OK)
        .count();
    let lost = replies
        .iter()
        .filter(|r| r.status == StatusCode::CONFLICT)
        .count();
    assert_eq!((won, lost), (1, 7));
    let db = store.get_database(&id).await.unwrap().expect("db");
    assert_eq!((db.size, db.generation), (Size::Small, 6));

    // A provision is not taken back by a cancel.
    let fresh = app.database(&key, pg("fresh")).await;
    let fresh = store
        .get_database(&id_of(&fresh))
        .await
        .unwrap()
        .expect("db");
    let provision = Operation::planned(
        &fresh,
        Action::Provision(dbaas_core::domain::Spec {
            size: Size::Small,
            replicas: 1,
            storage_gb: 20,
        }),
        Utc::now(),
    );
    assert!(store.insert_operation(&provision, &[]).await.unwrap());
    app.send("POST", &cancel(&provision.id), Some(&key), None)
        .await
        .problem(409);
}

async fn plans_show_the_steps_and_save_nothing(store: Arc<dyn Store>) {
    let app = App::new(store.clone()).await;
    let (_, key) = app.tenant("acme").await;
    let (_, other) = app.tenant("other").await;
    let db = app.database(&key, pg("planned")).await;
    let id = id_of(&db);
    let plan_uri = format!("/api/v1/databases/{id}/plan");
    // Never observed: the provision is all there is.
    let plan = app.get(&plan_uri, &key).await.ok(200).clone();
    assert_eq!(plan["steps"][0]["type"], "provision", "{plan}");
    assert_eq!(plan["in_sync"], false);
    app.get(&plan_uri, &other).await.problem(404);

    let running = ObservedUpdate {
        current_size: Some(Size::Small),
        current_replicas: Some(1),
        current_storage_gb: Some(20),
        current_version: db["version"].as_str().map(str::to_string),
        current_deletion_policy: Some(dbaas_core::domain::OnDelete::Wipeout),
        status: Some(DatabaseStatus::Ready),
        observed_generation: Some(1),
        ..Default::default()
    };
    assert!(store.update_observed(&id, &running).await.unwrap());
    let plan = app.get(&plan_uri, &key).await.ok(200).clone();
    assert_eq!(
        (&plan["in_sync"], &plan["steps"]),
        (&json!(true), &json!([])),
        "{plan}"
    );

    // A preview of a patch: validated like the PATCH, nothing saved.
    let preview = |body: Value| {
        let app = &app;
        let key = key.clone();
        async move {
            app.send("POST", "/api/v1/databases/plan", Some(&key), Some(body))
                .await
        }
    };
    preview(json!({"id": id, "storage_gb": 5}))
        .await
        .problem_naming(422, "storage_gb");
    preview(json!({"id": id, "colour": "blue"}))
        .await
        .problem_naming(422, "colour");
    preview(json!({"id": "db-doesnotexist", "size": "db.t3.large"}))
        .await
        .problem(404);
    let reply =
        preview(json!({"id": id, "size": "db.t3.large", "storage_gb": 30, "paused": true})).await;
    let steps = reply.ok(200)["steps"].as_array().expect("steps").clone();
    let types: Vec<&str> = steps.iter().map(|s| s["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["pause"], "paused, the rest waits: {steps:?}");
    assert_eq!(
        reply.body["waiting"].as_str().map(|w| w.contains("resume")),
        Some(true)
    );
    let reply = preview(json!({"id": id, "size": "db.t3.large", "storage_gb": 30})).await;
    let steps = reply.ok(200)["steps"].as_array().expect("steps").clone();
    assert_eq!(
        steps
            .iter()
            .map(|s| (
                s["type"].as_str().unwrap(),
                s["ops_request_type"].as_str(),
                s["disruption"].as_str().unwrap()
            ))
            .collect::<Vec<_>>(),
        [
            ("expand_storage", Some("VolumeExpansion"), "online"),
            ("scale_vertical", Some("VerticalScaling"), "downtime"),
        ]
    );
    assert!(
        steps
            .iter()
            .all(|s| s["reason"].as_str().is_some_and(|r| !r.is_empty()))
    );
    let unchanged = app
        .get(&format!("/api/v1/databases/{id}"), &key)
        .await
        .ok(200)
        .clone();
    assert_eq!(
        (&unchanged["size"], &unchanged["generation"]),
        (&json!("db.t3.small"), &json!(1))
    );

    // An operation under way comes first, and the steps after it are
    // judged on the replicas it brings.
    app.patch(&id, &key, json!({"replicas": 3, "size": "db.t3.large"}))
        .await
        .ok(200);
    let record = store.get_database(&id).await.unwrap().expect("db");
    let scaling = Operation::planned(&record, Action::Change(Change::Replicas(3)), Utc::now());
    assert!(store.insert_operation(&scaling, &[]).await.unwrap());
    assert!(
        store
            .begin_operation(&id, &scaling.id, record.operation_seq)
            .await
            .unwrap()
    );
    let plan = app.get(&plan_uri, &key).await.ok(200).clone();
    let steps: Vec<(&str, bool, &str)> = plan["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| {
            (
                s["type"].as_str().unwrap(),
                s["running"].as_bool().unwrap(),
                s["disruption"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        steps,
        [
            ("scale_horizontal", true, "online"),
            ("scale_vertical", false, "rolling_restart"),
        ],
        "{plan}"
    );

    // A preview of a create: the provision, with the version it would get.
    let reply = preview(pg("not-yet")).await;
    let plan = reply.ok(200).clone();
    assert_eq!(plan["database_id"], Value::Null);
    assert_eq!(plan["steps"][0]["type"], "provision");
    assert!(plan["steps"][0]["target"]["version"].is_string(), "{plan}");
    let mut bad = pg("not-yet");
    bad["replicas"] = json!(0);
    preview(bad).await.problem_naming(422, "replicas");
    let listed = app.get("/api/v1/databases", &key).await.ok(200).clone();
    assert_eq!(
        listed["items"].as_array().map(Vec::len),
        Some(1),
        "nothing saved"
    );
    assert_eq!(
        app.operation_count().await,
        1,
        "the API plans nothing: only the one inserted above"
    );
}

/// Past `max_in_flight`, a request waits only `admission_wait`, then gets a
/// fast 503 with `Retry-After` (not a 504 after the whole deadline); probes
/// still answer, and capacity comes back when the slow requests end.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn overload_is_shed_at_once_with_retry_after() {
    let limits = Limits {
        request_timeout: Duration::from_millis(1500),
        max_in_flight: 2,
        admission_wait: Duration::from_millis(50),
        ..Limits::default()
    };
    let app = Arc::new(App::with_limits(Arc::new(DownStore { hang: true }), limits).await);
    let slow: Vec<_> = (0..2)
        .map(|_| {
            let app = app.clone();
            tokio::spawn(async move { app.get("/api/v1/databases", "dbk_any").await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = std::time::Instant::now();
    let shed = app.get("/api/v1/databases", "dbk_any").await;
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "shed at once, not after the deadline: {:?}",
        started.elapsed()
    );
    assert_eq!(shed.problem(503)["type"], "urn:dbaas:problem:overloaded");
    assert_eq!(shed.header(header::RETRY_AFTER), "1");
    app.send("GET", "/healthz", None, None).await.ok(200);
    for s in slow {
        s.await.expect("a slow request").problem(504);
    }
    // Room again: the next request reaches the (hanging) store.
    app.get("/api/v1/databases", "dbk_any").await.problem(504);
}

/// Lists have a narrower lane: past `max_lists_in_flight` a list is shed at
/// once with a 503, while reads by id are still admitted.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lists_past_their_lane_are_shed_while_reads_go_on() {
    let limits = Limits {
        request_timeout: Duration::from_millis(1000),
        max_lists_in_flight: 1,
        admission_wait: Duration::from_millis(50),
        ..Limits::default()
    };
    let app = Arc::new(App::with_limits(Arc::new(DownStore { hang: true }), limits).await);
    let slow = {
        let app = app.clone();
        tokio::spawn(async move { app.get("/api/v1/operations", "dbk_any").await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    for list in [
        "/api/v1/databases",
        "/api/v1/databases/db-x/events",
        "/api/v1/operations",
    ] {
        let started = std::time::Instant::now();
        let shed = app.get(list, "dbk_any").await;
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "{list} shed at once: {:?}",
            started.elapsed()
        );
        assert_eq!(
            shed.problem(503)["type"],
            "urn:dbaas:problem:overloaded",
            "{list}"
        );
        assert_eq!(shed.header(header::RETRY_AFTER), "1");
    }
    // A read by id is admitted: it reaches the (hanging) store and times out.
    app.get("/api/v1/databases/db-x", "dbk_any")
        .await
        .problem(504);
    slow.await.expect("the slow list").problem(504);
    app.get("/api/v1/databases", "dbk_any").await.problem(504);
}

/// A verified key is trusted for the cache's time to live: removed from the
/// store, it keeps working until then and not after; with no cache it stops
/// at once. (MongoDB only: the stores have no way to remove a key, so the
/// test removes the document itself.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn removed_api_keys_work_at_most_the_cache_ttl() {
    async fn remove_keys(store: &MongoStore) {
        store
            .database()
            .collection::<mongodb::bson::Document>("api_keys")
            .delete_many(mongodb::bson::doc! {})
            .await
            .expect("remove the keys");
    }
    let uri = std::env::var("MONGODB_URI")
        .expect("MONGODB_URI is not set: run just rig-up; source target/rig/env");
    for ttl in [Duration::from_secs(2), Duration::ZERO] {
        let store = MongoStore::new(&uri, &format!("dbaas_api_{}", random_token(8)))
            .await
            .expect("create the store");
        let limits = Limits {
            api_key_cache_ttl: ttl,
            ..Limits::default()
        };
        let app = App::with_limits(Arc::new(store.clone()), limits).await;
        let (_, key) = app.tenant("keyholder").await;
        app.get("/api/v1/databases", &key).await.ok(200);
        remove_keys(&store).await;
        if ttl.is_zero() {
            app.get("/api/v1/databases", &key).await.problem(401);
        } else {
            app.get("/api/v1/databases", &key).await.ok(200);
            tokio::time::sleep(ttl + Duration::from_millis(200)).await;
            app.get("/api/v1/databases", &key).await.problem(401);
        }
        store
            .database()
            .drop()
            .await
            .expect("drop the test database");
    }
}
