#!/usr/bin/env bash
# Stops the cluster layer (cluster-up.sh) and gives the host back as it was:
# every pod's processes ended, containerd and its shims stopped, mounts and
# network namespaces of the pods removed, the pod bridge deleted, kubelet's
# cgroups removed, the iptables rules and sysctls that kubelet, kube-proxy
# and the CNI plugins changed restored from the snapshot taken before the
# first up (KUBE-FIREWALL, for one, drops non-local traffic to 127.0.0.0/8),
# and fixed paths that did not exist before removed. Then stops the rig
# itself (down.sh) unless --keep-rig.
#
#   --keep-rig          leave etcd, kube-apiserver, FerretDB... running
#   --keep-host-state   do not restore the snapshot (cluster-up.sh clearing a
#                       half-started cluster before trying again)
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
export RIG_DIR="${RIG_DIR:-$here/../../target/rig-cluster}"
# shellcheck source=lib.sh
source "$here/lib.sh"
# shellcheck source=cluster-lib.sh
source "$here/cluster-lib.sh"
keep_rig=0 keep_host=0
for a in "$@"; do
  case $a in
    --keep-rig) keep_rig=1 ;;
    --keep-host-state) keep_host=1 ;;
    *) echo "usage: $0 [--keep-rig] [--keep-host-state]" >&2; exit 2 ;;
  esac
done
dlog() { printf '[cluster-down %s] %s\n' "$(date +%T)" "$*" >&2; }
((EUID == 0)) || { dlog "run as root"; exit 1; }

if [[ ${CLUSTER_LOCK_HELD:-0} != 1 ]]; then # cluster-up.sh holds it already
  exec 8>"$RIG_DIR/.cluster-lock"
  flock -w 600 8 || { dlog "timed out waiting for $RIG_DIR/.cluster-lock"; exit 1; }
fi
rm -f "$CLUSTER_DIR/env"

# kubelet first, so that it restarts nothing; then the control-plane
# controllers and kube-proxy.
mkdir -p "$RIG_DIR/pids"
stop_servers kubelet
stop_servers kube-controller-manager kube-scheduler kube-proxy pod-sd

# Every container: through containerd while it runs, then whatever is left
# in kubelet's pod cgroups (all of it started by this layer's kubelet).
if [[ -S $CONTAINERD_SOCK ]]; then
  for t in $(ctr_ tasks ls -q 2>/dev/null); do
    ctr_ tasks kill -a -s SIGKILL "$t" >/dev/null 2>&1 || true
  done
  sleep 1
  for t in $(ctr_ tasks ls -q 2>/dev/null); do ctr_ tasks delete -f "$t" >/dev/null 2>&1 || true; done
fi
for i in 1 2 3 4 5; do
  pids=$(pods_cgroup_pids)
  [[ -z $pids ]] && break
  # shellcheck disable=SC2086
  kill -KILL $pids 2>/dev/null || true
  sleep 0.5
done
stop_servers containerd
# The shims outlive containerd by design; each names this layer's socket.
shims=$(pgrep -f -- "-address $CONTAINERD_SOCK( |$)" || true)
if [[ -n $shims ]]; then
  # shellcheck disable=SC2086
  kill -KILL $shims 2>/dev/null || true
fi

# Mounts under this layer's dirs (pod volumes, rootfs, sandbox shm), deepest
# first; then the pods' network namespaces.
for root in "$CLUSTER_DIR" "$RUN_DIR"; do
  findmnt -rn -o TARGET | grep -F "$root/" | sort -r | while read -r mnt; do
    umount -l "$mnt" 2>/dev/null || true
  done
done
hs=$CLUSTER_DIR/host-state
if [[ -d /var/run/netns ]]; then
  for ns in /var/run/netns/cni-*; do
    [[ -e $ns ]] || continue
    grep -qxF "$ns" "$hs/netns-before" 2>/dev/null && continue
    umount -l "$ns" 2>/dev/null || true
    rm -f "$ns"
  done
fi
ip link del "$BRIDGE" 2>/dev/null || true

# kubelet's cgroups (cgroupfs driver): kubepods and its children.
for d in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods; do
  [[ -d $d ]] && find "$d" -depth -type d -exec rmdir {} + 2>/dev/null || true
done

# Host state: iptables (every table flushed, then the snapshot), sysctls,
# fixed paths created since.
if ((!keep_host)) && [[ -s $hs/sysctl ]]; then
  for t in filter nat mangle raw; do
    iptables -t "$t" -F 2>/dev/null || true
    iptables -t "$t" -X 2>/dev/null || true
    ip6tables -t "$t" -F 2>/dev/null || true
    ip6tables -t "$t" -X 2>/dev/null || true
  done
  iptables-restore <"$hs/iptables"
  [[ -s $hs/ip6tables ]] && ip6tables-restore <"$hs/ip6tables"
  while IFS='=' read -r key value; do
    sysctl -qw "$key=$value" 2>/dev/null || dlog "could not restore $key=$value"
  done <"$hs/sysctl"
  while read -r p; do
    [[ -e $p || -L $p ]] && rm -rf "$p"
  done <"$hs/absent-paths"
  # Symlinks kubelet left in a /var/log/containers that existed before.
  if [[ -d /var/log/containers ]]; then
    find /var/log/containers -maxdepth 1 -type l -lname "$CLUSTER_DIR/*" -delete 2>/dev/null || true
  fi
  conntrack -D -s 10.244.0.0/16 >/dev/null 2>&1 || true
  conntrack -D -d 10.0.0.0/24 >/dev/null 2>&1 || true
  dlog "host state restored (iptables, sysctls, paths)"
  rm -rf "$CLUSTER_DIR"
else
  # Keep the snapshot for the next up (and the final down).
  find "$CLUSTER_DIR" -mindepth 1 -maxdepth 1 ! -name host-state -exec rm -rf {} + 2>/dev/null || true
fi
rm -rf "$RUN_DIR"
rmdir /run/dbaas-rig 2>/dev/null || true
rm -f "$RIG_DIR"/pod-targets.json "$RIG_DIR"/pods.json.tmp
rm -f "$RIG_DIR"/pids/{containerd,kubelet,kube-proxy,kube-controller-manager,kube-scheduler,pod-sd}.pid

if ((!keep_rig)); then
  bash "$here/down.sh"
fi
dlog "cluster at $RIG_DIR is down"
