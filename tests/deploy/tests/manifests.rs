//! The manifests: every kustomization renders, every object is accepted by
//! the rig's API server (server-side apply, dry run, strict field
//! validation, no warnings), and the settings that the design depends on
//! hold (least-privilege RBAC that matches the code, no secret values,
//! locked-down pods, CronJob/ScaledJob/HTTP add-on wiring).

use std::collections::{BTreeMap, BTreeSet};

use dbaas_cluster::Kind;
use dbaas_core::engine::Engine;
use dbaas_core::naming::DEFAULT_NAMESPACE;
use dbaas_deploy_tests::{
    Applier, KIND_OVERLAY, Rig, client_for, describe, find, render, repo_root,
};
use serde_json::{Value, json};

/// Every kustomization in the repository.
const KUSTOMIZATIONS: [&str; 3] = ["k8s/base", "keda", KIND_OVERLAY];
/// The keys of the Secret the workloads reference (never committed).
const SECRET_KEYS: [&str; 4] = ["mongodb-uri", "redis-url", "redis-password", "admin-token"];
/// The role binaries the image holds.
const BINARIES: [&str; 3] = ["dbaas-api", "dbaas-reconciler", "dbaas-worker"];

fn s<'a>(v: &'a Value, what: &str) -> &'a str {
    v.as_str()
        .unwrap_or_else(|| panic!("{what}: expected a string, got {v}"))
}

fn i(v: &Value, what: &str) -> i64 {
    v.as_i64()
        .unwrap_or_else(|| panic!("{what}: expected an integer, got {v}"))
}

/// The environment-neutral objects: k8s/base and keda/.
fn neutral() -> Vec<Value> {
    let mut objs = render("k8s/base");
    objs.extend(render("keda"));
    objs
}

/// The ConfigMap's data.
fn config(objs: &[Value]) -> BTreeMap<String, String> {
    let cm = find(objs, "ConfigMap", "dbaas-config");
    serde_json::from_value(cm["data"].clone()).expect("string data")
}

/// Pod templates of the workloads, with where they come from.
fn pod_templates(objs: &[Value]) -> Vec<(String, &Value)> {
    let mut out = Vec::new();
    for o in objs {
        let t = match o["kind"].as_str() {
            Some("Deployment") => &o["spec"]["template"],
            Some("CronJob") => &o["spec"]["jobTemplate"]["spec"]["template"],
            Some("ScaledJob") => &o["spec"]["jobTargetRef"]["template"],
            _ => continue,
        };
        out.push((describe(o), t));
    }
    out
}

/// Seconds between runs of a cron schedule of the forms `just schedule`
/// writes.
fn cron_period(cron: &str) -> i64 {
    let f: Vec<&str> = cron.split_whitespace().collect();
    assert_eq!(f.len(), 5, "cron {cron:?}");
    let step = |field: &str| {
        field
            .strip_prefix("*/")
            .map_or(1, |n| n.parse::<i64>().expect("a step"))
    };
    match (f[0], f[1], f[2], f[3], f[4]) {
        ("*", "*", "*", "*", "*") => 60,
        (m, "*", "*", "*", "*") if m.starts_with("*/") => step(m) * 60,
        ("0", h, "*", "*", "*") if h == "*" || h.starts_with("*/") => step(h) * 3600,
        ("0", "0", "*", "*", "*") => 86400,
        ("0", "0", "*", "*", "0") => 7 * 86400,
        _ => panic!("unexpected cron {cron:?}"),
    }
}

