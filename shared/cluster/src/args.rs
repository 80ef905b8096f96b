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

    /// Whether there is a cluster to talk to: a kubeconfig is given, or the
    /// process runs in a pod (which has the in-cluster configuration).
    pub fn configured(&self) -> bool {
        self.kubeconfig.is_some() || std::env::var_os("KUBERNETES_SERVICE_HOST").is_some()
    }

    /// A client made on its first call (see [`crate::kube::LazyKubeCluster`]).
    pub fn connect_lazily(&self) -> crate::kube::LazyKubeCluster {
        crate::kube::LazyKubeCluster::new(self.kubeconfig.clone())
    }
}
