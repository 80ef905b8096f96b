#!/usr/bin/env bash
# The cluster layer's platform pods, as a real cluster runs them: CoreDNS
# (cluster DNS at 10.0.0.10), the KEDA operator (upstream's own manifests:
# namespace, RBAC, ServiceAccount, Deployment, Service) and the KEDA HTTP
# add-on (upstream's interceptor, operator and scaler manifests), each on an
# image built here from the binary build-servers.sh made. Every pod runs
# with upstream's ServiceAccount and RBAC: no extra privilege. The KEDA
# metrics apiserver and admission webhooks are left out: scaling between 0
# and 1 (all the tests need) is done by the operator itself.
#
# Called by cluster-up.sh once the node is Ready; idempotent.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
export RIG_DIR="${RIG_DIR:-$here/../../target/rig-cluster}"
# shellcheck source=lib.sh
source "$here/lib.sh"
# shellcheck source=cluster-lib.sh
source "$here/cluster-lib.sh"
KEDA_VERSION="${KEDA_VERSION:-v2.20.2}"
KEDA_HTTP_VERSION="${KEDA_HTTP_VERSION:-v0.15.0}"
COREDNS_VERSION="${COREDNS_VERSION:-v1.14.7}"
k() { kubectl --kubeconfig "$RIG_DIR/kubeconfig" "$@"; }
plog() { printf '[cluster-platform %s] %s\n' "$(date +%T)" "$*" >&2; }

kustomize=$(bash "$here/install-kustomize.sh")
m=$CLUSTER_DIR/manifests
rm -rf "$m" && mkdir -p "$m"

# --- CoreDNS --------------------------------------------------------------------------
cat >"$m/coredns.yaml" <<EOF
apiVersion: v1
kind: ServiceAccount
metadata: {name: coredns, namespace: kube-system}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "dbaas-rig:coredns"}
rules:
  - apiGroups: [""]
    resources: [endpoints, services, pods, namespaces]
    verbs: [list, watch]
  - apiGroups: [discovery.k8s.io]
    resources: [endpointslices]
    verbs: [list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "dbaas-rig:coredns"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "dbaas-rig:coredns"}
subjects: [{kind: ServiceAccount, name: coredns, namespace: kube-system}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: coredns, namespace: kube-system}
data:
  # Cluster names only: nothing is forwarded off the machine.
  Corefile: |
    .:1053 {
        errors
        health :8080
        ready :8181
        kubernetes cluster.local in-addr.arpa ip6.arpa {
            pods insecure
            fallthrough in-addr.arpa ip6.arpa
            ttl 5
        }
        cache 5
        loadbalance
    }
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: coredns, namespace: kube-system, labels: {k8s-app: kube-dns}}
spec:
  replicas: 1
  selector: {matchLabels: {k8s-app: kube-dns}}
  template:
    metadata: {labels: {k8s-app: kube-dns}}
    spec:
      serviceAccountName: coredns
      dnsPolicy: Default
      securityContext:
        runAsNonRoot: true
        runAsUser: 65532
        seccompProfile: {type: RuntimeDefault}
      containers:
        - name: coredns
          image: localhost/coredns:$COREDNS_VERSION
          imagePullPolicy: Never
          args: ["-conf", "/etc/coredns/Corefile"]
          ports:
            - {name: dns, containerPort: 1053, protocol: UDP}
            - {name: dns-tcp, containerPort: 1053, protocol: TCP}
          readinessProbe:
            httpGet: {path: /ready, port: 8181}
            periodSeconds: 2
          resources:
            requests: {cpu: 20m, memory: 32Mi}
            limits: {memory: 128Mi}
          securityContext:
            allowPrivilegeEscalation: false
            readOnlyRootFilesystem: true
            capabilities: {drop: [ALL]}
          volumeMounts: [{name: config, mountPath: /etc/coredns, readOnly: true}]
      volumes: [{name: config, configMap: {name: coredns}}]
---
apiVersion: v1
kind: Service
metadata: {name: kube-dns, namespace: kube-system, labels: {k8s-app: kube-dns}}
spec:
  clusterIP: $CLUSTER_DNS_IP
  selector: {k8s-app: kube-dns}
  ports:
    - {name: dns, port: 53, targetPort: 1053, protocol: UDP}
    - {name: dns-tcp, port: 53, targetPort: 1053, protocol: TCP}
EOF

