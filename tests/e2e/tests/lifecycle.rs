//! Every engine through its life: create, scale, delete; every OpsRequest
//! accepted by the API server under strict field validation.

use dbaas_cluster::{Cluster, Kind};
use dbaas_core::domain::Size;
use dbaas_core::drift::Change;
use dbaas_core::engine::Engine;
use dbaas_core::error::Error;
use dbaas_core::kubedb::{
    DATABASE_ID_LABEL, ObservedDatabase, ObservedOpsRequest, ops_request_object,
};
use dbaas_e2e::{TestEnv, cr_name, engine_of, name, names, new_database, phase, s};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// One database per engine, with a replica count its topology allows.
const ENGINES: [(&str, u32); 5] = [
    ("mongodb", 3),
    ("postgres", 1),
    ("mysql", 1),
    ("mariadb", 1),
    ("redis", 1),
];

async fn create_all(env: &mut TestEnv, size: &str) -> Vec<String> {
    let mut ids = Vec::new();
    for (engine, replicas) in ENGINES {
        let db = env
            .api
            .create_database(&new_database(
                &format!("life-{engine}"),
                engine,
                size,
                replicas,
                20,
            ))
            .await;
        ids.push(s(&db, "id").to_string());
    }
    let ids_ref = &ids;
    env.converge(
        "every engine provisioned and ready",
        30,
        async |env: &TestEnv| {
            for id in ids_ref {
                let db = env.api.get_database(id).await;
                if db["status"] != "ready" || db["current_size"] != db["size"] {
                    return None;
                }
            }
            Some(())
        },
    )
    .await;
    ids
}

/// Create and delete, for every engine: the CR is created and becomes
/// Ready; after DELETE the CR goes, and the record is finalized as deleted
/// (GET still shows it, for the audit trail; listings leave it out).
#[tokio::test(flavor = "multi_thread")]
async fn every_engine_is_created_and_deleted() {
    let mut env = TestEnv::start("life").await;
    let ids = create_all(&mut env, "db.t3.small").await;
    for id in &ids {
        let db = env.api.get_database(id).await;
        let engine = engine_of(&db);
        let cr = env
            .database_cr(&db)
            .await
            .unwrap_or_else(|| panic!("no {engine:?} CR for {id}"));
        assert_eq!(cr["kind"], engine.spec().kind);
        assert_eq!(phase(&cr), "Ready", "{cr}");
        assert_eq!(cr["metadata"]["labels"][DATABASE_ID_LABEL], id.as_str());
        let seen = ObservedDatabase::from_value(&cr).expect("readable CR");
        assert_eq!(
            (seen.size, seen.replicas, seen.storage_gb),
            (
                Some(Size::Small),
                db["replicas"].as_u64().map(|r| r as u32),
                Some(20)
            )
        );
        let secret = env.auth_secret(&db).await;
        assert!(
            secret.is_some(),
            "KubeDB (the stand-in) made the auth Secret of {}",
            cr_name(&db)
        );
        let ops = env.api.operations(id).await;
        assert_eq!(ops.len(), 1, "{ops:?}");
        assert_eq!(
            (ops[0]["type"].as_str(), ops[0]["status"].as_str()),
            (Some("provision"), Some("succeeded"))
        );
    }

    for id in &ids {
        let db = env.api.delete_database(id).await;
        assert_eq!(db["status"], "deleting");
        assert_eq!(db["deletion_requested"], true);
        // A change to a database being deleted is refused.
        let (status, body) = env
            .api
            .try_patch_database(id, &json!({"size": "db.t3.large"}))
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
    }
    let ids_ref = &ids;
    env.converge("every database finalized", 30, async |env: &TestEnv| {
        for id in ids_ref {
            if env.api.get_database(id).await["status"] != "deleted" {
                return None;
            }
        }
        Some(())
    })
    .await;
    for id in &ids {
        let (status, db) = env.api.try_get_database(id).await;
        assert_eq!(
            status,
            StatusCode::OK,
            "a deleted database stays readable: {db}"
        );
        assert_eq!(db["status"], "deleted");
        assert!(
            env.database_cr(&db).await.is_none(),
            "the CR of {id} is gone"
        );
        let secret = env.auth_secret(&db).await;
        assert!(secret.is_none(), "WipeOut removed the auth Secret of {id}");
        let ops = env.api.operations(id).await;
        let mut kinds: Vec<(&str, &str)> = ops
            .iter()
            .map(|o| (o["type"].as_str().unwrap(), o["status"].as_str().unwrap()))
            .collect();
        kinds.sort();
        assert_eq!(
            kinds,
            vec![("deprovision", "succeeded"), ("provision", "succeeded")]
        );
    }
    assert!(
        env.ops_requests().await.is_empty(),
        "create and delete need no OpsRequest"
    );
    // Nothing more happens once deleted.
    env.round().await;
    for id in &ids {
        assert_eq!(env.api.operations(id).await.len(), 2);
    }
    env.finish().await;
}

