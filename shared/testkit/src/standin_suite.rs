//! Behaviour checks for the stand-in, run against every [`Cluster`]
//! adapter (the embedded cluster, and a real API server in the rig).
//!
//! Each check panics on failure and works in a namespace of its own (see
//! [`namespace`]), driving a [`Standin`] that watches only that namespace,
//! with zero delays and explicit [`Standin::step`] calls.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use chrono::Utc;
use serde_json::{Value, json};

use dbaas_cluster::{Cluster, Kind};
use dbaas_core::catalog::VersionName;
use dbaas_core::domain::{Size, random_token};
use dbaas_core::drift::Change;
use dbaas_core::engine::Engine;
use dbaas_core::kubedb::{
    DATABASE_ID_LABEL, DatabaseManifest, DatabasePhase, DeletionPolicy, KUBEDB_FINALIZER,
    ObservedDatabase, ObservedOpsRequest, OpsPhase, database_object, database_patch,
    ops_request_object,
};
use dbaas_standin::{FAIL_ANNOTATION, Standin, StandinConfig};

/// Creates a fresh namespace named `<prefix>-<random>` and returns its name.
pub async fn namespace(cluster: &dyn Cluster, prefix: &str) -> String {
    let ns = format!("{prefix}-{}", random_token(6));
    cluster
        .ensure_namespace(&ns)
        .await
        .expect("create namespace");
    ns
}

/// A stand-in with no delays that watches only `ns`.
pub fn standin(cluster: &Arc<dyn Cluster>, ns: &str) -> Standin {
    standin_with(cluster, ns, |_| {})
}

/// A stand-in for `ns` with zero delays, then changed by `tweak`.
pub fn standin_with(
    cluster: &Arc<dyn Cluster>,
    ns: &str,
    tweak: impl FnOnce(&mut StandinConfig),
) -> Standin {
    let mut config = StandinConfig {
        provision_delay: Duration::ZERO,
        phase_delay: Duration::ZERO,
        failure_ratio: 0.0,
        namespaces: vec![ns.to_string()],
        seed: 7,
    };
    tweak(&mut config);
    Standin::new(cluster.clone(), config)
}

/// The manifest of a test database: micro, 1 replica (3 where `replicas`
/// says so), 10 GiB.
pub fn manifest(
    engine: Engine,
    ns: &str,
    name: &str,
    replicas: u32,
    policy: DeletionPolicy,
) -> DatabaseManifest {
    DatabaseManifest {
        engine,
        name: name.to_string(),
        namespace: ns.to_string(),
        version: engine.spec().default_version.to_string(),
        size: Size::Micro,
        replicas,
        storage_gb: 10,
        database_id: format!("db-{name}"),
        tenant_id: "tn-conformance".to_string(),
        deletion_policy: policy,
    }
}

async fn step(s: &Standin) {
    let report = s.step(Utc::now()).await.expect("step");
    assert!(
        report.errors.is_empty(),
        "stand-in errors: {:?}",
        report.errors
    );
}

async fn get(cluster: &dyn Cluster, kind: &Kind, ns: &str, name: &str) -> Value {
    cluster
        .get(kind, ns, name)
        .await
        .expect("get")
        .unwrap_or_else(|| panic!("{} {ns}/{name} is missing", kind.kind))
}

async fn db(cluster: &dyn Cluster, engine: Engine, ns: &str, name: &str) -> ObservedDatabase {
    ObservedDatabase::from_value(&get(cluster, &Kind::database(engine), ns, name).await)
        .expect("readable database")
}

async fn op(cluster: &dyn Cluster, engine: Engine, ns: &str, name: &str) -> ObservedOpsRequest {
    ObservedOpsRequest::from_value(&get(cluster, &Kind::ops_request(engine), ns, name).await)
        .expect("readable request")
}

/// Creates a database and steps the stand-in until it is Ready.
pub async fn ready_database(
    cluster: &Arc<dyn Cluster>,
    s: &Standin,
    engine: Engine,
    ns: &str,
    name: &str,
    policy: DeletionPolicy,
) {
    let replicas = if engine == Engine::Redis { 1 } else { 3 };
    cluster
        .create(
            &Kind::database(engine),
            ns,
            &database_object(&manifest(engine, ns, name, replicas, policy)),
        )
        .await
        .expect("create database");
    step(s).await;
    step(s).await;
    assert_eq!(
        db(cluster.as_ref(), engine, ns, name).await.phase,
        Some(DatabasePhase::Ready)
    );
}

async fn create_op(
    cluster: &dyn Cluster,
    engine: Engine,
    ns: &str,
    name: &str,
    db_name: &str,
    change: Change,
) {
    let body = ops_request_object(
        engine,
        name,
        ns,
        db_name,
        &change,
        &[(DATABASE_ID_LABEL, "db-x")],
    );
    cluster
        .create(&Kind::ops_request(engine), ns, &body)
        .await
        .expect("create OpsRequest");
}

