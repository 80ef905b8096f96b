# shellcheck shell=bash
# Shared by cluster-up.sh and cluster-down.sh (sourced, after lib.sh).
#
# The cluster layer adds a real single node to the rig in $RIG_DIR:
#   cluster/containerd/   containerd's config and root (images, snapshots)
#   cluster/cni/          CNI config and IPAM state
#   cluster/kubelet/      kubelet's root dir; cluster/pod-logs/ its pod logs
#   cluster/host-state/   what the host looked like before the first up
#                         (sysctls, iptables), restored by cluster-down.sh
#   cluster/env           written last: sourced by tests (KUBECONFIG, ...)
# Short-path runtime state (sockets must fit in 108 bytes) lives under
# /run/dbaas-rig/<hash of RIG_DIR>/.

CLUSTER_DIR="$RIG_DIR/cluster"
RUN_DIR="/run/dbaas-rig/$(printf '%s' "$RIG_DIR" | sha1sum | cut -c1-10)"
CONTAINERD_SOCK="$RUN_DIR/containerd.sock"
NODE_NAME="${DBAAS_RIG_NODE_NAME:-dbaas-rig-node}"
POD_CIDR="10.244.0.0/24"
CLUSTER_CIDR="10.244.0.0/16"
CLUSTER_DNS_IP="10.0.0.10"
BRIDGE="dbaasrig0"
# Stopped in reverse order by cluster-down.sh.
CLUSTER_SERVERS=(containerd kubelet kube-proxy kube-controller-manager kube-scheduler pod-sd)

# Every sysctl kubelet or kube-proxy may write (kubelet's
# setupKernelTunables, kube-proxy's conntrack and localnet settings), and
# the bridge netfilter switch the bridge plugin needs.
HOST_SYSCTLS=(
  vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops
  kernel.keys.root_maxkeys kernel.keys.root_maxbytes
  net.ipv4.ip_forward net.ipv4.conf.all.route_localnet
  net.bridge.bridge-nf-call-iptables net.bridge.bridge-nf-call-ip6tables
  net.netfilter.nf_conntrack_max
  net.netfilter.nf_conntrack_tcp_timeout_established
  net.netfilter.nf_conntrack_tcp_timeout_close_wait
)

ctr_() { ctr --address "$CONTAINERD_SOCK" -n k8s.io "$@"; }

# pids_under_cgroup NAME: every process in kubelet's pod cgroups (cgroup v1
# hierarchies and the unified one), to end them by id at down.
pods_cgroup_pids() {
  local d
  for d in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods; do
    [[ -d $d ]] || continue
    find "$d" -name cgroup.procs -exec cat {} + 2>/dev/null
  done | sort -un
}