#[tokio::test]
async fn every_kustomization_renders_and_the_api_server_accepts_every_object() {
    let rig = Rig::from_env();
    let applier = Applier::new(client_for(&rig.kubeconfig).await);
    let rendered: Vec<(&str, Vec<Value>)> =
        KUSTOMIZATIONS.iter().map(|k| (*k, render(k))).collect();

    // Namespaced dry runs need their namespaces: create them for real, as
    // the manifests declare them (labels included, so Pod Security
    // admission judges the workloads as it would in a cluster).
    let mut declared = BTreeSet::new();
    for (_, objs) in &rendered {
        for ns in objs.iter().filter(|o| o["kind"] == "Namespace") {
            applier
                .apply(ns, false)
                .await
                .unwrap_or_else(|e| panic!("creating {}: {e}", describe(ns)));
            declared.insert(s(&ns["metadata"]["name"], "namespace name").to_string());
        }
    }
    for (_, objs) in &rendered {
        for o in objs {
            if let Some(ns) = o["metadata"]["namespace"].as_str()
                && declared.insert(ns.to_string())
            {
                let bare =
                    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
                applier
                    .apply(&bare, false)
                    .await
                    .unwrap_or_else(|e| panic!("creating namespace {ns}: {e}"));
            }
        }
    }

    let mut failures = Vec::new();
    let mut count = 0;
    for (dir, objs) in &rendered {
        assert!(!objs.is_empty(), "{dir} rendered nothing");
        let mut extra = Vec::new();
        // KEDA creates Jobs from the ScaledJob's template: check that
        // template as the Job it becomes (schema and Pod Security too).
        for sj in objs.iter().filter(|o| o["kind"] == "ScaledJob") {
            let mut spec = sj["spec"]["jobTargetRef"].clone();
            spec["template"]["metadata"]["labels"]["dbaas.io/template-check"] = json!("true");
            extra.push(json!({
                "apiVersion": "batch/v1", "kind": "Job",
                "metadata": {"name": format!("{}-template-check", s(&sj["metadata"]["name"], "name")),
                             "namespace": sj["metadata"]["namespace"]},
                "spec": spec,
            }));
        }
        for obj in objs.iter().chain(&extra) {
            count += 1;
            match applier.apply(obj, true).await {
                Ok(applied) if applied.warnings.is_empty() => {}
                Ok(applied) => failures.push(format!(
                    "{dir}: {}: warnings: {:?}",
                    describe(obj),
                    applied.warnings
                )),
                Err(e) => failures.push(format!("{dir}: {}: {e}", describe(obj))),
            }
        }
    }
    assert!(
        failures.is_empty(),
        "the API server refused or warned about {} of {count} objects:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Guards the test above: the dry run really validates strictly.
#[tokio::test]
async fn the_dry_run_rejects_unknown_fields() {
    let rig = Rig::from_env();
    let applier = Applier::new(client_for(&rig.kubeconfig).await);
    let bad_cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "strict-check", "namespace": "default"}, "data": {"a": "b"}, "spec": {}});
    let err = applier
        .apply(&bad_cm, true)
        .await
        .expect_err("an unknown top-level field must be refused");
    assert!(err.contains("spec"), "{err}");
    let objs = render("keda");
    let mut sj = find(&objs, "ScaledJob", "dbaas-worker").clone();
    sj["metadata"]["namespace"] = json!("default");
    sj["spec"]["triggers"][0]["metadatum"] = json!({});
    let err = applier
        .apply(&sj, true)
        .await
        .expect_err("an unknown field in a KEDA object must be refused");
    assert!(err.contains("metadatum"), "{err}");
}

#[test]
fn no_secret_values_outside_the_dev_overlay() {
    let objs = neutral();
    for o in &objs {
        assert_ne!(
            o["kind"],
            "Secret",
            "{} must not be committed; workloads reference dbaas-secrets",
            describe(o)
        );
    }
    for (what, t) in pod_templates(&objs) {
        for c in t["spec"]["containers"].as_array().expect("containers") {
            for e in c["env"].as_array().into_iter().flatten() {
                let name = s(&e["name"], "env name");
                if let Some(v) = e["value"].as_str() {
                    let lower = v.to_lowercase();
                    assert!(
                        !(lower.contains("password")
                            || lower.contains('@')
                            || lower.contains("token")),
                        "{what}: env {name} has a literal that looks secret: {v}"
                    );
                }
                if let Some(r) = e["valueFrom"].get("secretKeyRef") {
                    assert_eq!(r["name"], "dbaas-secrets", "{what}: env {name}");
                    assert!(
                        SECRET_KEYS.contains(&s(&r["key"], "key")),
                        "{what}: env {name} reads unknown key {}",
                        r["key"]
                    );
                }
            }
        }
    }
    let ta = find(&objs, "TriggerAuthentication", "dbaas-redis");
    assert_eq!(
        ta["spec"]["secretTargetRef"],
        json!([{"parameter": "password", "name": "dbaas-secrets", "key": "redis-password"}])
    );
    for (k, v) in config(&objs) {
        assert!(
            !v.contains('@') && !k.to_lowercase().contains("password") && !k.contains("TOKEN"),
            "ConfigMap {k}={v} looks secret"
        );
    }
    // The kind overlay commits no credential: its Secrets come from the
    // untracked files a deploy generates, random values of full length.
    let committed =
        std::fs::read_to_string(repo_root().join(KIND_OVERLAY).join("kustomization.yaml"))
            .expect("the kind kustomization");
    assert!(
        !committed.contains("literals:"),
        "the kind overlay must not commit Secret literals"
    );
    let kind = render(KIND_OVERLAY);
    let secret = find(&kind, "Secret", "dbaas-secrets");
    let keys: BTreeSet<&str> = secret["data"]
        .as_object()
        .expect("data")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, SECRET_KEYS.into_iter().collect());
    let secrets: Vec<&Value> = kind.iter().filter(|o| o["kind"] == "Secret").collect();
    assert_eq!(
        secrets.len(),
        3,
        "dbaas-secrets, the MongoDB root, Grafana's admin"
    );
    for o in secrets {
        for (key, v) in o["data"].as_object().expect("data") {
            let value = String::from_utf8(base64_decode(s(v, "data"))).expect("utf-8");
            let lower = value.to_lowercase();
            assert!(
                !lower.contains("dev-only") && !lower.contains("changeme"),
                "{}: {key} is a fixed value",
                describe(o)
            );
            if key == "password" || key == "redis-password" || key == "admin-token" {
                assert!(
                    value.len() >= 48 && value.bytes().all(|b| b.is_ascii_hexdigit()),
                    "{}: {key} is not a generated random value",
                    describe(o)
                );
            }
        }
    }
}

