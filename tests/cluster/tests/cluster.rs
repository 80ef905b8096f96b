//! The functions running for real (issue 11), on the rig's single node
//! (`tests/rig/cluster-up.sh`) with the project's image and the rig overlay
//! deployed (`k8s/scripts/image.sh`, `k8s/scripts/deploy.sh`, schedule 1m).
//! `just test-cluster` does all of that, then runs these with `--ignored`.
//!
//! One test, in steps that depend on each other (the API wakes, a database
//! is created and patched, the API goes back to zero), each printed as it
//! passes so a failure shows how far it got.

use std::time::{Duration, Instant};

use dbaas_deploy_tests::{assert_dashboards_have_data, prom_query};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Pod, Secret, Service};
use kube::api::{ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams};
use kube::{Api, Client};
use serde_json::{Value, json};

const NS: &str = "dbaas";
const DB_NS: &str = "dbaas-databases";
/// Matches the InterceptorRoute's first host (keda/api-interceptorroute.yaml).
const HOST: &str = "dbaas.example.com";
const WORKER_SA: &str = "system:serviceaccount:dbaas:dbaas-worker";

fn step(msg: &str) {
    println!("[cluster-e2e] {msg}");
}

async fn wait_for<F, Fut, T>(what: &str, timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

async fn api_replicas(client: &Client) -> i32 {
    let d = Api::<Deployment>::namespaced(client.clone(), NS)
        .get("dbaas-api")
        .await
        .expect("Deployment dbaas-api");
    d.spec.and_then(|s| s.replicas).unwrap_or(1)
}

struct Rest {
    http: reqwest::Client,
    base: String,
}

impl Rest {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("Host", HOST)
            .header("Authorization", format!("Bearer {token}"));
        if let Some(b) = body {
            req = req
                .header("Content-Type", "application/json")
                .body(b.to_string());
        }
        let resp = req.send().await.unwrap_or_else(|e| panic!("{path}: {e}"));
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }
}

/// A name unique to this run, so the test can run again on the same rig.
fn run_name(prefix: &str) -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    format!("{prefix}-{}", secs % 100_000)
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v[k].as_str()
        .unwrap_or_else(|| panic!("no string {k} in {v}"))
}

