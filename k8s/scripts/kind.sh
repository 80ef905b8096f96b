#!/usr/bin/env bash
# `just deploy` / `just undeploy`: the whole system on a local kind cluster.
#
#   kind.sh up     create the cluster if absent; install ingress-nginx, KEDA
#                  and the KEDA HTTP add-on (helm, pinned versions) and the
#                  KubeDB CRDs; build the image and load it into the node;
#                  apply k8s/overlays/kind (which includes keda/); wait for
#                  readiness; print how to reach the API, Grafana, Prometheus.
#   kind.sh down   delete the kind cluster.
#
# Needs docker, kubectl and helm on PATH; kind is installed with `go install`
# (cached under ~/.cache/dbaas-rig) when missing. Settings (environment):
#   DBAAS_KIND_CLUSTER   cluster name (dbaas)
#   DBAAS_KIND_HTTP_PORT host port of the cluster's ingress (8080)
#   DBAAS_IMAGE          image to build and load (dbaas:dev; the overlay uses it)
#   DBAAS_CRDS_DIR       KubeDB CRDs (../shared/crds; `just fetch-crds` gets them)
#   DBAAS_INGRESS=0      skip ingress-nginx (reach the API by port-forward)
#   KEDA_VERSION, KEDA_HTTP_VERSION, INGRESS_NGINX_VERSION, KIND_VERSION
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
CLUSTER="${DBAAS_KIND_CLUSTER:-dbaas}"
HTTP_PORT="${DBAAS_KIND_HTTP_PORT:-8080}"
IMAGE="${DBAAS_IMAGE:-dbaas:dev}"
CRDS_DIR="${DBAAS_CRDS_DIR:-$repo/../shared/crds}"
KEDA_VERSION="${KEDA_VERSION:-2.20.2}"
KEDA_HTTP_VERSION="${KEDA_HTTP_VERSION:-0.15.0}"
INGRESS_NGINX_VERSION="${INGRESS_NGINX_VERSION:-4.12.1}"
KIND_VERSION="${KIND_VERSION:-v0.30.0}"
CACHE="${DBAAS_RIG_CACHE:-$HOME/.cache/dbaas-rig}"
API_HOST=dbaas.localtest.me
CONTEXT="kind-$CLUSTER"

log() { printf '\033[1m[deploy]\033[0m %s\n' "$*" >&2; }
die() { printf '[deploy] error: %s\n' "$*" >&2; exit 1; }
k() { kubectl --context "$CONTEXT" "$@"; }

need() {
  command -v "$1" >/dev/null 2>&1 || die "$1 is required: $2"
}

# kind from the Go module proxy (its documented `go install` route), cached.
kind_bin() {
  if command -v kind >/dev/null 2>&1; then
    command -v kind
    return
  fi
  local out="$CACHE/kind-$KIND_VERSION/kind"
  if [[ ! -x $out ]]; then
    need go "install kind (https://kind.sigs.k8s.io) or Go to build it"
    log "installing kind $KIND_VERSION with go install"
    mkdir -p "$(dirname "$out")"
    GOBIN="$(dirname "$out")" CGO_ENABLED=0 go install "sigs.k8s.io/kind@$KIND_VERSION"
  fi
  echo "$out"
}

