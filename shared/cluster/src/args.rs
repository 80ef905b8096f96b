//! Where the cluster is: the flags every binary that talks to Kubernetes
//! flattens.

use std::path::PathBuf;

use dbaas_core::naming::DEFAULT_NAMESPACE;

/// Kubernetes settings. Every flag has an environment equivalent.
#[derive(Debug, Clone, clap::Args)]
pub struct ClusterArgs {
    /// Kubeconfig file; unset means in-cluster configuration.
    #[arg(long, env = "KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// Namespace holding the database CRs, OpsRequests and the Lease.
    #[arg(long, env = "DBAAS_NAMESPACE", default_value = DEFAULT_NAMESPACE)]
    pub namespace: String,
}

#[cfg(feature = "kube")]
impl ClusterArgs {
    pub async fn connect(&self) -> dbaas_core::Result<crate::kube::KubeCluster> {
        crate::kube::KubeCluster::from_kubeconfig(self.kubeconfig.as_deref()).await
    }
}