#[tokio::test]
#[ignore = "needs the cluster rig: just test-cluster"]
async fn functions_run_for_real_on_the_node() {
    let client = Client::try_default()
        .await
        .expect("KUBECONFIG of the cluster rig");

    // --- the interceptor's proxy Service, reached from the host through kube-proxy
    let svc = Api::<Service>::namespaced(client.clone(), "keda")
        .get("keda-add-ons-http-interceptor-proxy")
        .await
        .expect("the HTTP add-on's proxy Service");
    let ip = svc.spec.and_then(|s| s.cluster_ip).expect("ClusterIP");
    let rest = Rest {
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap(),
        base: format!("http://{ip}:8080"),
    };
    let secret = Api::<Secret>::namespaced(client.clone(), NS)
        .get("dbaas-secrets")
        .await
        .expect("dbaas-secrets");
    let admin =
        String::from_utf8(secret.data.expect("data")["admin-token"].0.clone()).expect("utf-8");

    // --- 1. the API is at zero replicas
    wait_for(
        "dbaas-api at 0 replicas",
        Duration::from_secs(240),
        || async { (api_replicas(&client).await == 0).then_some(()) },
    )
    .await;
    step("the API Deployment is at 0 replicas");

    // --- 2. a first request through the interceptor wakes it
    let t = Instant::now();
    let resp = rest
        .http
        .get(format!("{}/healthz", rest.base))
        .header("Host", HOST)
        .send()
        .await
        .expect("first request through the interceptor");
    let cold = t.elapsed();
    assert_eq!(
        resp.status().as_u16(),
        200,
        "cold request: {:?}",
        resp.text().await
    );
    println!(
        "COLD START through the KEDA HTTP interceptor: {} ms",
        cold.as_millis()
    );
    assert!(api_replicas(&client).await >= 1, "KEDA scaled the API up");
    step("woken from zero and answered");

    // --- 3. a tenant and an API key with the generated admin token
    let (code, tenant) = rest
        .call(
            reqwest::Method::POST,
            "/api/v1/admin/tenants",
            &admin,
            Some(json!({"name": run_name("cluster-e2e")})),
        )
        .await;
    assert_eq!(code, 201, "create tenant: {tenant}");
    let (code, key) = rest
        .call(
            reqwest::Method::POST,
            &format!("/api/v1/admin/tenants/{}/api-keys", s(&tenant, "id")),
            &admin,
            None,
        )
        .await;
    assert_eq!(code, 201, "create api key: {key}");
    let key = s(&key, "key").to_owned();

    // --- 4. create: carried out by the reconciler CronJob and a KEDA worker Job
    let started = Instant::now();
    let (code, db) = rest
        .call(
            reqwest::Method::POST,
            "/api/v1/databases",
            &key,
            Some(json!({"name": run_name("orders"), "engine": "postgres", "size": "db.t3.small", "replicas": 1, "storage_gb": 10})),
        )
        .await;
    assert_eq!(code, 201, "create database: {db}");
    let id = s(&db, "id").to_owned();
    let path = format!("/api/v1/databases/{id}");
    wait_for(
        "the database to be ready",
        Duration::from_secs(420),
        || async {
            let (_, d) = rest.call(reqwest::Method::GET, &path, &key, None).await;
            (d["status"] == "ready").then_some(())
        },
    )
    .await;
    step(&format!(
        "created and ready in {} s",
        started.elapsed().as_secs()
    ));

    // --- 5. a PATCH, carried out the same way
    let started = Instant::now();
    let (code, patched) = rest
        .call(
            reqwest::Method::PATCH,
            &path,
            &key,
            Some(json!({"size": "db.t3.large"})),
        )
        .await;
    assert!(code == 200 || code == 202, "patch: {code} {patched}");
    wait_for(
        "current_size db.t3.large",
        Duration::from_secs(420),
        || async {
            let (_, d) = rest.call(reqwest::Method::GET, &path, &key, None).await;
            (d["current_size"] == "db.t3.large" && d["status"] == "ready").then_some(())
        },
    )
    .await;
    step(&format!(
        "PATCH carried out in {} s",
        started.elapsed().as_secs()
    ));
    let (_, ops) = rest
        .call(
            reqwest::Method::GET,
            &format!("/api/v1/operations?database_id={id}"),
            &key,
            None,
        )
        .await;
    println!("operations: {}", ops["items"]);

    // --- 6. worker Jobs: one per operation, each completed
    let jobs = Api::<Job>::namespaced(client.clone(), NS);
    let worker_jobs = wait_for(
        "worker Jobs completed",
        Duration::from_secs(120),
        || async {
            let all = jobs
                .list(&ListParams::default().labels("scaledjob.keda.sh/name=dbaas-worker"))
                .await
                .ok()?;
            let running = all
                .items
                .iter()
                .any(|j| j.status.as_ref().and_then(|s| s.active).unwrap_or(0) > 0);
            let done: Vec<Job> = all
                .items
                .into_iter()
                .filter(|j| j.status.as_ref().and_then(|s| s.succeeded).unwrap_or(0) == 1)
                .collect();
            (!running && done.len() >= 2).then_some(done)
        },
    )
    .await;
    for j in &worker_jobs {
        let spec = j.spec.as_ref().unwrap();
        assert_eq!(spec.parallelism, Some(1));
        assert_eq!(spec.completions, Some(1));
    }
    step(&format!(
        "{} worker Jobs started by KEDA completed, none still running",
        worker_jobs.len()
    ));

    // --- 7. the OpsRequest was written by the worker's own ServiceAccount
    let gvk = GroupVersionKind::gvk("ops.kubedb.com", "v1alpha1", "PostgresOpsRequest");
    let ops_api =
        Api::<DynamicObject>::namespaced_with(client.clone(), DB_NS, &ApiResource::from_gvk(&gvk));
    let opsreqs = ops_api
        .list(&ListParams::default())
        .await
        .expect("PostgresOpsRequests");
    assert!(!opsreqs.items.is_empty(), "an OpsRequest for the PATCH");
    let audit = std::env::var("RIG_DIR")
        .map(|d| std::fs::read_to_string(format!("{d}/logs/audit.log")).unwrap_or_default())
        .unwrap_or_default();
    for o in &opsreqs.items {
        let name = o.metadata.name.as_deref().unwrap();
        let by_worker = audit
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .any(|e| {
                e["verb"] == "create"
                    && e["objectRef"]["resource"] == "postgresopsrequests"
                    && (e["objectRef"]["name"] == name || e["responseStatus"]["code"] == 201)
                    && e["user"]["username"] == WORKER_SA
            });
        assert!(by_worker, "audit log: {name} created by {WORKER_SA}");
    }
    step(&format!(
        "{} OpsRequests, created by {WORKER_SA} (audit log)",
        opsreqs.items.len()
    ));

    // --- 8. and that ServiceAccount is refused what it was not granted
    let mut cfg = kube::Config::infer().await.expect("kubeconfig");
    cfg.auth_info.impersonate = Some(WORKER_SA.to_owned());
    let as_worker = Client::try_from(cfg).expect("impersonating client");
    let err = Api::<Secret>::namespaced(as_worker.clone(), NS)
        .list(&ListParams::default())
        .await
        .expect_err("the worker may not list Secrets in dbaas");
    assert!(
        matches!(&err, kube::Error::Api(s) if s.code == 403),
        "{err}"
    );
    let err = Api::<Deployment>::namespaced(as_worker, NS)
        .delete("dbaas-api", &Default::default())
        .await
        .expect_err("the worker may not delete the API Deployment");
    assert!(
        matches!(&err, kube::Error::Api(s) if s.code == 403),
        "{err}"
    );
    step("the worker's ServiceAccount is refused Secrets and Deployments (403)");

    // --- 9. CronJob: Forbid, passes never overlap, the Lease is held by one
    let cj = Api::<CronJob>::namespaced(client.clone(), NS)
        .get("dbaas-reconciler")
        .await
        .expect("CronJob");
    assert_eq!(
        cj.spec.as_ref().unwrap().concurrency_policy.as_deref(),
        Some("Forbid")
    );
    let mut runs: Vec<(String, String)> = jobs
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .filter(|j| {
            j.metadata
                .owner_references
                .iter()
                .flatten()
                .any(|o| o.kind == "CronJob")
        })
        .filter_map(|j| {
            let st = j.status.as_ref()?;
            Some((
                st.start_time.as_ref()?.0.to_string(),
                st.completion_time.as_ref()?.0.to_string(),
            ))
        })
        .collect();
    runs.sort();
    assert!(!runs.is_empty(), "the CronJob ran at least once");
    for w in runs.windows(2) {
        assert!(w[1].0 >= w[0].1, "reconciler Jobs overlapped: {w:?}");
    }
    let lease = Api::<Lease>::namespaced(client.clone(), DB_NS)
        .get("dbaas-reconciler")
        .await
        .expect("Lease");
    step(&format!(
        "{} reconciler Jobs completed, none overlapping; Lease holder {:?}",
        runs.len(),
        lease.spec.and_then(|s| s.holder_identity)
    ));

    // --- 10. a worker pod killed mid-operation: replaced, and the operation
    // is carried out once
    let (code, patched) = rest
        .call(
            reqwest::Method::PATCH,
            &path,
            &key,
            Some(json!({"replicas": 3})),
        )
        .await;
    assert!(
        code == 200 || code == 202,
        "patch replicas: {code} {patched}"
    );
    let pods = Api::<Pod>::namespaced(client.clone(), NS);
    let victim = wait_for("a running worker pod", Duration::from_secs(180), || async {
        let l = pods
            .list(&ListParams::default().labels("app.kubernetes.io/name=dbaas-worker"))
            .await
            .ok()?;
        l.items
            .into_iter()
            .find(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
            .and_then(|p| p.metadata.name)
    })
    .await;
    pods.delete(
        &victim,
        &DeleteParams {
            grace_period_seconds: Some(0),
            ..Default::default()
        },
    )
    .await
    .expect("kill the worker pod");
    step(&format!(
        "killed worker pod {victim} mid-operation (SIGKILL)"
    ));
    let started = Instant::now();
    wait_for(
        "current_replicas 3 after the kill",
        Duration::from_secs(420),
        || async {
            let (_, d) = rest.call(reqwest::Method::GET, &path, &key, None).await;
            (d["current_replicas"] == 3 && d["status"] == "ready").then_some(())
        },
    )
    .await;
    let (_, ops) = rest
        .call(
            reqwest::Method::GET,
            &format!("/api/v1/operations?database_id={id}"),
            &key,
            None,
        )
        .await;
    let scale: Vec<&Value> = ops["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|o| o["desired_state"]["replicas"] == 3)
        .collect();
    assert_eq!(scale.len(), 1, "one operation for the scale-out: {scale:?}");
    assert_eq!(scale[0]["status"], "succeeded", "{}", scale[0]);
    let op_id = s(scale[0], "id").to_owned();
    let succeeded: Vec<String> = ops_api
        .list(&ListParams::default())
        .await
        .expect("PostgresOpsRequests")
        .items
        .into_iter()
        .filter(|o| {
            o.metadata
                .name
                .as_deref()
                .is_some_and(|n| n.starts_with(&op_id))
        })
        .filter(|o| o.data["status"]["phase"] == "Successful")
        .filter_map(|o| o.metadata.name)
        .collect();
    assert_eq!(
        succeeded.len(),
        1,
        "the scale-out carried out once: {succeeded:?}"
    );
    step(&format!(
        "after the kill: operation {op_id} succeeded (attempts {}) in {} s, one Successful OpsRequest {succeeded:?}",
        scale[0]["attempts"],
        started.elapsed().as_secs()
    ));

    // --- 11. Prometheus scrapes the API pod and the Pushgateway, and every
    // dashboard panel's query returns data pushed by these pods.
    let prom = std::env::var("PROMETHEUS_URL").expect("PROMETHEUS_URL of the cluster rig");
    let scraped = |expr: &'static str| {
        let http = rest.http.clone();
        let prom = prom.clone();
        async move {
            let found = prom_query(&http, &prom, expr).await.ok()?;
            (!found.is_empty()).then_some(found.len())
        }
    };
    wait_for("the API pod scraped", Duration::from_secs(60), || {
        scraped("max_over_time(up{job=\"kubernetes-pods\",namespace=\"dbaas\"}[15m]) == 1")
    })
    .await;
    wait_for("reconciler metrics pushed", Duration::from_secs(60), || {
        scraped("dbaas_reconciliation_cycle_total")
    })
    .await;
    assert_dashboards_have_data(&rest.http, &prom, Duration::from_secs(120)).await;
    step("Prometheus has the API pod's scrape, and every dashboard query returns data");

    // --- 12. idle: back to zero
    let t = Instant::now();
    wait_for(
        "dbaas-api back at 0 replicas",
        Duration::from_secs(300),
        || async { (api_replicas(&client).await == 0).then_some(()) },
    )
    .await;
    step(&format!(
        "back to zero {} s after the last request",
        t.elapsed().as_secs()
    ));
}