fn base64_decode(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for c in text
        .bytes()
        .filter(|c| *c != b'=' && !c.is_ascii_whitespace())
    {
        let v = ALPHABET.iter().position(|a| *a == c).expect("base64") as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

#[test]
fn control_plane_pods_are_locked_down() {
    let objs = neutral();
    let templates = pod_templates(&objs);
    assert_eq!(
        templates.len(),
        3,
        "the API Deployment, the reconciler CronJob and the worker ScaledJob"
    );
    for (what, t) in templates {
        let pod = &t["spec"];
        let psc = &pod["securityContext"];
        assert_eq!(psc["runAsNonRoot"], true, "{what}");
        assert_eq!(psc["runAsUser"], 65532, "{what}");
        assert_eq!(psc["seccompProfile"]["type"], "RuntimeDefault", "{what}");
        let sa = s(&pod["serviceAccountName"], "serviceAccountName");
        assert!(
            sa.starts_with("dbaas-"),
            "{what}: own ServiceAccount, got {sa}"
        );
        for c in pod["containers"].as_array().expect("containers") {
            let csc = &c["securityContext"];
            assert_eq!(csc["readOnlyRootFilesystem"], true, "{what}");
            assert_eq!(csc["allowPrivilegeEscalation"], false, "{what}");
            assert_eq!(csc["runAsNonRoot"], true, "{what}");
            assert_eq!(csc["capabilities"]["drop"], json!(["ALL"]), "{what}");
            assert_eq!(csc["seccompProfile"]["type"], "RuntimeDefault", "{what}");
            for k in ["requests", "limits"] {
                assert!(
                    c["resources"][k]["memory"].is_string(),
                    "{what}: resources.{k}.memory"
                );
            }
            assert!(
                c["resources"]["requests"]["cpu"].is_string(),
                "{what}: resources.requests.cpu"
            );
            assert!(s(&c["image"], "image").starts_with("dbaas:"), "{what}");
            let command = s(&c["command"][0], "command");
            let bin = command
                .strip_prefix("/usr/local/bin/")
                .unwrap_or_else(|| panic!("{what}: {command}"));
            assert!(
                BINARIES.contains(&bin),
                "{what}: {command} is not a role binary"
            );
        }
    }
    let api = find(&objs, "Deployment", "dbaas-api");
    let pod = &api["spec"]["template"]["spec"];
    // The API pod alone mounts the token: its Role reads auth Secrets.
    assert_eq!(pod["automountServiceAccountToken"], true);
    assert!(
        api["spec"].get("replicas").is_none(),
        "replicas belong to KEDA's ScaledObject"
    );
    let c = &pod["containers"][0];
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(
        find(&objs, "ServiceAccount", "dbaas-api")["automountServiceAccountToken"],
        false
    );
}

/// Rules of a Role as (apiGroup, resource, resourceNames) -> verbs.
fn rules(role: &Value) -> BTreeMap<(String, String, Vec<String>), BTreeSet<String>> {
    let mut out: BTreeMap<_, BTreeSet<String>> = BTreeMap::new();
    for r in role["rules"].as_array().expect("rules") {
        let names: Vec<String> =
            serde_json::from_value(r.get("resourceNames").cloned().unwrap_or(json!([])))
                .expect("names");
        for g in r["apiGroups"].as_array().expect("apiGroups") {
            for res in r["resources"].as_array().expect("resources") {
                let verbs = r["verbs"]
                    .as_array()
                    .expect("verbs")
                    .iter()
                    .map(|v| s(v, "verb").to_string());
                out.entry((
                    s(g, "group").to_string(),
                    s(res, "resource").to_string(),
                    names.clone(),
                ))
                .or_default()
                .extend(verbs);
            }
        }
    }
    for ((g, r, _), verbs) in &out {
        assert!(
            g != "*" && r != "*" && !verbs.contains("*"),
            "no wildcards in {}",
            describe(role)
        );
    }
    out
}

fn expect_rules(role: &Value, want: &[(&str, &str, &[&str], &[&str])]) {
    let got = rules(role);
    let want: BTreeMap<_, BTreeSet<String>> = want
        .iter()
        .map(|(g, r, names, verbs)| {
            (
                (
                    g.to_string(),
                    r.to_string(),
                    names.iter().map(|n| n.to_string()).collect(),
                ),
                verbs.iter().map(|v| v.to_string()).collect(),
            )
        })
        .collect();
    assert_eq!(got, want, "rules of {}", describe(role));
}

#[test]
fn rbac_is_least_privilege_and_matches_the_code() {
    let objs = neutral();
    let ns = config(&objs)["DBAAS_NAMESPACE"].clone();
    assert_eq!(ns, DEFAULT_NAMESPACE);
    let mut reconciler: Vec<(&str, &str, &[&str], &[&str])> = Vec::new();
    let mut worker: Vec<(&str, &str, &[&str], &[&str])> = Vec::new();
    let dbs: Vec<Kind> = Engine::ALL.iter().map(|e| Kind::database(*e)).collect();
    let ops: Vec<Kind> = Engine::ALL.iter().map(|e| Kind::ops_request(*e)).collect();
    for k in &dbs {
        reconciler.push((k.group, k.plural, &[], &["get", "list"]));
        worker.push((k.group, k.plural, &[], &["get", "list", "create", "delete"]));
    }
    for k in &ops {
        reconciler.push((k.group, k.plural, &[], &["get", "list"]));
        worker.push((k.group, k.plural, &[], &["get", "list", "create"]));
    }
    reconciler.push(("coordination.k8s.io", "leases", &[], &["create"]));
    reconciler.push((
        "coordination.k8s.io",
        "leases",
        &["dbaas-reconciler"],
        &["get", "update"],
    ));
    let api: Vec<(&str, &str, &[&str], &[&str])> = vec![("", "secrets", &[], &["get"])];
    for (name, want) in [
        ("dbaas-reconciler", &reconciler),
        ("dbaas-worker", &worker),
        ("dbaas-api", &api),
    ] {
        let role = find(&objs, "Role", name);
        assert_eq!(
            role["metadata"]["namespace"],
            ns.as_str(),
            "{name}: Role in DBAAS_NAMESPACE"
        );
        expect_rules(role, want);
        let rb = find(&objs, "RoleBinding", name);
        assert_eq!(rb["metadata"]["namespace"], ns.as_str());
        assert_eq!(
            rb["roleRef"],
            json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name})
        );
        assert_eq!(
            rb["subjects"],
            json!([{"kind": "ServiceAccount", "name": name, "namespace": "dbaas"}])
        );
    }
    let cr = find(&objs, "ClusterRole", "dbaas-namespace-reader");
    expect_rules(cr, &[("", "namespaces", &[DEFAULT_NAMESPACE], &["get"])]);
    let crb = find(&objs, "ClusterRoleBinding", "dbaas-namespace-reader");
    let subjects: BTreeSet<&str> = crb["subjects"]
        .as_array()
        .expect("subjects")
        .iter()
        .map(|s| s["name"].as_str().expect("name"))
        .collect();
    assert_eq!(
        subjects,
        BTreeSet::from(["dbaas-reconciler", "dbaas-worker"])
    );
    assert!(
        objs.iter()
            .any(|o| o["kind"] == "Namespace" && o["metadata"]["name"] == ns.as_str()),
        "the manifests create DBAAS_NAMESPACE, so the roles need no namespace create"
    );
    // The API reads the catalog cluster-wide, list only.
    let catalog: Vec<Kind> = Engine::ALL.iter().map(|e| Kind::catalog(*e)).collect();
    let want: Vec<(&str, &str, &[&str], &[&str])> = catalog
        .iter()
        .map(|k| (k.group, k.plural, &[][..], &["list"][..]))
        .collect();
    expect_rules(find(&objs, "ClusterRole", "dbaas-catalog-reader"), &want);
    assert_eq!(
        find(&objs, "ClusterRoleBinding", "dbaas-catalog-reader")["subjects"],
        json!([{"kind": "ServiceAccount", "name": "dbaas-api", "namespace": "dbaas"}])
    );
    // The API has those two bindings and nothing else.
    for o in objs.iter().filter(|o| {
        (o["kind"] == "RoleBinding" && o["metadata"]["name"] != "dbaas-api")
            || (o["kind"] == "ClusterRoleBinding"
                && o["metadata"]["name"] != "dbaas-catalog-reader")
    }) {
        for subject in o["subjects"].as_array().expect("subjects") {
            assert_ne!(subject["name"], "dbaas-api", "{}", describe(o));
        }
    }
}