/// A new database goes Provisioning (with KubeDB's finalizer), then Ready
/// with its observed generation and a basic-auth Secret.
pub async fn provisioning(cluster: Arc<dyn Cluster>, ns: &str) {
    let s = standin(&cluster, ns);
    let c = cluster.as_ref();
    for engine in Engine::ALL {
        let name = format!("prov-{}", engine.as_str());
        let kind = Kind::database(engine);
        let body = database_object(&manifest(engine, ns, &name, 1, DeletionPolicy::WipeOut));
        c.create(&kind, ns, &body).await.expect("create database");
        assert_eq!(db(c, engine, ns, &name).await.phase, None);
    }
    step(&s).await;
    for engine in Engine::ALL {
        let name = format!("prov-{}", engine.as_str());
        let obj = get(c, &Kind::database(engine), ns, &name).await;
        assert_eq!(obj["status"]["phase"], "Provisioning", "{name}");
        assert_eq!(obj["metadata"]["finalizers"], json!([KUBEDB_FINALIZER]));
        assert!(
            c.get(&Kind::secret(), ns, &format!("{name}-auth"))
                .await
                .unwrap()
                .is_none()
        );
    }
    step(&s).await;
    for engine in Engine::ALL {
        let name = format!("prov-{}", engine.as_str());
        let obj = get(c, &Kind::database(engine), ns, &name).await;
        assert_eq!(obj["status"]["phase"], "Ready", "{name}");
        assert_eq!(
            obj["status"]["observedGeneration"],
            obj["metadata"]["generation"]
        );
        assert_eq!(obj["spec"]["authSecret"]["name"], format!("{name}-auth"));
        let types: Vec<&str> = obj["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|c| c["type"].as_str())
            .collect();
        for t in [
            "ProvisioningStarted",
            "ReplicaReady",
            "AcceptingConnection",
            "Ready",
            "Provisioned",
        ] {
            assert!(types.contains(&t), "{name} lacks condition {t}: {types:?}");
        }
        let secret = get(c, &Kind::secret(), ns, &format!("{name}-auth")).await;
        assert_eq!(secret["type"], "kubernetes.io/basic-auth");
        let password = B64
            .decode(secret["data"]["password"].as_str().unwrap())
            .unwrap();
        assert!(password.len() >= 16);
        assert!(!secret["data"]["username"].as_str().unwrap().is_empty());
        // The primary and headless Services, on the engine's port; no
        // standby with one replica.
        for service in [name.clone(), format!("{name}-pods")] {
            let svc = get(c, &Kind::service(), ns, &service).await;
            assert_eq!(svc["spec"]["ports"][0]["port"], engine.spec().port);
        }
        let standby = c
            .get(&Kind::service(), ns, &format!("{name}-standby"))
            .await;
        assert!(standby.unwrap().is_none(), "{name} has no standby");
    }
    // Nothing left to do: a pass changes nothing.
    let report = s.step(Utc::now()).await.unwrap();
    assert!(report.transitions.is_empty(), "{:?}", report.transitions);
}

/// Pending → Progressing → Successful for every change type, and the
/// database spec takes the new value only at the end.
pub async fn ops_lifecycle(cluster: Arc<dyn Cluster>, ns: &str) {
    let s = standin(&cluster, ns);
    let c = cluster.as_ref();
    let cases = [
        (Engine::Postgres, Change::Size(Size::Large)),
        (Engine::Mongodb, Change::Replicas(5)),
        (Engine::Mysql, Change::Replicas(5)),
        (Engine::Mariadb, Change::StorageGb(30)),
        (Engine::Redis, Change::Size(Size::Small)),
        (Engine::Postgres, Change::AuthRotation(1)),
        (Engine::Mongodb, Change::Version(version("8.0.4"))),
        (Engine::Mysql, Change::Restart(1)),
    ];
    dbaas_standin::catalog::install(c)
        .await
        .expect("install the catalog");
    for (i, (engine, change)) in cases.into_iter().enumerate() {
        let db_name = format!("life-{i}-{}", engine.as_str());
        ready_database(&cluster, &s, engine, ns, &db_name, DeletionPolicy::WipeOut).await;
        if let Change::Version(_) = change {
            // Created at an older version than the target.
            let older = json!({"spec": {"version": "7.0.16"}});
            c.merge_patch(&Kind::database(engine), ns, &db_name, &older)
                .await
                .unwrap();
            step(&s).await;
        }
        let before = db(c, engine, ns, &db_name).await;
        let secret = format!("{db_name}-auth");
        let password_before =
            get(c, &Kind::secret(), ns, &secret).await["data"]["password"].clone();
        let op_name = format!("{db_name}-op");
        create_op(c, engine, ns, &op_name, &db_name, change).await;

        step(&s).await;
        let o = op(c, engine, ns, &op_name).await;
        assert_eq!(o.phase, Some(OpsPhase::Pending));
        step(&s).await;
        assert_eq!(
            op(c, engine, ns, &op_name).await.phase,
            Some(OpsPhase::Progressing)
        );
        let during = db(c, engine, ns, &db_name).await;
        assert_eq!(
            (during.size, during.replicas, during.storage_gb),
            (before.size, before.replicas, before.storage_gb),
            "the spec keeps the old value while the request runs"
        );
        assert_eq!(during.phase, Some(DatabasePhase::Ready));

        step(&s).await;
        let done = get(c, &Kind::ops_request(engine), ns, &op_name).await;
        assert_eq!(done["status"]["phase"], "Successful");
        let last = done["status"]["conditions"]
            .as_array()
            .unwrap()
            .last()
            .unwrap()
            .clone();
        assert_eq!(last["type"], "Successful");
        assert_eq!(last["status"], "True");
        assert!(last["lastTransitionTime"].is_string() && last["observedGeneration"].is_u64());
        let after = db(c, engine, ns, &db_name).await;
        match change {
            Change::Size(size) => assert_eq!(after.size, Some(size)),
            Change::Replicas(n) => assert_eq!(after.replicas, Some(n)),
            Change::StorageGb(gb) => assert_eq!(after.storage_gb, Some(gb)),
            Change::Version(v) => assert_eq!(after.version.as_deref(), Some(v.as_str())),
            Change::AuthRotation(_)
            | Change::Restart(_)
            | Change::Paused(_)
            | Change::DeletionPolicy(_) => {}
        }
        let password = get(c, &Kind::secret(), ns, &secret).await["data"]["password"].clone();
        if let Change::AuthRotation(_) = change {
            assert_ne!(password, password_before, "RotateAuth made a new password");
            assert_eq!(after.generation, before.generation, "the spec is untouched");
            continue;
        }
        assert_eq!(
            password, password_before,
            "only RotateAuth changes the password"
        );
        if let Change::Restart(_) = change {
            assert_eq!(after.generation, before.generation, "the spec is untouched");
            assert_eq!(after.phase, Some(DatabasePhase::Ready));
            continue;
        }
        let standby = c
            .get(&Kind::service(), ns, &format!("{db_name}-standby"))
            .await;
        assert_eq!(
            standby.unwrap().is_some(),
            after.replicas > Some(1),
            "{db_name}: a standby Service exactly with replicas"
        );
        assert!(after.generation > before.generation);
        step(&s).await;
        let observed = db(c, engine, ns, &db_name).await;
        assert_eq!(observed.observed_generation, Some(observed.generation));
    }
}

fn version(name: &str) -> VersionName {
    VersionName::new(name).expect("a short name")
}

/// With `apply: IfReady` a request waits in Pending while the database is
/// not Ready; `apply: Always` does not wait.
pub async fn waits_for_ready(cluster: Arc<dyn Cluster>, ns: &str) {
    let c = cluster.as_ref();
    let slow = standin_with(&cluster, ns, |cfg| {
        cfg.provision_delay = Duration::from_secs(3600)
    });
    let engine = Engine::Postgres;
    let body = database_object(&manifest(engine, ns, "slow", 1, DeletionPolicy::WipeOut));
    c.create(&Kind::database(engine), ns, &body).await.unwrap();
    create_op(
        c,
        engine,
        ns,
        "slow-vertical",
        "slow",
        Change::Size(Size::Medium),
    )
    .await;
    let mut always = ops_request_object(
        engine,
        "slow-always",
        ns,
        "slow",
        &Change::StorageGb(20),
        &[],
    );
    always["spec"]["apply"] = json!("Always");
    c.create(&Kind::ops_request(engine), ns, &always)
        .await
        .unwrap();
    for _ in 0..3 {
        step(&slow).await;
    }
    assert_eq!(
        db(c, engine, ns, "slow").await.phase,
        Some(DatabasePhase::Provisioning)
    );
    assert_eq!(
        op(c, engine, ns, "slow-vertical").await.phase,
        Some(OpsPhase::Pending)
    );
    assert_eq!(
        op(c, engine, ns, "slow-always").await.phase,
        Some(OpsPhase::Successful)
    );
    assert_eq!(db(c, engine, ns, "slow").await.storage_gb, Some(20));

    // Databases are visited before requests, so the request starts in the
    // pass that makes the database Ready.
    let fast = standin(&cluster, ns);
    step(&fast).await;
    assert_eq!(
        db(c, engine, ns, "slow").await.phase,
        Some(DatabasePhase::Ready)
    );
    assert_eq!(
        op(c, engine, ns, "slow-vertical").await.phase,
        Some(OpsPhase::Progressing)
    );
}

/// An un-started request is Skipped when a newer one of the same type for
/// the same database exists; a started one, or one of another type, is not.
/// Requests for one database run one at a time.
pub async fn skipped_and_serialized(cluster: Arc<dyn Cluster>, ns: &str) {
    let s = standin(&cluster, ns);
    let c = cluster.as_ref();
    let engine = Engine::Mongodb;
    ready_database(&cluster, &s, engine, ns, "skip", DeletionPolicy::WipeOut).await;
    // Names order requests created within the same second.
    create_op(c, engine, ns, "skip-1", "skip", Change::Replicas(4)).await;
    create_op(c, engine, ns, "skip-2", "skip", Change::Replicas(5)).await;
    create_op(c, engine, ns, "skip-3", "skip", Change::StorageGb(20)).await;
    step(&s).await;
    for name in ["skip-1", "skip-2", "skip-3"] {
        assert_eq!(
            op(c, engine, ns, name).await.phase,
            Some(OpsPhase::Pending),
            "{name}"
        );
    }
    step(&s).await;
    let first = op(c, engine, ns, "skip-1").await;
    assert_eq!(first.phase, Some(OpsPhase::Skipped));
    assert_eq!(first.reason.as_deref(), Some("NewerOpsRequestExists"));
    assert_eq!(
        op(c, engine, ns, "skip-2").await.phase,
        Some(OpsPhase::Progressing)
    );
    assert_eq!(
        op(c, engine, ns, "skip-3").await.phase,
        Some(OpsPhase::Pending),
        "one request at a time"
    );

    // A newer request does not skip one already in progress.
    create_op(c, engine, ns, "skip-4", "skip", Change::Replicas(6)).await;
    step(&s).await;
    assert_eq!(
        op(c, engine, ns, "skip-2").await.phase,
        Some(OpsPhase::Successful)
    );
    assert_eq!(
        op(c, engine, ns, "skip-4").await.phase,
        Some(OpsPhase::Pending)
    );
    assert_eq!(db(c, engine, ns, "skip").await.replicas, Some(5));
    for _ in 0..6 {
        step(&s).await;
    }
    assert_eq!(
        op(c, engine, ns, "skip-3").await.phase,
        Some(OpsPhase::Successful)
    );
    assert_eq!(
        op(c, engine, ns, "skip-4").await.phase,
        Some(OpsPhase::Successful)
    );
    let d = db(c, engine, ns, "skip").await;
    assert_eq!((d.replicas, d.storage_gb), (Some(6), Some(20)));
}

/// A finished request skips nothing, even one whose name orders after a
/// new request created in the same second (a retried operation's earlier
/// attempts stay in the cluster, Failed).
pub async fn finished_requests_skip_nothing(cluster: Arc<dyn Cluster>, ns: &str) {
    let s = standin(&cluster, ns);
    let c = cluster.as_ref();
    let engine = Engine::Postgres;
    ready_database(&cluster, &s, engine, ns, "fin", DeletionPolicy::WipeOut).await;
    // Shrinking fails: "fin-z" ends Failed.
    create_op(c, engine, ns, "fin-z", "fin", Change::StorageGb(5)).await;
    for _ in 0..3 {
        step(&s).await;
    }
    assert_eq!(
        op(c, engine, ns, "fin-z").await.phase,
        Some(OpsPhase::Failed)
    );
    create_op(c, engine, ns, "fin-a", "fin", Change::StorageGb(30)).await;
    for _ in 0..3 {
        step(&s).await;
    }
    assert_eq!(
        op(c, engine, ns, "fin-a").await.phase,
        Some(OpsPhase::Successful)
    );
}

/// Shrinking storage, invalid replica counts, a missing database, the
/// failure annotation and the random failure ratio all end in Failed, with
/// the database spec untouched.
pub async fn failures(cluster: Arc<dyn Cluster>, ns: &str) {
    let s = standin(&cluster, ns);
    let c = cluster.as_ref();
    ready_database(
        &cluster,
        &s,
        Engine::Postgres,
        ns,
        "fpg",
        DeletionPolicy::WipeOut,
    )
    .await;
    ready_database(
        &cluster,
        &s,
        Engine::Redis,
        ns,
        "fredis",
        DeletionPolicy::WipeOut,
    )
    .await;
    ready_database(
        &cluster,
        &s,
        Engine::Mysql,
        ns,
        "fmysql",
        DeletionPolicy::WipeOut,
    )
    .await;
    ready_database(
        &cluster,
        &s,
        Engine::Mariadb,
        ns,
        "fmaria",
        DeletionPolicy::WipeOut,
    )
    .await;
    dbaas_standin::catalog::install(c)
        .await
        .expect("install the catalog");
    create_op(
        c,
        Engine::Postgres,
        ns,
        "shrink",
        "fpg",
        Change::StorageGb(5),
    )
    .await;
    create_op(
        c,
        Engine::Redis,
        ns,
        "redis-3",
        "fredis",
        Change::Replicas(3),
    )
    .await;
    create_op(
        c,
        Engine::Mysql,
        ns,
        "mysql-2",
        "fmysql",
        Change::Replicas(2),
    )
    .await;
    create_op(
        c,
        Engine::Mysql,
        ns,
        "mysql-1",
        "fmysql",
        Change::Size(Size::Small),
    )
    .await;
    create_op(
        c,
        Engine::Mariadb,
        ns,
        "orphan",
        "no-such-db",
        Change::Replicas(3),
    )
    .await;
    create_op(
        c,
        Engine::Mariadb,
        ns,
        "maria-old",
        "fmaria",
        Change::Version(version("10.6.16")),
    )
    .await;
    step(&s).await;
    step(&s).await;
    for (engine, name, reason) in [
        (Engine::Mariadb, "maria-old", "InvalidTargetVersion"),
        (Engine::Postgres, "shrink", "VolumeShrinkNotAllowed"),
        (Engine::Redis, "redis-3", "InvalidReplicas"),
        (Engine::Mysql, "mysql-2", "InvalidReplicas"),
        (Engine::Mariadb, "orphan", "DatabaseNotFound"),
    ] {
        let o = op(c, engine, ns, name).await;
        assert_eq!(o.phase, Some(OpsPhase::Failed), "{name}");
        assert_eq!(o.reason.as_deref(), Some(reason), "{name}");
        assert!(o.message.is_some_and(|m| !m.is_empty()));
    }
    assert_eq!(
        db(c, Engine::Postgres, ns, "fpg").await.storage_gb,
        Some(10)
    );
    assert_eq!(db(c, Engine::Redis, ns, "fredis").await.replicas, Some(1));
    // The invalid request did not hold up the valid one.
    assert_eq!(
        op(c, Engine::Mysql, ns, "mysql-1").await.phase,
        Some(OpsPhase::Progressing)
    );
    step(&s).await;
    assert_eq!(
        op(c, Engine::Mysql, ns, "mysql-1").await.phase,
        Some(OpsPhase::Successful)
    );

    // Forced by annotation: every request for that database fails.
    let annotate = json!({"metadata": {"annotations": {FAIL_ANNOTATION: "true"}}});
    c.merge_patch(&Kind::database(Engine::Postgres), ns, "fpg", &annotate)
        .await
        .unwrap();
    create_op(
        c,
        Engine::Postgres,
        ns,
        "forced-v",
        "fpg",
        Change::Size(Size::Xlarge),
    )
    .await;
    for _ in 0..3 {
        step(&s).await;
    }
    let o = op(c, Engine::Postgres, ns, "forced-v").await;
    assert_eq!(
        (o.phase, o.reason.as_deref()),
        (Some(OpsPhase::Failed), Some("ForcedFailure"))
    );
    assert_eq!(
        db(c, Engine::Postgres, ns, "fpg").await.size,
        Some(Size::Micro)
    );

    // Failure ratio 1: everything fails; the verdict is the seed's, not luck's.
    let doomed = standin_with(&cluster, ns, |cfg| cfg.failure_ratio = 1.0);
    create_op(
        c,
        Engine::Redis,
        ns,
        "random-v",
        "fredis",
        Change::Size(Size::Large),
    )
    .await;
    for _ in 0..3 {
        step(&doomed).await;
    }
    let o = op(c, Engine::Redis, ns, "random-v").await;
    assert_eq!(
        (o.phase, o.reason.as_deref()),
        (Some(OpsPhase::Failed), Some("InjectedFailure"))
    );
    assert_eq!(
        db(c, Engine::Redis, ns, "fredis").await.size,
        Some(Size::Micro)
    );
}

/// Deletion follows `spec.deletionPolicy`: WipeOut removes the Secret,
/// Delete and Halt keep it, DoNotTerminate blocks the deletion until the
/// policy changes.
pub async fn deletion_policies(cluster: Arc<dyn Cluster>, ns: &str) {
    let s = standin(&cluster, ns);
    let c = cluster.as_ref();
    let engine = Engine::Mariadb;
    let kind = Kind::database(engine);
    let cases = [
        ("del-wipeout", DeletionPolicy::WipeOut, false),
        ("del-delete", DeletionPolicy::Delete, true),
        ("del-halt", DeletionPolicy::Halt, true),
    ];
    for (name, policy, _) in cases {
        ready_database(&cluster, &s, engine, ns, name, policy).await;
    }
    ready_database(
        &cluster,
        &s,
        engine,
        ns,
        "del-dnt",
        DeletionPolicy::DoNotTerminate,
    )
    .await;
    for name in ["del-wipeout", "del-delete", "del-halt", "del-dnt"] {
        assert!(c.delete(&kind, ns, name).await.unwrap());
        let obj = get(c, &kind, ns, name).await;
        assert!(
            obj["metadata"]["deletionTimestamp"].is_string(),
            "the finalizer holds {name}"
        );
    }
    step(&s).await;
    for (name, _, keeps_secret) in cases {
        assert!(
            c.get(&kind, ns, name).await.unwrap().is_none(),
            "{name} is gone"
        );
        let secret = c
            .get(&Kind::secret(), ns, &format!("{name}-auth"))
            .await
            .unwrap();
        assert_eq!(secret.is_some(), keeps_secret, "{name}'s secret");
        for service in [name.to_string(), format!("{name}-pods")] {
            let svc = c.get(&Kind::service(), ns, &service).await.unwrap();
            assert!(svc.is_none(), "{service} went with the database");
        }
    }
    let blocked = get(c, &kind, ns, "del-dnt").await;
    let cond = blocked["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "DeletionBlocked")
        .cloned()
        .expect("DeletionBlocked condition");
    assert_eq!(cond["status"], "True");
    step(&s).await;
    assert!(
        c.get(&kind, ns, "del-dnt").await.unwrap().is_some(),
        "DoNotTerminate keeps the database"
    );

    c.merge_patch(
        &kind,
        ns,
        "del-dnt",
        &json!({"spec": {"deletionPolicy": "WipeOut"}}),
    )
    .await
    .unwrap();
    step(&s).await;
    assert!(c.get(&kind, ns, "del-dnt").await.unwrap().is_none());
    assert!(
        c.get(&Kind::secret(), ns, "del-dnt-auth")
            .await
            .unwrap()
            .is_none()
    );
}

/// The Services KubeDB makes for database `name` (primary, headless,
/// standby), each paired with whether it exists.
async fn services(cluster: &dyn Cluster, ns: &str, name: &str) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    for service in [
        name.to_string(),
        format!("{name}-pods"),
        format!("{name}-standby"),
    ] {
        let found = cluster
            .get(&Kind::service(), ns, &service)
            .await
            .expect("get Service")
            .is_some();
        out.push((service, found));
    }
    out
}

fn condition_status(obj: &Value, type_: &str) -> Option<String> {
    obj["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
        .and_then(|c| c["status"].as_str())
        .map(str::to_string)
}

async fn patch_database(
    cluster: &dyn Cluster,
    engine: Engine,
    ns: &str,
    name: &str,
    change: Change,
) {
    let patch = database_patch(&change).expect("a change of the CR itself");
    cluster
        .merge_patch(&Kind::database(engine), ns, name, &patch)
        .await
        .unwrap_or_else(|e| panic!("patch {name} with {patch}: {e}"));
}

/// `spec.halted: true` removes the Services, keeps the auth Secret, makes
/// the phase `Halted` and forces `deletionPolicy: Halt` (even against a
/// later edit); requests wait, `apply: Always` included. Back to `false`:
/// Provisioning (for the provisioning delay), then Ready with the Services
/// back, the same Secret, and the policy still `Halt`.
pub async fn halt_and_resume(cluster: Arc<dyn Cluster>, ns: &str) {
    let s = standin(&cluster, ns);
    let c = cluster.as_ref();
    let engine = Engine::Postgres;
    let kind = Kind::database(engine);
    ready_database(&cluster, &s, engine, ns, "pause", DeletionPolicy::WipeOut).await;
    assert!(
        services(c, ns, "pause")
            .await
            .iter()
            .all(|(_, found)| *found),
        "three replicas: primary, headless and standby Services"
    );
    let secret = get(c, &Kind::secret(), ns, "pause-auth").await;

    patch_database(c, engine, ns, "pause", Change::Paused(true)).await;
    step(&s).await;
    let obj = get(c, &kind, ns, "pause").await;
    assert_eq!(obj["status"]["phase"], "Halted");
    assert_eq!(obj["spec"]["halted"], true);
    assert_eq!(obj["spec"]["deletionPolicy"], "Halt", "forced while halted");
    assert_eq!(condition_status(&obj, "Halted").as_deref(), Some("True"));
    assert_eq!(condition_status(&obj, "Ready").as_deref(), Some("False"));
    assert_eq!(
        obj["status"]["observedGeneration"],
        obj["metadata"]["generation"]
    );
    for (service, found) in services(c, ns, "pause").await {
        assert!(!found, "{service} is gone while halted");
    }
    let kept = get(c, &Kind::secret(), ns, "pause-auth").await;
    assert_eq!(kept["data"], secret["data"], "the auth Secret is kept");
    let seen = db(c, engine, ns, "pause").await;
    assert!(seen.halted && !seen.is_ready());

    // Requests do not start on a halted database, `apply: Always` or not.
    create_op(c, engine, ns, "pause-v", "pause", Change::Size(Size::Small)).await;
    let mut always = ops_request_object(engine, "pause-r", ns, "pause", &Change::Restart(1), &[]);
    always["spec"]["apply"] = json!("Always");
    c.create(&Kind::ops_request(engine), ns, &always)
        .await
        .expect("create OpsRequest");
    // KubeDB's webhook puts `Halt` back on any other policy while halted.
    patch_database(
        c,
        engine,
        ns,
        "pause",
        Change::DeletionPolicy(dbaas_core::domain::OnDelete::Delete),
    )
    .await;
    for _ in 0..4 {
        step(&s).await;
    }
    for name in ["pause-v", "pause-r"] {
        assert_eq!(
            op(c, engine, ns, name).await.phase,
            Some(OpsPhase::Pending),
            "{name} waits while halted"
        );
    }
    let obj = get(c, &kind, ns, "pause").await;
    assert_eq!(obj["spec"]["deletionPolicy"], "Halt", "forced back to Halt");
    assert_eq!(obj["status"]["phase"], "Halted");
    let report = s.step(Utc::now()).await.expect("step");
    assert!(
        report.transitions.is_empty(),
        "a halted database is left alone: {:?}",
        report.transitions
    );

    // Resume: Provisioning for the provisioning delay, no Services yet.
    patch_database(c, engine, ns, "pause", Change::Paused(false)).await;
    let slow = standin_with(&cluster, ns, |cfg| {
        cfg.provision_delay = Duration::from_secs(3600)
    });
    for _ in 0..3 {
        step(&slow).await;
    }
    let obj = get(c, &kind, ns, "pause").await;
    assert_eq!(obj["status"]["phase"], "Provisioning");
    assert_eq!(obj["spec"]["halted"], false);
    assert_eq!(
        condition_status(&obj, "Halted"),
        None,
        "the Halted condition goes"
    );
    for (service, found) in services(c, ns, "pause").await {
        assert!(!found, "{service} waits for the provisioning");
    }
    assert_eq!(
        op(c, engine, ns, "pause-v").await.phase,
        Some(OpsPhase::Pending),
        "apply: IfReady waits for Ready"
    );

    step(&s).await;
    let obj = get(c, &kind, ns, "pause").await;
    assert_eq!(obj["status"]["phase"], "Ready");
    assert_eq!(
        obj["status"]["observedGeneration"],
        obj["metadata"]["generation"]
    );
    assert_eq!(
        obj["spec"]["deletionPolicy"], "Halt",
        "KubeDB does not put the old policy back"
    );
    assert_eq!(condition_status(&obj, "Ready").as_deref(), Some("True"));
    for (service, found) in services(c, ns, "pause").await {
        assert!(found, "{service} is back");
    }
    let kept = get(c, &Kind::secret(), ns, "pause-auth").await;
    assert_eq!(kept["data"], secret["data"], "the same credentials");
    for _ in 0..6 {
        step(&s).await;
    }
    for name in ["pause-v", "pause-r"] {
        assert_eq!(
            op(c, engine, ns, name).await.phase,
            Some(OpsPhase::Successful),
            "{name} ran after the resume"
        );
    }
    assert_eq!(db(c, engine, ns, "pause").await.size, Some(Size::Small));

    // The control plane puts the user's policy back with a patch of its own.
    patch_database(
        c,
        engine,
        ns,
        "pause",
        Change::DeletionPolicy(dbaas_core::domain::OnDelete::Wipeout),
    )
    .await;
    step(&s).await;
    let obj = get(c, &kind, ns, "pause").await;
    assert_eq!(
        obj["spec"]["deletionPolicy"], "WipeOut",
        "kept once resumed"
    );
    assert_eq!(obj["status"]["phase"], "Ready");
}

/// KubeDB refuses to halt a `DoNotTerminate` database ("Can't halt, since
/// termination policy is 'DoNotTerminate'"), and refuses `DoNotTerminate`
/// on a halted one: the refused write does not stick and nothing else
/// changes.
pub async fn halt_refused_for_do_not_terminate(cluster: Arc<dyn Cluster>, ns: &str) {
    let s = standin(&cluster, ns);
    let c = cluster.as_ref();
    let engine = Engine::Mongodb;
    let kind = Kind::database(engine);
    ready_database(
        &cluster,
        &s,
        engine,
        ns,
        "keep",
        DeletionPolicy::DoNotTerminate,
    )
    .await;
    patch_database(c, engine, ns, "keep", Change::Paused(true)).await;
    for _ in 0..3 {
        step(&s).await;
    }
    let obj = get(c, &kind, ns, "keep").await;
    assert_eq!(obj["spec"]["halted"], false, "the halt is refused");
    assert_eq!(obj["spec"]["deletionPolicy"], "DoNotTerminate");
    assert_eq!(obj["status"]["phase"], "Ready");
    assert_eq!(condition_status(&obj, "Halted"), None);
    assert_eq!(
        obj["status"]["observedGeneration"],
        obj["metadata"]["generation"]
    );
    for (service, found) in services(c, ns, "keep").await {
        assert!(found, "{service} stays");
    }
    let report = s.step(Utc::now()).await.expect("step");
    assert!(report.transitions.is_empty(), "{:?}", report.transitions);

    // Halted first, then DoNotTerminate: the policy change is the refused one.
    ready_database(&cluster, &s, engine, ns, "kept", DeletionPolicy::Delete).await;
    patch_database(c, engine, ns, "kept", Change::Paused(true)).await;
    step(&s).await;
    assert_eq!(get(c, &kind, ns, "kept").await["status"]["phase"], "Halted");
    c.merge_patch(
        &kind,
        ns,
        "kept",
        &json!({"spec": {"deletionPolicy": "DoNotTerminate"}}),
    )
    .await
    .expect("patch the policy");
    step(&s).await;
    let obj = get(c, &kind, ns, "kept").await;
    assert_eq!(obj["spec"]["deletionPolicy"], "Halt");
    assert_eq!(obj["spec"]["halted"], true, "still halted");
    assert_eq!(obj["status"]["phase"], "Halted");
}

/// A Restart request goes Pending → Progressing → Successful with the
/// database Ready throughout and its spec, Secret and Services untouched;
/// so does one written without the control plane's restart count.
pub async fn restart_request(cluster: Arc<dyn Cluster>, ns: &str) {
    let s = standin(&cluster, ns);
    let c = cluster.as_ref();
    let engine = Engine::Mariadb;
    let kind = Kind::database(engine);
    ready_database(&cluster, &s, engine, ns, "bounce", DeletionPolicy::Delete).await;
    let before = get(c, &kind, ns, "bounce").await;
    let secret = get(c, &Kind::secret(), ns, "bounce-auth").await;
    create_op(c, engine, ns, "bounce-1", "bounce", Change::Restart(1)).await;
    let seen = op(c, engine, ns, "bounce-1").await;
    assert_eq!(
        (seen.ops_type.as_str(), seen.change),
        ("Restart", Some(Change::Restart(1)))
    );
    for phase in [
        OpsPhase::Pending,
        OpsPhase::Progressing,
        OpsPhase::Successful,
    ] {
        step(&s).await;
        assert_eq!(op(c, engine, ns, "bounce-1").await.phase, Some(phase));
        let now = get(c, &kind, ns, "bounce").await;
        assert_eq!(now["status"]["phase"], "Ready");
        assert_eq!(now["spec"], before["spec"], "a restart changes no spec");
        assert_eq!(
            now["metadata"]["generation"],
            before["metadata"]["generation"]
        );
    }
    let last = get(c, &Kind::ops_request(engine), ns, "bounce-1").await["status"]["conditions"]
        .as_array()
        .and_then(|l| l.last().cloned())
        .expect("conditions");
    assert_eq!(
        (last["type"].clone(), last["status"].clone()),
        (json!("Successful"), json!("True"))
    );

    // A plain KubeDB Restart request, without the restart count annotation.
    let mut plain = ops_request_object(engine, "bounce-2", ns, "bounce", &Change::Restart(2), &[]);
    plain["metadata"]
        .as_object_mut()
        .expect("metadata")
        .remove("annotations");
    c.create(&Kind::ops_request(engine), ns, &plain)
        .await
        .expect("create OpsRequest");
    for _ in 0..3 {
        step(&s).await;
    }
    assert_eq!(
        op(c, engine, ns, "bounce-2").await.phase,
        Some(OpsPhase::Successful)
    );
    let after = get(c, &kind, ns, "bounce").await;
    assert_eq!(after["spec"], before["spec"]);
    assert_eq!(after["status"]["phase"], "Ready");
    let kept = get(c, &Kind::secret(), ns, "bounce-auth").await;
    assert_eq!(
        kept["data"], secret["data"],
        "a restart keeps the credentials"
    );
    for (service, found) in services(c, ns, "bounce").await {
        assert!(found, "{service} stays");
    }
}

/// A stand-in restarted half-way (a new instance) carries on from what the
/// objects say.
pub async fn stateless_restart(cluster: Arc<dyn Cluster>, ns: &str) {
    let c = cluster.as_ref();
    let engine = Engine::Postgres;
    let first = standin(&cluster, ns);
    ready_database(
        &cluster,
        &first,
        engine,
        ns,
        "restart",
        DeletionPolicy::WipeOut,
    )
    .await;
    create_op(c, engine, ns, "restart-h", "restart", Change::Replicas(2)).await;
    step(&first).await;
    step(&first).await;
    drop(first);
    let second = standin(&cluster, ns);
    step(&second).await;
    assert_eq!(
        op(c, engine, ns, "restart-h").await.phase,
        Some(OpsPhase::Successful)
    );
    assert_eq!(db(c, engine, ns, "restart").await.replicas, Some(2));

    // A long phase delay read back from the objects holds a new instance too.
    let patient = standin_with(&cluster, ns, |cfg| {
        cfg.phase_delay = Duration::from_secs(3600)
    });
    create_op(
        c,
        engine,
        ns,
        "restart-v",
        "restart",
        Change::Size(Size::Small),
    )
    .await;
    for _ in 0..3 {
        step(&patient).await;
    }
    assert_eq!(
        op(c, engine, ns, "restart-v").await.phase,
        Some(OpsPhase::Pending)
    );
}

/// The API-server behaviour the stand-in and the roles rely on, which the
/// embedded cluster must share with a real one: server-set metadata,
/// generation, the status subresource, preconditions, finalizers, leases.
pub async fn cluster_semantics(cluster: &dyn Cluster, ns: &str) {
    use dbaas_core::error::Error;
    let c = cluster;
    let kind = Kind::database(Engine::Postgres);
    let body = database_object(&manifest(
        Engine::Postgres,
        ns,
        "sem",
        1,
        DeletionPolicy::WipeOut,
    ));
    let a = c.create(&kind, ns, &body).await.expect("create");
    assert_eq!(a["metadata"]["generation"], 1);
    assert!(a["metadata"]["uid"].is_string() && a["metadata"]["creationTimestamp"].is_string());
    let rv0 = a["metadata"]["resourceVersion"].clone();
    assert!(rv0.is_string());
    assert!(matches!(
        c.create(&kind, ns, &body).await,
        Err(Error::AlreadyExists(_))
    ));

    let p = c
        .merge_patch(
            &kind,
            ns,
            "sem",
            &json!({"metadata": {"labels": {"x": "1"}}, "status": {"phase": "Ready"}}),
        )
        .await
        .expect("patch metadata");
    assert_eq!(p["metadata"]["labels"]["x"], "1");
    assert_eq!(p["metadata"]["generation"], 1);
    assert!(
        p["status"]["phase"].is_null(),
        "status goes through the subresource only"
    );
    assert_ne!(p["metadata"]["resourceVersion"], rv0);

    let p = c
        .merge_patch(&kind, ns, "sem", &json!({"spec": {"replicas": 3}}))
        .await
        .expect("patch spec");
    assert_eq!(p["metadata"]["generation"], 2);
    let s = c
        .merge_patch_status(
            &kind,
            ns,
            "sem",
            &json!({"status": {"phase": "Ready", "observedGeneration": 2}}),
        )
        .await
        .expect("patch status");
    assert_eq!(
        (
            s["status"]["phase"].clone(),
            s["metadata"]["generation"].clone()
        ),
        (json!("Ready"), json!(2))
    );
    assert_eq!(s["spec"]["replicas"], 3);

    let stale = json!({"metadata": {"resourceVersion": rv0}, "spec": {"replicas": 5}});
    assert!(matches!(
        c.merge_patch(&kind, ns, "sem", &stale).await,
        Err(Error::Conflict(_))
    ));
    assert!(matches!(
        c.merge_patch(&kind, ns, "nope", &json!({"spec": {}})).await,
        Err(Error::NotFound(_))
    ));
    assert!(c.get(&kind, ns, "nope").await.expect("get").is_none());
    assert_eq!(c.list(&kind, ns).await.expect("list").len(), 1);

    c.merge_patch(
        &kind,
        ns,
        "sem",
        &json!({"metadata": {"finalizers": [KUBEDB_FINALIZER]}}),
    )
    .await
    .expect("finalizer");
    assert!(c.delete(&kind, ns, "sem").await.expect("delete"));
    let held = get(c, &kind, ns, "sem").await;
    assert!(held["metadata"]["deletionTimestamp"].is_string());
    c.merge_patch(&kind, ns, "sem", &json!({"metadata": {"finalizers": null}}))
        .await
        .expect("release");
    assert!(c.get(&kind, ns, "sem").await.expect("get").is_none());
    assert!(!c.delete(&kind, ns, "sem").await.expect("delete missing"));

    let t0 = Utc::now();
    let secs = chrono::Duration::seconds;
    let lease = format!("lease-{}", random_token(4));
    assert!(c.try_acquire_lease(ns, &lease, "a", 10, t0).await.unwrap());
    assert!(
        c.try_acquire_lease(ns, &lease, "a", 10, t0 + secs(5))
            .await
            .unwrap(),
        "renewal"
    );
    assert!(
        !c.try_acquire_lease(ns, &lease, "b", 10, t0 + secs(14))
            .await
            .unwrap(),
        "renewed at +5"
    );
    assert!(
        c.try_acquire_lease(ns, &lease, "b", 10, t0 + secs(16))
            .await
            .unwrap(),
        "expired"
    );
    c.release_lease(ns, &lease, "a").await.unwrap();
    assert!(
        !c.try_acquire_lease(ns, &lease, "a", 10, t0 + secs(17))
            .await
            .unwrap(),
        "a no longer holds it"
    );
    c.release_lease(ns, &lease, "b").await.unwrap();
    assert!(
        c.try_acquire_lease(ns, &lease, "a", 10, t0 + secs(17))
            .await
            .unwrap(),
        "released"
    );
    assert!(c.api_calls() > 0);
}
