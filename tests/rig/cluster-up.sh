#!/usr/bin/env bash
# Opt-in layer of the rig: a real single-node Kubernetes on this machine,
# reusing the rig's etcd and kube-apiserver (started by up.sh in cluster
# mode), with containerd + runc + bridge CNI from Debian, kubelet,
# kube-proxy (iptables), kube-controller-manager, kube-scheduler, CoreDNS,
# the KEDA operator and the KEDA HTTP add-on (operator, interceptor,
# scaler) as pods built from the Go module proxy.
#
# Run as root. Idempotent: exits at once if the node is already Ready.
# Writes $RIG_DIR/cluster/env (KUBECONFIG, RIG_NODE_IP, ...). Stop with
# cluster-down.sh, which restores what kubelet and kube-proxy changed on
# the host. Default RIG_DIR here: <repo>/target/rig-cluster, so the default
# rig (target/rig) of `just test` is never touched.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
export RIG_DIR="${RIG_DIR:-$here/../../target/rig-cluster}"
# shellcheck source=lib.sh
source "$here/lib.sh"
# shellcheck source=cluster-lib.sh
source "$here/cluster-lib.sh"
CACHE="${DBAAS_RIG_CACHE:-$HOME/.cache/dbaas-rig}"
K8S_VERSION="${K8S_VERSION:-v1.32.13}"
KEDA_VERSION="${KEDA_VERSION:-v2.20.2}"
KEDA_HTTP_VERSION="${KEDA_HTTP_VERSION:-v0.15.0}"
COREDNS_VERSION="${COREDNS_VERSION:-v1.14.7}"
PAUSE_IMAGE="localhost/pause:3.10-rig"

t0=$(date +%s)
clog() { printf '[cluster %s +%ss] %s\n' "$(date +%T)" $(($(date +%s) - t0)) "$*" >&2; }
die() { clog "error: $*"; exit 1; }
((EUID == 0)) || die "run as root (containerd, kubelet and kube-proxy need it)"