up() {
  need docker "https://docs.docker.com/engine/install/"
  need kubectl "https://kubernetes.io/docs/tasks/tools/"
  need helm "https://helm.sh/docs/intro/install/"
  docker info >/dev/null 2>&1 || die "the Docker engine is not reachable (is it running?)"
  local kind
  kind=$(kind_bin)

  # --- cluster ---------------------------------------------------------------
  if "$kind" get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
    log "kind cluster $CLUSTER exists"
  else
    log "creating kind cluster $CLUSTER (ingress on 127.0.0.1:$HTTP_PORT)"
    "$kind" create cluster --name "$CLUSTER" --wait 180s --config - <<EOF
kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
nodes:
  - role: control-plane
    kubeadmConfigPatches:
      - |
        kind: InitConfiguration
        nodeRegistration:
          kubeletExtraArgs:
            node-labels: "ingress-ready=true"
    extraPortMappings:
      - containerPort: 80
        hostPort: $HTTP_PORT
        listenAddress: 127.0.0.1
        protocol: TCP
EOF
  fi
  k cluster-info >/dev/null || die "cannot reach cluster context $CONTEXT"

  # --- platform: ingress-nginx, KEDA, the HTTP add-on, KubeDB CRDs ------------
  helm repo add kedacore https://kedacore.github.io/charts --force-update >/dev/null
  if [[ ${DBAAS_INGRESS:-1} != 0 ]]; then
    helm repo add ingress-nginx https://kubernetes.github.io/ingress-nginx --force-update >/dev/null
  fi
  helm repo update >/dev/null
  if [[ ${DBAAS_INGRESS:-1} != 0 ]]; then
    log "installing ingress-nginx $INGRESS_NGINX_VERSION"
    helm --kube-context "$CONTEXT" upgrade --install ingress-nginx ingress-nginx/ingress-nginx \
      --version "$INGRESS_NGINX_VERSION" --namespace ingress-nginx --create-namespace \
      --set controller.hostPort.enabled=true \
      --set controller.service.type=ClusterIP \
      --set-string controller.nodeSelector.ingress-ready=true \
      --set 'controller.tolerations[0].key=node-role.kubernetes.io/control-plane' \
      --set 'controller.tolerations[0].operator=Exists' \
      --set 'controller.tolerations[0].effect=NoSchedule' \
      --set controller.admissionWebhooks.enabled=false \
      --set controller.ingressClassResource.name=nginx \
      --wait --timeout 5m
  fi
  log "installing KEDA $KEDA_VERSION and the HTTP add-on $KEDA_HTTP_VERSION"
  helm --kube-context "$CONTEXT" upgrade --install keda kedacore/keda \
    --version "$KEDA_VERSION" --namespace keda --create-namespace --wait --timeout 5m
  helm --kube-context "$CONTEXT" upgrade --install http-add-on kedacore/keda-add-ons-http \
    --version "$KEDA_HTTP_VERSION" --namespace keda \
    --set interceptor.replicas.min=1 --wait --timeout 5m

  if k get crd postgreses.kubedb.com >/dev/null 2>&1 && [[ ! -d $CRDS_DIR/kubedb ]]; then
    log "KubeDB CRDs already installed"
  else
    [[ -d $CRDS_DIR/kubedb ]] || die "no KubeDB CRDs under $CRDS_DIR/kubedb: run \`just fetch-crds crds\` and set DBAAS_CRDS_DIR"
    log "applying the KubeDB CRDs from $CRDS_DIR/kubedb"
    # Server-side: the mongodbs CRD is too large for client-side apply.
    k apply --server-side --force-conflicts -f "$CRDS_DIR/kubedb" >/dev/null
    k wait --for=condition=Established --timeout=120s -f "$CRDS_DIR/kubedb" >/dev/null
  fi

  # --- image -------------------------------------------------------------------
  log "building $IMAGE (static musl binaries; the first build takes a while)"
  DOCKER_BUILDKIT=1 docker build -t "$IMAGE" "$repo"
  log "loading $IMAGE into the kind node"
  "$kind" load docker-image "$IMAGE" --name "$CLUSTER"

  # --- manifests: the same recipe as any other cluster's (credentials
  # generated into the overlay's untracked generated/ folder) ------------
  bash "$here/deploy.sh" "$repo/k8s/overlays/kind" --context "$CONTEXT"

  # --- readiness -----------------------------------------------------------------
  log "waiting for the workloads"
  for d in mongodb redis; do k -n dbaas rollout status "deployment/$d" --timeout=300s >/dev/null; done
  for d in pushgateway prometheus grafana; do k -n dbaas-monitoring rollout status "deployment/$d" --timeout=300s >/dev/null; done

  local token
  token=$(k -n dbaas get secret dbaas-secrets -o jsonpath='{.data.admin-token}' | base64 -d)
  local url="http://127.0.0.1:$HTTP_PORT"
  if [[ ${DBAAS_INGRESS:-1} != 0 ]]; then
    # The first request wakes the API from zero through the interceptor.
    log "checking the API through ingress -> interceptor -> dbaas-api (cold start)"
    local ok=0
    for _ in $(seq 1 60); do
      if curl -sf -m 35 -H "Host: $API_HOST" "$url/readyz" >/dev/null; then ok=1; break; fi
      sleep 2
    done
    ((ok)) || die "the API did not answer through the ingress; see: kubectl --context $CONTEXT -n dbaas get pods,scaledobject,interceptorroute"
  fi

  cat >&2 <<EOF

dbaas is up on kind cluster "$CLUSTER" (context $CONTEXT).

API (scales to zero after a minute idle; the first request wakes it):
  curl -H 'Host: $API_HOST' $url/healthz
  without ingress: kubectl --context $CONTEXT -n keda port-forward svc/keda-add-ons-http-interceptor-proxy 8081:8080
                   curl -H 'Host: $API_HOST' http://127.0.0.1:8081/healthz

Create a tenant and an API key (the admin token generated into k8s/overlays/kind/generated/credentials.env):
  curl -s -X POST -H 'Host: $API_HOST' -H 'Authorization: Bearer $token' \\
       -H 'Content-Type: application/json' -d '{"name":"dev"}' $url/api/v1/admin/tenants
  curl -s -X POST -H 'Host: $API_HOST' -H 'Authorization: Bearer $token' \\
       $url/api/v1/admin/tenants/<tenant id>/api-keys

Reconciler: CronJob every 5 min (\`just schedule 1m && just deploy\` for faster passes);
  run one now: kubectl --context $CONTEXT -n dbaas create job --from=cronjob/dbaas-reconciler reconcile-now
Grafana (dashboards "DBaaS — Drift detection" and "DBaaS — State sync"; user admin, password in k8s/overlays/kind/generated/grafana-admin.env):
  kubectl --context $CONTEXT -n dbaas-monitoring port-forward svc/grafana 3000:3000   # http://127.0.0.1:3000
Prometheus:
  kubectl --context $CONTEXT -n dbaas-monitoring port-forward svc/prometheus 9090:9090
Remove everything: just undeploy
EOF
}

down() {
  local kind
  kind=$(kind_bin)
  if "$kind" get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
    log "deleting kind cluster $CLUSTER"
    "$kind" delete cluster --name "$CLUSTER"
  else
    log "no kind cluster $CLUSTER"
  fi
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  *) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