# --- KEDA: upstream config/ (no CRDs: the rig installed them; no metrics
# apiserver, no webhooks), image and certificates from here ----------------------------
keda_src=$(go mod download -json "github.com/kedacore/keda/v2@$KEDA_VERSION" | sed -n 's/.*"Dir": "\(.*\)",*/\1/p')
mkdir -p "$m/keda/upstream"
for d in general rbac manager service_account; do cp -r "$keda_src/config/$d" "$m/keda/upstream/"; done
chmod -R u+w "$m/keda"
cat >"$m/keda/kustomization.yaml" <<EOF
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources: [upstream/general, upstream/rbac, upstream/manager, upstream/service_account]
images:
  - {name: ghcr.io/kedacore/keda, newName: localhost/keda, newTag: $KEDA_VERSION}
patches:
  - target: {kind: Deployment, name: keda-operator}
    patch: |-
      - {op: replace, path: /spec/template/spec/containers/0/imagePullPolicy, value: Never}
      # Certificates from the rig's CA (Secret kedaorg-certs), not rotated
      # by the operator (that would patch webhooks and an APIService that
      # are not installed here).
      - op: replace
        path: /spec/template/spec/containers/0/args
        value: [--leader-elect, --zap-log-level=info, --zap-encoder=console, --enable-cert-rotation=false, --cert-dir=/certs]
      - {op: replace, path: /spec/template/spec/volumes/0/secret/optional, value: false}
EOF

# --- the HTTP add-on: upstream config/{interceptor,operator,scaler} ------------------
http_src=$(go mod download -json "github.com/kedacore/http-add-on@$KEDA_HTTP_VERSION" | sed -n 's/.*"Dir": "\(.*\)",*/\1/p')
mkdir -p "$m/keda-http/upstream"
for d in interceptor operator scaler; do cp -r "$http_src/config/$d" "$m/keda-http/upstream/"; done
chmod -R u+w "$m/keda-http"
{
  cat <<EOF
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources: [upstream/interceptor, upstream/operator, upstream/scaler]
patches:
EOF
  for part in interceptor operator scaler; do
    name=keda-add-ons-http-$part
    cat <<EOF
  - target: {kind: Deployment, name: $name}
    patch: |-
      - {op: replace, path: /spec/template/spec/containers/0/image, value: "localhost/keda-http-$part:$KEDA_HTTP_VERSION"}
      - {op: add, path: /spec/template/spec/containers/0/imagePullPolicy, value: Never}
      - {op: replace, path: /spec/template/spec/containers/0/resources/requests/cpu, value: 20m}
      - {op: replace, path: /spec/template/spec/containers/0/resources/requests/memory, value: 32Mi}
EOF
  done
} >"$m/keda-http/kustomization.yaml"

"$kustomize" build "$m/keda" >"$m/keda.yaml"
"$kustomize" build "$m/keda-http" >"$m/keda-http.yaml"
# Every patch must have found its Deployment (keda-add-ons-http-<part>).
for part in interceptor operator scaler; do
  grep -q "image: localhost/keda-http-$part:" "$m/keda-http.yaml" || {
    plog "no Deployment took the keda-http-$part image; names in the render:"
    grep -n '^  name: keda-add-ons' "$m/keda-http.yaml" >&2
    exit 1
  }
done

plog "applying CoreDNS, KEDA $KEDA_VERSION, the HTTP add-on $KEDA_HTTP_VERSION"
k apply --server-side --force-conflicts -f "$m/coredns.yaml" >/dev/null
k apply --server-side --force-conflicts -f "$m/keda.yaml" >/dev/null
k -n keda create secret generic kedaorg-certs --from-file=tls.crt="$RIG_DIR/pki/keda-operator.crt" \
  --from-file=tls.key="$RIG_DIR/pki/keda-operator.key" --from-file=ca.crt="$RIG_DIR/pki/ca.crt" \
  --dry-run=client -o yaml | k apply --server-side --force-conflicts -f - >/dev/null
k apply --server-side --force-conflicts -f "$m/keda-http.yaml" >/dev/null

k -n kube-system rollout status deployment/coredns --timeout=180s >/dev/null
k -n keda rollout status deployment/keda-operator --timeout=300s >/dev/null
for d in $(k -n keda get deploy -o name | grep keda-add-ons-http); do
  k -n keda rollout status "$d" --timeout=300s >/dev/null
done
plog "CoreDNS, KEDA and the HTTP add-on ready"
