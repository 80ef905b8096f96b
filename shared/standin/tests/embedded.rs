//! The stand-in's behaviour against the embedded cluster (the local mode's).

use std::sync::Arc;

use dbaas_cluster::Cluster;
use dbaas_cluster::embedded::EmbeddedCluster;
use dbaas_testkit::standin_suite;

async fn setup() -> (Arc<dyn Cluster>, String) {
    let cluster: Arc<dyn Cluster> = Arc::new(EmbeddedCluster::in_memory());
    let ns = standin_suite::namespace(cluster.as_ref(), "standin").await;
    (cluster, ns)
}

#[tokio::test]
async fn cluster_semantics() {
    let (c, ns) = setup().await;
    standin_suite::cluster_semantics(c.as_ref(), &ns).await;
}

#[tokio::test]
async fn provisioning() {
    let (c, ns) = setup().await;
    standin_suite::provisioning(c, &ns).await;
}

#[tokio::test]
async fn ops_lifecycle() {
    let (c, ns) = setup().await;
    standin_suite::ops_lifecycle(c, &ns).await;
}

#[tokio::test]
async fn waits_for_ready() {
    let (c, ns) = setup().await;
    standin_suite::waits_for_ready(c, &ns).await;
}

#[tokio::test]
async fn skipped_and_serialized() {
    let (c, ns) = setup().await;
    standin_suite::skipped_and_serialized(c, &ns).await;
}

#[tokio::test]
async fn finished_requests_skip_nothing() {
    let (c, ns) = setup().await;
    standin_suite::finished_requests_skip_nothing(c, &ns).await;
}

#[tokio::test]
async fn failures() {
    let (c, ns) = setup().await;
    standin_suite::failures(c, &ns).await;
}

#[tokio::test]
async fn deletion_policies() {
    let (c, ns) = setup().await;
    standin_suite::deletion_policies(c, &ns).await;
}

#[tokio::test]
async fn halt_and_resume() {
    let (c, ns) = setup().await;
    standin_suite::halt_and_resume(c, &ns).await;
}

#[tokio::test]
async fn halt_refused_for_do_not_terminate() {
    let (c, ns) = setup().await;
    standin_suite::halt_refused_for_do_not_terminate(c, &ns).await;
}

#[tokio::test]
async fn restart_request() {
    let (c, ns) = setup().await;
    standin_suite::restart_request(c, &ns).await;
}

#[tokio::test]
async fn stateless_restart() {
    let (c, ns) = setup().await;
    standin_suite::stateless_restart(c, &ns).await;
}

/// Everything, on a cluster persisted to a file and reopened half-way: the
/// stand-in and the cluster both carry on from the file.
#[tokio::test]
async fn persisted_cluster_survives_restart() {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("standin-{}", dbaas_core::domain::random_token(8)));
    let path = dir.join("cluster.sqlite");
    let ns = {
        let cluster: Arc<dyn Cluster> = Arc::new(EmbeddedCluster::open(&path).expect("open"));
        let ns = standin_suite::namespace(cluster.as_ref(), "persist").await;
        standin_suite::provisioning(cluster, &ns).await;
        ns
    };
    let cluster: Arc<dyn Cluster> = Arc::new(EmbeddedCluster::open(&path).expect("reopen"));
    let s = standin_suite::standin(&cluster, &ns);
    let report = s.step(chrono::Utc::now()).await.expect("step");
    assert!(
        report.transitions.is_empty(),
        "all were Ready before the restart: {:?}",
        report.transitions
    );
    standin_suite::ops_lifecycle(cluster, &ns).await;
    std::fs::remove_dir_all(dir).expect("clean up");
}