#[test]
fn reconciler_cronjob_fits_its_period() {
    let objs = neutral();
    let cj = find(&objs, "CronJob", "dbaas-reconciler");
    let spec = &cj["spec"];
    let period = cron_period(s(&spec["schedule"], "schedule"));
    assert_eq!(spec["concurrencyPolicy"], "Forbid");
    let starting = i(&spec["startingDeadlineSeconds"], "startingDeadlineSeconds");
    assert!(
        (10..period).contains(&starting),
        "startingDeadlineSeconds {starting} for a {period} s period"
    );
    assert!((1..=3).contains(&i(
        &spec["successfulJobsHistoryLimit"],
        "successful history"
    )));
    assert_eq!(spec["failedJobsHistoryLimit"], 1);
    let job = &spec["jobTemplate"]["spec"];
    assert!(i(&job["backoffLimit"], "backoffLimit") <= 1);
    let active = i(&job["activeDeadlineSeconds"], "activeDeadlineSeconds");
    assert!(
        active < period,
        "activeDeadlineSeconds {active} must be below the period {period}"
    );
    let pod = &job["template"]["spec"];
    assert_eq!(pod["restartPolicy"], "Never");
    let env = pod["containers"][0]["env"].as_array().expect("env");
    let var = |n: &str| {
        env.iter()
            .find(|e| e["name"] == n)
            .unwrap_or_else(|| panic!("env {n}"))
    };
    assert_eq!(
        var("POD_NAME")["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.name"
    );
    let ttl: i64 = s(&var("DBAAS_LEASE_TTL_SECONDS")["value"], "ttl")
        .parse()
        .expect("a number");
    assert!(
        ttl > active && ttl < period,
        "lease TTL {ttl} between the pass deadline {active} and the period {period}"
    );
    for k in ["REDIS_URL", "MONGODB_URI"] {
        assert!(
            var(k)["valueFrom"]["secretKeyRef"].is_object(),
            "{k} from the Secret"
        );
    }
}

#[test]
fn worker_scaledjob_runs_one_operation_per_job() {
    let objs = neutral();
    let cfg = config(&objs);
    let sj = find(&objs, "ScaledJob", "dbaas-worker");
    let spec = &sj["spec"];
    let trigger = &spec["triggers"][0];
    assert_eq!(spec["triggers"].as_array().map(Vec::len), Some(1));
    assert_eq!(trigger["type"], "redis");
    let md = &trigger["metadata"];
    assert_eq!(
        md["listName"],
        format!("{}:pending", cfg["DBAAS_QUEUE_PREFIX"]).as_str(),
        "KEDA watches <DBAAS_QUEUE_PREFIX>:pending"
    );
    assert_eq!(md["listLength"], "1");
    assert!(md["activationListLength"].is_string());
    let address_var = s(&md["addressFromEnv"], "addressFromEnv");
    assert!(
        cfg.contains_key(address_var),
        "{address_var} in the ConfigMap the worker container reads"
    );
    let ta = s(&trigger["authenticationRef"]["name"], "authenticationRef");
    find(&objs, "TriggerAuthentication", ta);
    assert_eq!(spec["scalingStrategy"]["strategy"], "accurate");
    assert_eq!(spec["rollout"]["strategy"], "gradual");
    assert!(
        i(&spec["successfulJobsHistoryLimit"], "history") <= 5
            && i(&spec["failedJobsHistoryLimit"], "history") <= 5
    );
    assert!(
        i(&spec["pollingInterval"], "pollingInterval") >= 10,
        "above a worker pod's start-up time"
    );
    assert!(i(&spec["maxReplicaCount"], "maxReplicaCount") >= 1);
    let job = &spec["jobTargetRef"];
    assert_eq!(job["backoffLimit"], 0);
    let deadline: i64 = cfg["DBAAS_OPERATION_DEADLINE_SECONDS"]
        .parse()
        .expect("a number");
    assert!(
        i(&job["activeDeadlineSeconds"], "activeDeadlineSeconds") > deadline,
        "the Job outlives the worker's own deadline"
    );
    assert_eq!(job["template"]["spec"]["restartPolicy"], "Never");
    assert_eq!(
        cfg["REDIS_ADDRESS"].rsplit_once(':').map(|(_, p)| p),
        Some("6379")
    );
}

#[test]
fn api_scales_to_zero_through_the_http_add_on() {
    for objs in [neutral(), render(KIND_OVERLAY)] {
        let route = find(&objs, "InterceptorRoute", "dbaas-api");
        let so = find(&objs, "ScaledObject", "dbaas-api");
        let svc = find(&objs, "Service", "dbaas-api");
        let deploy = find(&objs, "Deployment", "dbaas-api");
        assert_eq!(route["apiVersion"], "http.keda.sh/v1beta1");
        assert_eq!(route["spec"]["target"]["service"], "dbaas-api");
        assert_eq!(
            route["spec"]["target"]["port"],
            svc["spec"]["ports"][0]["port"]
        );
        assert_eq!(
            svc["spec"]["ports"][0]["targetPort"],
            deploy["spec"]["template"]["spec"]["containers"][0]["ports"][0]["name"]
        );
        assert_eq!(so["spec"]["minReplicaCount"], 0);
        assert_eq!(so["spec"]["scaleTargetRef"]["name"], "dbaas-api");
        let t = &so["spec"]["triggers"][0];
        assert_eq!(t["type"], "external-push");
        assert_eq!(t["metadata"]["interceptorRoute"], route["metadata"]["name"]);
        assert_eq!(
            t["metadata"]["scalerAddress"],
            "keda-add-ons-http-external-scaler.keda:9090"
        );
        // The readiness timeout leaves room for a cold start.
        let readiness = s(&route["spec"]["timeouts"]["readiness"], "readiness");
        assert!(
            readiness
                .trim_end_matches('s')
                .parse::<u32>()
                .expect("seconds")
                >= 10,
            "{readiness}"
        );
        // Ingress -> ExternalName Service -> the interceptor proxy, with
        // the Ingress host among the route's hosts.
        let ing = find(&objs, "Ingress", "dbaas-api");
        let rule = &ing["spec"]["rules"][0];
        let backend = &rule["http"]["paths"][0]["backend"]["service"];
        let proxy = find(&objs, "Service", s(&backend["name"], "backend"));
        assert_eq!(proxy["spec"]["type"], "ExternalName");
        assert_eq!(
            proxy["spec"]["externalName"],
            "keda-add-ons-http-interceptor-proxy.keda.svc.cluster.local"
        );
        assert_eq!(backend["port"]["number"], 8080);
        let hosts = route["spec"]["rules"][0]["hosts"]
            .as_array()
            .expect("hosts");
        assert!(
            hosts.contains(&rule["host"]),
            "Ingress host {} not among the route's hosts {hosts:?}",
            rule["host"]
        );
    }
}

#[test]
fn kind_overlay_wires_backing_services_and_monitoring() {
    let objs = render(KIND_OVERLAY);
    let cfg = config(&objs);
    for (what, t) in pod_templates(&objs) {
        for c in t["spec"]["containers"].as_array().expect("containers") {
            let image = s(&c["image"], "image");
            if image.starts_with("dbaas") {
                assert_eq!(image, "dbaas:dev", "{what}: the image `just deploy` loads");
            }
        }
    }
    assert_eq!(
        find(&objs, "Deployment", "mongodb")["spec"]["template"]["spec"]["containers"][0]["image"],
        "mongo:7"
    );
    assert_eq!(
        find(&objs, "Deployment", "redis")["spec"]["template"]["spec"]["containers"][0]["image"],
        "redis:7"
    );
    // The ConfigMap's addresses name Services of the overlay.
    let services: BTreeSet<String> = objs
        .iter()
        .filter(|o| o["kind"] == "Service")
        .map(|o| {
            format!(
                "{}.{}.svc.cluster.local",
                s(&o["metadata"]["name"], "name"),
                s(&o["metadata"]["namespace"], "ns")
            )
        })
        .collect();
    let host_of = |url: &str| {
        url.split("://")
            .last()
            .unwrap_or(url)
            .rsplit('@')
            .next()
            .unwrap_or(url)
            .split([':', '/'])
            .next()
            .unwrap_or(url)
            .to_string()
    };
    for key in ["REDIS_ADDRESS", "PUSHGATEWAY_URL"] {
        assert!(
            services.contains(&host_of(&cfg[key])),
            "{key}={} names no Service of the overlay",
            cfg[key]
        );
    }
    // Prometheus: the Pushgateway with honor_labels, and the API pods.
    let prom_cm = objs
        .iter()
        .find(|o| {
            o["kind"] == "ConfigMap"
                && s(&o["metadata"]["name"], "name").starts_with("prometheus-config")
        })
        .expect("the Prometheus ConfigMap");
    let prom = dbaas_deploy_tests::parse_yaml_stream(s(
        &prom_cm["data"]["prometheus.yml"],
        "prometheus.yml",
    ));
    let jobs = prom[0]["scrape_configs"]
        .as_array()
        .expect("scrape_configs");
    let pgw = jobs
        .iter()
        .find(|j| j["job_name"] == "pushgateway")
        .expect("a pushgateway job");
    assert_eq!(pgw["honor_labels"], true);
    assert_eq!(
        host_of(s(&pgw["static_configs"][0]["targets"][0], "target")),
        host_of(&cfg["PUSHGATEWAY_URL"])
    );
    let api = jobs
        .iter()
        .find(|j| j["job_name"] == "dbaas-api")
        .expect("a job for the API pods");
    assert_eq!(api["kubernetes_sd_configs"][0]["role"], "pod");
    let annotations =
        &find(&objs, "Deployment", "dbaas-api")["spec"]["template"]["metadata"]["annotations"];
    assert_eq!(annotations["prometheus.io/scrape"], "true");
    // Grafana gets the dashboards exactly as committed.
    let dash_cm = objs
        .iter()
        .find(|o| {
            o["kind"] == "ConfigMap"
                && s(&o["metadata"]["name"], "name").starts_with("grafana-dashboards")
        })
        .expect("the dashboards ConfigMap");
    let dir = repo_root().join("k8s/overlays/kind/dashboards");
    let mut files = 0;
    for entry in std::fs::read_dir(&dir).expect("the dashboards directory") {
        let path = entry.expect("an entry").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .expect("a name")
            .to_string();
        assert_eq!(
            dash_cm["data"][&name].as_str(),
            Some(std::fs::read_to_string(&path).expect("read").as_str()),
            "{name}"
        );
        files += 1;
    }
    assert_eq!(files, 2);
    // The dev redis-url and REDIS_ADDRESS name the same server.
    let secret = find(&objs, "Secret", "dbaas-secrets");
    let url = String::from_utf8(base64_decode(s(&secret["data"]["redis-url"], "redis-url")))
        .expect("utf-8");
    assert_eq!(host_of(&url), host_of(&cfg["REDIS_ADDRESS"]));
}

#[test]
fn dockerfile_builds_every_role_static_and_unprivileged() {
    let root = repo_root();
    let dockerfile = std::fs::read_to_string(root.join("Dockerfile"))
        .expect("a Dockerfile at the repository root");
    for bin in BINARIES {
        assert!(
            dockerfile.contains(&format!("-p {bin}")),
            "the Dockerfile builds {bin}"
        );
        assert!(root.join("functions").join(bin).is_dir());
    }
    assert!(
        dockerfile.contains("x86_64-unknown-linux-musl"),
        "static (musl) binaries"
    );
    assert!(dockerfile.contains("USER 65532:65532"));
    assert!(dockerfile.contains("--locked"));
    let ignore = std::fs::read_to_string(root.join(".dockerignore")).expect("a .dockerignore");
    assert!(
        ignore.lines().any(|l| l.trim() == "target"),
        ".dockerignore keeps target/ out of the context"
    );
}