# --- Debian packages, only when missing ----------------------------------------
declare -A pkg_for=(
  [containerd]=containerd [runc]=runc [buildah]=buildah [skopeo]=skopeo
  [iptables]=iptables [conntrack]=conntrack [gcc]=gcc [ip]=iproute2
  [kubectl]=kubernetes-client [sha1sum]=coreutils
)
missing=()
for cmd in "${!pkg_for[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${pkg_for[$cmd]}")
done
[[ -x /usr/lib/cni/bridge ]] || missing+=(containernetworking-plugins)
[[ -e /usr/lib/x86_64-linux-gnu/libc.a || -e /usr/lib/libc.a ]] || missing+=(libc6-dev)
if ((${#missing[@]})); then
  clog "installing: ${missing[*]}"
  apt-get update -q >/dev/null
  # No service starts: containerd runs here with a private config only.
  own_policy=0
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d
    own_policy=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    -o DPkg::Lock::Timeout=300 "${missing[@]}" >/dev/null
  ((own_policy)) && rm -f /usr/sbin/policy-rc.d
  if [[ -d /run/systemd/system ]]; then systemctl disable --now containerd >/dev/null 2>&1 || true; fi
fi

# --- binaries (cached by version) ------------------------------------------------
# DBAAS_CLUSTER_PLATFORM=0: the node only, without CoreDNS and KEDA.
PLATFORM="${DBAAS_CLUSTER_PLATFORM:-1}"
node_bins=(kubelet kube-controller-manager kube-scheduler kube-proxy)
platform_bins=(coredns keda-operator keda-http-operator keda-http-interceptor keda-http-scaler)
declare -A bin=()
for b in "${node_bins[@]}"; do bin[$b]=$(bash "$here/build-servers.sh" "$b"); done
if [[ $PLATFORM == 1 ]]; then
  for b in "${platform_bins[@]}"; do bin[$b]=$(bash "$here/build-servers.sh" "$b"); done
fi

# --- the rig in cluster mode -------------------------------------------------------
RIG_CLUSTER=1 bash "$here/up.sh"
# shellcheck source=/dev/null
source "$RIG_DIR/env"
# shellcheck source=/dev/null
source "$RIG_DIR/ports"
NODE_IP=$RIG_NODE_IP
k() { kubectl --kubeconfig "$RIG_DIR/kubeconfig" "$@"; }

exec 8>"$RIG_DIR/.cluster-lock"
flock -w 600 8 || die "timed out waiting for $RIG_DIR/.cluster-lock"

node_ready() {
  [[ $(k get node "$NODE_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null) == True ]]
}
all_alive() {
  local s
  for s in "${CLUSTER_SERVERS[@]}"; do pid_alive "$s" || return 1; done
}
if [[ -s $CLUSTER_DIR/env ]] && all_alive && node_ready; then
  clog "cluster already up ($CLUSTER_DIR/env)"
  exit 0
fi
# Leftovers of a half-started cluster: clear them (keeps the host snapshot).
CLUSTER_LOCK_HELD=1 bash "$here/cluster-down.sh" --keep-rig --keep-host-state >/dev/null 2>&1 || true

mkdir -p "$CLUSTER_DIR"/{containerd,cni/net.d,cni/ipam,kubelet,pod-logs,host-state,manifests} \
  "$RIG_DIR/pids" "$RIG_DIR/logs" "$RUN_DIR"

failed=""
on_exit() {
  local rc=$?
  ((rc == 0)) && return
  if [[ -n $failed && -f $RIG_DIR/logs/$failed.log ]]; then
    clog "--- last lines of $RIG_DIR/logs/$failed.log"
    tail -n 30 "$RIG_DIR/logs/$failed.log" >&2 || true
  fi
  clog "cluster failed to come up; logs in $RIG_DIR/logs (cluster-down.sh cleans up)"
}
trap on_exit EXIT

start() {
  local name=$1
  shift
  setsid "$@" >"$RIG_DIR/logs/$name.log" 2>&1 </dev/null 8>&- 9>&- &
  record_pid "$name" $!
}
wait_until() { # NAME TIMEOUT CMD...
  local name=$1 timeout=$2 deadline
  shift 2
  deadline=$(($(date +%s) + timeout))
  until "$@" >/dev/null 2>&1; do
    if [[ $name != - ]] && ! pid_alive "$name"; then failed=$name; die "$name exited"; fi
    (($(date +%s) > deadline)) && { failed=$name; die "$name: not ready after ${timeout}s ($*)"; }
    sleep 0.5
  done
}

# --- host state, recorded once before anything changes it --------------------------
hs=$CLUSTER_DIR/host-state
if [[ ! -s $hs/sysctl ]]; then
  for s in "${HOST_SYSCTLS[@]}"; do
    v=$(sysctl -n "$s" 2>/dev/null) && printf '%s=%s\n' "$s" "$v"
  done >"$hs/sysctl.tmp"
  iptables-save >"$hs/iptables"
  ip6tables-save >"$hs/ip6tables" 2>/dev/null || true
  # Fixed paths kubelet and containerd use whatever their config says;
  # cluster-down.sh removes the ones that did not exist before.
  for p in /var/lib/kubelet /var/log/containers /var/log/pods /run/containerd /var/run/netns \
    /var/lib/cni /etc/cni /opt/containerd /opt/cni /var/lib/containerd; do
    [[ -e $p ]] || echo "$p"
  done >"$hs/absent-paths"
  ls -1d /var/run/netns/cni-* >"$hs/netns-before" 2>/dev/null || true
  mv "$hs/sysctl.tmp" "$hs/sysctl"
  clog "host state recorded in $hs"
fi

# --- certificates (signed by the rig's CA), one identity per component -------------
pki=$RIG_DIR/pki
cat >"$pki/cluster.cnf" <<EOF
[req]
distinguished_name = dn
prompt = no
[dn]
[client]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = clientAuth
[kubelet_serving]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:$NODE_IP,DNS:$NODE_NAME
[keda_serving]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth,clientAuth
subjectAltName = DNS:keda-operator,DNS:keda-operator.keda,DNS:keda-operator.keda.svc,DNS:keda-operator.keda.svc.cluster.local,DNS:keda-admission-webhooks.keda.svc,DNS:keda-operator-metrics-apiserver.keda.svc
EOF
sign() { # NAME SUBJECT EXTENSION
  openssl req -new -newkey rsa:2048 -nodes -config "$pki/cluster.cnf" \
    -keyout "$pki/$1.key" -out "$pki/$1.csr" -subj "$2" 2>/dev/null
  openssl x509 -req -in "$pki/$1.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" \
    -set_serial "0x$(openssl rand -hex 8)" -days 3650 -extfile "$pki/cluster.cnf" \
    -extensions "$3" -out "$pki/$1.crt" 2>/dev/null
}
kubeconfig() { # NAME CERT_NAME
  local b64
  b64() { base64 -w0 <"$1"; }
  cat >"$CLUSTER_DIR/$1.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
  - name: rig
    cluster:
      server: https://127.0.0.1:$KUBE_PORT
      certificate-authority-data: $(b64 "$pki/ca.crt")
users:
  - name: $1
    user:
      client-certificate-data: $(b64 "$pki/$2.crt")
      client-key-data: $(b64 "$pki/$2.key")
contexts:
  - name: rig
    context: {cluster: rig, user: $1}
current-context: rig
EOF
  chmod 600 "$CLUSTER_DIR/$1.kubeconfig"
}
sign kubelet-client "/O=system:nodes/CN=system:node:$NODE_NAME" client
sign kubelet-serving "/CN=$NODE_NAME" kubelet_serving
sign kube-controller-manager "/CN=system:kube-controller-manager" client
sign kube-scheduler "/CN=system:kube-scheduler" client
sign kube-proxy "/CN=system:kube-proxy" client
sign keda-operator "/CN=keda-operator" keda_serving
kubeconfig kubelet kubelet-client
kubeconfig kube-controller-manager kube-controller-manager
kubeconfig kube-scheduler kube-scheduler
kubeconfig kube-proxy kube-proxy
clog "certificates and kubeconfigs written"

# --- containerd, private config, root and state ------------------------------------
cat >"$CLUSTER_DIR/containerd/config.toml" <<EOF
version = 2
root = "$CLUSTER_DIR/containerd/root"
state = "$RUN_DIR/containerd-state"
[grpc]
  address = "$CONTAINERD_SOCK"
[ttrpc]
  address = "$CONTAINERD_SOCK.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "$CLUSTER_DIR/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  # This VM refuses negative oom_score_adj: without this every sandbox
  # fails with "can't get final child's PID from pipe: EOF".
  restrict_oom_score_adj = true
  # Pods' network namespaces under the private state dir, not /var/run/netns.
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$CLUSTER_DIR/cni/net.d"
EOF
cat >"$CLUSTER_DIR/cni/net.d/10-dbaas-rig.conflist" <<EOF
{
  "cniVersion": "0.4.0",
  "name": "dbaas-rig",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$BRIDGE",
      "isGateway": true,
      "ipMasq": true,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": "$POD_CIDR"}]],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dataDir": "$CLUSTER_DIR/cni/ipam"
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF
# Nothing from the pods or to a Service address leaves the machine: the
# pods' bridge is made here with the Service range routed onto it (an
# address kube-proxy has not translated yet goes nowhere instead of out
# through the default route), and pods may reach only pods and this host.
ip link show "$BRIDGE" >/dev/null 2>&1 || ip link add "$BRIDGE" type bridge
ip addr replace "${POD_CIDR%.*}.1/${POD_CIDR#*/}" dev "$BRIDGE"
ip link set "$BRIDGE" up
ip route replace 10.0.0.0/24 dev "$BRIDGE"
iptables -C FORWARD -s "$CLUSTER_CIDR" ! -d "$CLUSTER_CIDR" -j REJECT 2>/dev/null ||
  iptables -I FORWARD 1 -s "$CLUSTER_CIDR" ! -d "$CLUSTER_CIDR" -j REJECT
start containerd containerd --config "$CLUSTER_DIR/containerd/config.toml"
wait_until containerd 60 ctr --address "$CONTAINERD_SOCK" version
clog "containerd up ($CONTAINERD_SOCK)"

# --- images: built once with buildah (vfs), cached as archives, imported --------------
BUILDAH=(buildah --root "$CACHE/buildah/storage" --runroot "$RUN_DIR/buildah" --storage-driver vfs)
# image NAME TAG USER ENTRYPOINT SRC:DEST...: a FROM-scratch image.
image() {
  local name=$1 tag=$2 user=$3 entry=$4 tar="$CACHE/images/$1-$2.tar" c f
  shift 4
  if [[ ! -s $tar ]]; then
    mkdir -p "$CACHE/images"
    c=$("${BUILDAH[@]}" from scratch)
    for f in "$@"; do "${BUILDAH[@]}" copy --chmod 755 "$c" "${f%%:*}" "${f#*:}" >/dev/null; done
    "${BUILDAH[@]}" config --entrypoint "[\"$entry\"]" --cmd '' --user "$user" "$c"
    "${BUILDAH[@]}" commit -q "$c" "localhost/$name:$tag" >/dev/null
    "${BUILDAH[@]}" rm "$c" >/dev/null
    rm -f "$tar.tmp"
    "${BUILDAH[@]}" push -q "localhost/$name:$tag" "docker-archive:$tar.tmp:localhost/$name:$tag" >/dev/null
    mv "$tar.tmp" "$tar"
  fi
  ctr_ images import "$tar" >/dev/null
}
# The pause image cannot be pulled here: built from Kubernetes' own pause.c.
pause_bin="$CACHE/pause-$K8S_VERSION/pause"
if [[ ! -x $pause_bin ]]; then
  k8s_dir=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"Dir": "\(.*\)",*/\1/p')
  mkdir -p "$(dirname "$pause_bin")"
  gcc -Os -Wall -Werror -static -DVERSION="v3.10-rig" -o "$pause_bin.tmp" "$k8s_dir/build/pause/linux/pause.c"
  mv "$pause_bin.tmp" "$pause_bin"
fi
image pause 3.10-rig 65535:65535 /pause "$pause_bin:/pause"
[[ $PLATFORM == 1 ]] && {
image coredns "$COREDNS_VERSION" 65532:65532 /coredns "${bin[coredns]}:/coredns"
image keda "$KEDA_VERSION" 65532:65532 /keda "${bin[keda-operator]}:/keda"
for part in operator interceptor scaler; do
  image "keda-http-$part" "$KEDA_HTTP_VERSION" 65532:65532 "/$part" "${bin[keda-http-$part]}:/$part"
done
}
clog "images imported: $(ctr_ images ls -q | grep -c localhost/)"

# --- kubelet -------------------------------------------------------------------------
cat >"$CLUSTER_DIR/kubelet/config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: 0.0.0.0
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $pki/ca.crt}
authorization: {mode: Webhook}
tlsCertFile: $pki/kubelet-serving.crt
tlsPrivateKeyFile: $pki/kubelet-serving.key
cgroupDriver: cgroupfs
failSwapOn: false
containerRuntimeEndpoint: unix://$CONTAINERD_SOCK
clusterDNS: [$CLUSTER_DNS_IP]
clusterDomain: cluster.local
podLogsDir: $CLUSTER_DIR/pod-logs
# Test machine: never evict, never garbage-collect the imported images.
evictionHard: {memory.available: "1Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
maxPods: 60
EOF
start kubelet "${bin[kubelet]}" --config="$CLUSTER_DIR/kubelet/config.yaml" \
  --kubeconfig="$CLUSTER_DIR/kubelet.kubeconfig" --root-dir="$CLUSTER_DIR/kubelet" \
  --hostname-override="$NODE_NAME" --node-ip="$NODE_IP" --v=1

# --- control-plane controllers --------------------------------------------------------
start kube-controller-manager "${bin[kube-controller-manager]}" \
  --kubeconfig="$CLUSTER_DIR/kube-controller-manager.kubeconfig" \
  --authentication-kubeconfig="$CLUSTER_DIR/kube-controller-manager.kubeconfig" \
  --authorization-kubeconfig="$CLUSTER_DIR/kube-controller-manager.kubeconfig" \
  --bind-address=127.0.0.1 --secure-port=0 --leader-elect=false \
  --use-service-account-credentials \
  --service-account-private-key-file="$pki/sa.key" --root-ca-file="$pki/ca.crt" \
  --service-cluster-ip-range=10.0.0.0/24 --cluster-cidr="$CLUSTER_CIDR" \
  --cluster-signing-cert-file="$pki/ca.crt" --cluster-signing-key-file="$pki/ca.key"
start kube-scheduler "${bin[kube-scheduler]}" \
  --kubeconfig="$CLUSTER_DIR/kube-scheduler.kubeconfig" \
  --authentication-kubeconfig="$CLUSTER_DIR/kube-scheduler.kubeconfig" \
  --authorization-kubeconfig="$CLUSTER_DIR/kube-scheduler.kubeconfig" \
  --bind-address=127.0.0.1 --secure-port=0 --leader-elect=false

read -r PROXY_HEALTH_PORT PROXY_METRICS_PORT < <(python3 -c '
import socket
s=[socket.socket() for _ in range(2)]
[x.bind(("127.0.0.1",0)) for x in s]
print(*(x.getsockname()[1] for x in s))')
cat >"$CLUSTER_DIR/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: $CLUSTER_DIR/kube-proxy.kubeconfig
mode: iptables
clusterCIDR: $CLUSTER_CIDR
hostnameOverride: $NODE_NAME
bindAddress: 127.0.0.1
healthzBindAddress: 127.0.0.1:$PROXY_HEALTH_PORT
metricsBindAddress: 127.0.0.1:$PROXY_METRICS_PORT
# NodePorts on the node's address only: no route_localnet on loopback.
nodePortAddresses: ["$NODE_IP/32"]
# Leave the host's conntrack tunables alone.
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
EOF
start kube-proxy "${bin[kube-proxy]}" --config="$CLUSTER_DIR/kube-proxy.yaml"

wait_until kubelet 120 node_ready
clog "node $NODE_NAME Ready ($NODE_IP)"
start pod-sd env RIG_DIR="$RIG_DIR" bash "$here/pod-targets.sh"

# --- platform pods: CoreDNS, KEDA, the KEDA HTTP add-on ------------------------------
if [[ $PLATFORM == 1 ]]; then
  bash "$here/cluster-platform.sh"
fi

# --- env file, written last ----------------------------------------------------------
{
  printf 'export RIG_DIR=%q\n' "$RIG_DIR"
  printf 'export KUBECONFIG=%q\n' "$RIG_DIR/kubeconfig"
  printf 'export RIG_NODE_IP=%q\n' "$NODE_IP"
  printf 'export RIG_NODE_NAME=%q\n' "$NODE_NAME"
  printf 'export RIG_CONTAINERD_SOCK=%q\n' "$CONTAINERD_SOCK"
} >"$CLUSTER_DIR/env.tmp"
mv "$CLUSTER_DIR/env.tmp" "$CLUSTER_DIR/env"
trap - EXIT
clog "cluster up: source $RIG_DIR/env; kubectl get nodes"
