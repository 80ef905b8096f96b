//! The stand-in and the KubeDB builders against a real kube-apiserver with
//! the upstream KubeDB CRDs installed, under strict field validation.
//!
//! Needs the rig: run `just rig-up` and `source target/rig/env` (it exports
//! KUBECONFIG) first. Every test works in a namespace of its own.

use std::path::PathBuf;
use std::sync::Arc;

use dbaas_cluster::kube::KubeCluster;
use dbaas_cluster::{Cluster, Kind};
use dbaas_core::Error;
use dbaas_core::domain::Size;
use dbaas_core::drift::Change;
use dbaas_core::engine::Engine;
use dbaas_core::kubedb::{
    DATABASE_ID_LABEL, DeletionPolicy, ObservedDatabase, ObservedOpsRequest, database_object,
    ops_request_object,
};
use dbaas_testkit::standin_suite;
use futures::StreamExt;
use serde_json::json;

async fn kube() -> Arc<KubeCluster> {
    let path = std::env::var_os("KUBECONFIG")
        .map(PathBuf::from)
        .expect("KUBECONFIG is not set: run `just rig-up; source target/rig/env` first");
    Arc::new(
        KubeCluster::from_kubeconfig(Some(&path))
            .await
            .expect("connect to the rig's kube-apiserver"),
    )
}

async fn setup(prefix: &str) -> (Arc<dyn Cluster>, String) {
    let cluster: Arc<dyn Cluster> = kube().await;
    let ns = standin_suite::namespace(cluster.as_ref(), prefix).await;
    (cluster, ns)
}