/// Storage, size and replica changes for every engine: the worker creates
/// each OpsRequest with fieldValidation=Strict, and the API server accepts
/// every one (a rejected body would fail the operation with the server's
/// message). The rig's server does enforce strictness: an unknown field is
/// refused.
#[tokio::test(flavor = "multi_thread")]
async fn every_engine_scales_with_strictly_validated_ops_requests() {
    let mut env = TestEnv::start("strict").await;

    // The rig enforces strict validation on these kinds.
    for engine in Engine::ALL {
        let mut body = ops_request_object(
            engine,
            "strict-probe",
            &env.namespace,
            "nothing",
            &Change::Replicas(1),
            &[],
        );
        body["spec"]["notAField"] = json!(true);
        match env
            .cluster
            .create(&Kind::ops_request(engine), &env.namespace, &body)
            .await
        {
            Err(Error::Invalid(message)) => assert!(message.contains("notAField"), "{message}"),
            other => {
                panic!("an unknown field in a {engine:?} OpsRequest was not refused: {other:?}")
            }
        }
    }

    let ids = create_all(&mut env, "db.t3.small").await;
    for id in &ids {
        let db = env.api.get_database(id).await;
        let mut patch = json!({"size": "db.t3.medium", "storage_gb": 30});
        if matches!(engine_of(&db), Engine::Mongodb | Engine::Postgres) {
            patch["replicas"] = json!(if db["replicas"] == 3 { 4 } else { 3 });
        }
        env.api.patch_database(id, &patch).await;
    }
    let ids_ref = &ids;
    env.converge("every engine scaled", 40, async |env: &TestEnv| {
        for id in ids_ref {
            let db = env.api.get_database(id).await;
            let synced = db["current_size"] == db["size"]
                && db["current_storage_gb"] == db["storage_gb"]
                && db["current_replicas"] == db["replicas"];
            if db["status"] != "ready" || !synced {
                return None;
            }
        }
        Some(())
    })
    .await;

    let requests = env.ops_requests().await;
    let mut expected_total = 0;
    for id in &ids {
        let db = env.api.get_database(id).await;
        let engine = engine_of(&db);
        let ops: Vec<Value> = env
            .api
            .operations(id)
            .await
            .into_iter()
            .filter(|o| o["type"] != "provision")
            .collect();
        let mut types: Vec<&str> = ops.iter().map(|o| o["type"].as_str().unwrap()).collect();
        types.sort();
        let mut want = vec!["expand_storage", "scale_vertical"];
        if matches!(engine, Engine::Mongodb | Engine::Postgres) {
            want.push("scale_horizontal");
        }
        want.sort();
        assert_eq!(
            types, want,
            "{engine:?}: one operation per drifted field: {ops:?}"
        );
        for op in &ops {
            assert_eq!(op["status"], "succeeded", "{engine:?}: {op}");
            assert_eq!(
                op["attempts"], 1,
                "{engine:?}: accepted on the first attempt: {op}"
            );
            let req_name = format!("{}-1", s(op, "id"));
            assert_eq!(op["ops_request_name"], req_name.as_str());
            let req = requests
                .iter()
                .find(|r| name(r) == req_name)
                .unwrap_or_else(|| {
                    panic!("{engine:?}: OpsRequest {req_name} is not in the cluster")
                });
            assert_eq!(req["kind"], engine.spec().ops_kind);
            assert_eq!(phase(req), "Successful", "{req}");
            assert_eq!(req["spec"]["databaseRef"]["name"], cr_name(&db).as_str());
            let seen = ObservedOpsRequest::from_value(req).expect("readable OpsRequest");
            let expected = match s(op, "type") {
                "expand_storage" => Change::StorageGb(30),
                "scale_vertical" => Change::Size(Size::Medium),
                _ => Change::Replicas(db["replicas"].as_u64().unwrap() as u32),
            };
            assert_eq!(seen.change, Some(expected), "{req}");
            expected_total += 1;
        }
        let cr = ObservedDatabase::from_value(&env.database_cr(&db).await.expect("CR"))
            .expect("readable CR");
        assert_eq!(
            (cr.size, cr.storage_gb),
            (Some(Size::Medium), Some(30)),
            "{engine:?}"
        );
    }
    assert_eq!(
        requests.len(),
        expected_total,
        "no OpsRequest beyond one per operation: {:?}",
        names(&requests)
    );
    env.finish().await;
}