/// Deletes the test namespace's contents that would otherwise pile up: the
/// rig has no namespace controller, so namespaces themselves stay.
async fn cleanup(c: &dyn Cluster, ns: &str) {
    for engine in Engine::ALL {
        for kind in [Kind::database(engine), Kind::ops_request(engine)] {
            for obj in c.list(&kind, ns).await.unwrap_or_default() {
                let name = obj["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                let _ = c
                    .merge_patch(&kind, ns, &name, &json!({"metadata": {"finalizers": null}}))
                    .await;
                let _ = c.delete(&kind, ns, &name).await;
            }
        }
    }
}

macro_rules! scenario {
    ($name:ident) => {
        #[tokio::test]
        async fn $name() {
            let (c, ns) = setup("standin").await;
            standin_suite::$name(c.clone(), &ns).await;
            cleanup(c.as_ref(), &ns).await;
        }
    };
}

scenario!(provisioning);
scenario!(ops_lifecycle);
scenario!(waits_for_ready);
scenario!(skipped_and_serialized);
scenario!(finished_requests_skip_nothing);
scenario!(failures);
scenario!(deletion_policies);
scenario!(stateless_restart);
scenario!(halt_and_resume);
scenario!(halt_refused_for_do_not_terminate);
scenario!(restart_request);

#[tokio::test]
async fn cluster_semantics() {
    let (c, ns) = setup("semantics").await;
    standin_suite::cluster_semantics(c.as_ref(), &ns).await;
}

/// Every database CR the builder makes, for every engine, with 1 and 3
/// replicas where the engine allows, passes strict validation and reads
/// back unchanged.
#[tokio::test]
async fn database_objects_pass_strict_validation() {
    let (c, ns) = setup("schema-db").await;
    for engine in Engine::ALL {
        for replicas in [1, 3]
            .into_iter()
            .filter(|n| engine.replicas_error(*n).is_none())
        {
            for (i, size) in [Size::Micro, Size::Xlarge2].into_iter().enumerate() {
                let name = format!("{}-{replicas}-{i}", engine.as_str());
                let mut m =
                    standin_suite::manifest(engine, &ns, &name, replicas, DeletionPolicy::Delete);
                m.size = size;
                let made = c
                    .create(&Kind::database(engine), &ns, &database_object(&m))
                    .await
                    .unwrap_or_else(|e| panic!("{name} rejected: {e}"));
                let seen = ObservedDatabase::from_value(&made).expect("readable");
                assert_eq!(
                    (
                        seen.engine,
                        seen.replicas,
                        seen.size,
                        seen.storage_gb,
                        seen.database_id.as_deref()
                    ),
                    (
                        engine,
                        Some(replicas),
                        Some(size),
                        Some(10),
                        Some(m.database_id.as_str())
                    ),
                    "{name}"
                );
                assert_eq!(seen.deletion_policy, Some(DeletionPolicy::Delete));
            }
        }
    }
    for policy in [
        DeletionPolicy::DoNotTerminate,
        DeletionPolicy::Halt,
        DeletionPolicy::WipeOut,
    ] {
        let name = format!("policy-{}", policy.as_str().to_lowercase());
        let m = standin_suite::manifest(Engine::Postgres, &ns, &name, 1, policy);
        c.create(&Kind::database(Engine::Postgres), &ns, &database_object(&m))
            .await
            .expect("policy accepted");
    }
    cleanup(c.as_ref(), &ns).await;
}

/// Every OpsRequest the builder makes, for every engine and change type,
/// passes strict validation and reads back unchanged.
#[tokio::test]
async fn ops_requests_pass_strict_validation() {
    let (c, ns) = setup("schema-ops").await;
    let mut changes: Vec<Change> = Size::ALL.into_iter().map(Change::Size).collect();
    changes.extend([
        Change::Replicas(1),
        Change::Replicas(3),
        Change::StorageGb(20),
        Change::AuthRotation(4),
        Change::Restart(2),
    ]);
    for engine in Engine::ALL {
        for (i, change) in changes.iter().enumerate() {
            let name = format!("{}-{i}", engine.as_str());
            let body = ops_request_object(
                engine,
                &name,
                &ns,
                "target",
                change,
                &[(DATABASE_ID_LABEL, "db-1")],
            );
            let made = c
                .create(&Kind::ops_request(engine), &ns, &body)
                .await
                .unwrap_or_else(|e| panic!("{name} ({change:?}) rejected: {e}"));
            let seen = ObservedOpsRequest::from_value(&made).expect("readable");
            assert_eq!(seen.change, Some(*change), "{name}");
            assert_eq!(seen.database_name, "target");
            assert_eq!(seen.database_id.as_deref(), Some("db-1"));
            assert!(seen.created_at.is_some());
        }
    }
    cleanup(c.as_ref(), &ns).await;
}

/// Unknown fields are errors, not silently pruned: on create, on patches
/// and on status patches.
#[tokio::test]
async fn unknown_fields_are_rejected() {
    let (c, ns) = setup("schema-strict").await;
    let engine = Engine::Mysql;
    let mut op = ops_request_object(engine, "bad", &ns, "db", &Change::Replicas(3), &[]);
    op["spec"]["horizontalScaling"]["replicas"] = json!(3); // MySQL calls it `member`
    let err = c
        .create(&Kind::ops_request(engine), &ns, &op)
        .await
        .expect_err("unknown field accepted");
    assert!(matches!(err, Error::Invalid(_)), "{err}");
    let mut op = ops_request_object(engine, "bad2", &ns, "db", &Change::Replicas(3), &[]);
    op["spec"]["bogus"] = json!(true);
    assert!(matches!(
        c.create(&Kind::ops_request(engine), &ns, &op).await,
        Err(Error::Invalid(_))
    ));

    let m = standin_suite::manifest(engine, &ns, "strict", 1, DeletionPolicy::WipeOut);
    let kind = Kind::database(engine);
    let mut db = database_object(&m);
    db["spec"]["sizeClass"] = json!("db.t3.micro");
    assert!(matches!(
        c.create(&kind, &ns, &db).await,
        Err(Error::Invalid(_))
    ));
    c.create(&kind, &ns, &database_object(&m))
        .await
        .expect("valid database");
    let bad_patch = json!({"spec": {"storage": {"sizeGb": 10}}});
    assert!(matches!(
        c.merge_patch(&kind, &ns, "strict", &bad_patch).await,
        Err(Error::Invalid(_))
    ));
    let bad_status = json!({"status": {"phase": "Ready", "readyReplicas": 1}});
    assert!(matches!(
        c.merge_patch_status(&kind, &ns, "strict", &bad_status)
            .await,
        Err(Error::Invalid(_))
    ));
    let bad_phase = json!({"status": {"phase": "Happy"}});
    assert!(matches!(
        c.merge_patch_status(&kind, &ns, "strict", &bad_phase).await,
        Err(Error::Invalid(_))
    ));
    cleanup(c.as_ref(), &ns).await;
}

/// `list` follows continue tokens past one page (500 objects).
#[tokio::test]
async fn list_paginates() {
    let cluster = kube().await;
    let ns = standin_suite::namespace(cluster.as_ref(), "paging").await;
    let kind = Kind {
        group: "",
        version: "v1",
        kind: "ConfigMap",
        plural: "configmaps",
    };
    let n = 520;
    let results: Vec<_> = futures::stream::iter(0..n)
        .map(|i| {
            let (c, ns, kind) = (cluster.clone(), ns.clone(), kind.clone());
            async move {
                let body = json!({"metadata": {"name": format!("cm-{i:04}")}, "data": {"i": i.to_string()}});
                c.create(&kind, &ns, &body).await
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    assert!(results.iter().all(Result::is_ok));
    let before = cluster.api_calls();
    let all = cluster.list(&kind, &ns).await.expect("list");
    // kube-root-ca.crt may or may not be published: the rig has no controllers.
    let ours = all
        .iter()
        .filter(|o| {
            o["metadata"]["name"]
                .as_str()
                .is_some_and(|s| s.starts_with("cm-"))
        })
        .count();
    assert_eq!(ours, n);
    assert!(
        all.iter()
            .all(|o| o["kind"] == "ConfigMap" && o["apiVersion"] == "v1")
    );
    assert_eq!(cluster.api_calls() - before, 2, "two pages of 500");
    let everywhere = cluster.list(&kind, "").await.expect("list all namespaces");
    assert!(
        everywhere
            .iter()
            .filter(|o| o["metadata"]["namespace"] == ns.as_str())
            .count()
            >= n
    );
    for i in 0..n {
        cluster
            .delete(&kind, &ns, &format!("cm-{i:04}"))
            .await
            .expect("delete");
    }
}
