#!/usr/bin/env bash
# Brings up the test rig on 127.0.0.1 free ports: etcd + kube-apiserver (run
# like controller-runtime's envtest, with the KubeDB and KEDA CRDs installed),
# FerretDB (MongoDB wire protocol) on PostgreSQL, redis, Prometheus +
# Pushgateway. PostgreSQL listens on a unix socket in the rig dir only.
# Exits at once if the rig in $RIG_DIR is already up and healthy.
#
# Tests read $RIG_DIR/env (written last): KUBECONFIG, MONGODB_URI, REDIS_URL,
# PROMETHEUS_URL, PUSHGATEWAY_URL, RIG_DIR, and RIG_POSTGRES_HOST (the
# socket's directory) with RIG_POSTGRES_PORT for tests that run a FerretDB
# of their own on a database of the rig's PostgreSQL (user postgres, no
# password). Stop with down.sh.
#
# RIG_CLUSTER=1 (used by cluster-up.sh, never by the default rig) starts the
# same servers ready for a real node: the apiserver, FerretDB, Redis and the
# Pushgateway also listen on the node's address so pods reach them; the
# apiserver advertises that address, authorizes kubelets (Node,RBAC),
# mounts service-account tokens and can reach kubelets; Prometheus also
# scrapes annotated pods. A rig up in the other mode is restarted.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=lib.sh
source "$here/lib.sh"
CRDS_DIR="${DBAAS_CRDS_DIR:-$REPO_ROOT/../shared/crds}"

t0=$(date +%s%N)
elapsed() { printf '%d.%01ds' $((($(date +%s%N) - t0) / 1000000000)) $((($(date +%s%N) - t0) / 100000000 % 10)); }

RIG_CLUSTER="${RIG_CLUSTER:-0}"
NODE_IP=""
if [[ $RIG_CLUSTER == 1 ]]; then
  NODE_IP=$(rig_node_ip) || { rig_log "no global IPv4 address for the node"; exit 1; }
fi

rig_lock
if rig_healthy "" && [[ $(rig_mode) == "$RIG_CLUSTER" ]]; then
  rig_log "rig already up ($RIG_DIR/env), checked in $(elapsed)"
  exit 0
fi
# Leftovers of a crashed or half-started rig: clear them first.
rig_stop

etcd_bin=$("$here/build-servers.sh" etcd)
kube_bin=$("$here/build-servers.sh" kube-apiserver)
ferretdb_bin=$("$here/build-servers.sh" ferretdb)
for cmd in redis-server redis-cli prometheus prometheus-pushgateway openssl curl python3 setpriv; do
  command -v "$cmd" >/dev/null || { rig_log "missing $cmd: run tests/rig/install.sh"; exit 1; }
done
pg_bin=$(rig_pg_bin) || { rig_log "no PostgreSQL server binaries: run tests/rig/install.sh"; exit 1; }
# PostgreSQL refuses to run as root: as root, it runs as Debian's postgres
# user (the package creates it); otherwise as whoever runs the rig.
as_pg=()
if ((EUID == 0)); then
  id postgres >/dev/null 2>&1 || { rig_log "no postgres user: run tests/rig/install.sh"; exit 1; }
  as_pg=(setpriv --reuid=postgres --regid=postgres --init-groups --)
fi
[[ -d $CRDS_DIR/kubedb && -d $CRDS_DIR/keda ]] || {
  rig_log "no CRDs under $CRDS_DIR (set DBAAS_CRDS_DIR)"
  exit 1
}

mkdir -p "$RIG_DIR"/{pids,logs,pki,redis,prometheus}
mkdir -m 700 "$RIG_DIR/etcd" # etcd warns about anything looser
# PostgreSQL's data and socket: owner-only (clients connect without a
# password, so only root and that user may reach the socket).
mkdir -m 700 "$RIG_DIR/postgres"
if ((EUID == 0)); then
  chown postgres: "$RIG_DIR/postgres"
  if ! "${as_pg[@]}" test -w "$RIG_DIR/postgres"; then
    # A parent of the rig dir is closed to the postgres user (a checkout
    # under /root, say): the data goes to /tmp, linked from the rig dir
    # (rig_stop removes both).
    pg_tmp=$(mktemp -d /tmp/dbaas-rig-postgres.XXXXXX)
    chown postgres: "$pg_tmp"
    rmdir "$RIG_DIR/postgres" && ln -s "$pg_tmp" "$RIG_DIR/postgres"
  fi
fi
PG_DIR=$(readlink -f "$RIG_DIR/postgres") # the postgres user may not pass through the link
: >"$RIG_DIR/logs/openssl.log"

# On any failure: show the failing server's log and stop what was started.
failed_server=""
on_exit() {
  local rc=$?
  ((rc == 0)) && return
  if [[ -n $failed_server ]]; then
    rig_log "--- last lines of $RIG_DIR/logs/$failed_server.log"
    tail -n 25 "$RIG_DIR/logs/$failed_server.log" >&2 || true
  fi
  rig_log "rig failed to come up; stopping what was started"
  rig_stop
}
trap on_exit EXIT

# Free ports, all taken in one go so they are distinct; kernel-chosen
# ephemeral ports make clashes between parallel rigs unlikely.
# PostgreSQL takes no TCP port, but its socket is named after PG_PORT.
read -r ETCD_PORT ETCD_PEER_PORT KUBE_PORT MONGO_PORT REDIS_PORT PUSHGATEWAY_PORT PROMETHEUS_PORT PG_PORT < <(
  python3 -c '
import socket
socks = [socket.socket() for _ in range(8)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))'
)
cat >"$RIG_DIR/ports" <<EOF
ETCD_PORT=$ETCD_PORT
ETCD_PEER_PORT=$ETCD_PEER_PORT
KUBE_PORT=$KUBE_PORT
MONGO_PORT=$MONGO_PORT
REDIS_PORT=$REDIS_PORT
PUSHGATEWAY_PORT=$PUSHGATEWAY_PORT
PROMETHEUS_PORT=$PROMETHEUS_PORT
PG_PORT=$PG_PORT
EOF
printf 'PG_DIR=%q\n' "$PG_DIR" >>"$RIG_DIR/ports"
if [[ $RIG_CLUSTER == 1 ]]; then
  # Other names than the variables here: rig_healthy sources this file.
  printf 'CLUSTER_MODE=1\nNODE_ADDRESS=%s\n' "$NODE_IP" >>"$RIG_DIR/ports"
fi
# Where pods must reach the servers too (cluster mode), 127.0.0.1 otherwise.
pod_reachable=127.0.0.1
[[ $RIG_CLUSTER == 1 ]] && pod_reachable=0.0.0.0

# start NAME CMD...: detached in its own session (survives this script and
# whoever kills our process group); fd 9 (the lock) is not inherited.
start() {
  local name=$1
  shift
  setsid "$@" >"$RIG_DIR/logs/$name.log" 2>&1 </dev/null 9>&- &
  record_pid "$name" $!
}

# wait_for NAME TIMEOUT_S CMD...: poll CMD until it succeeds, failing early
# if the server died.
wait_for() {
  local name=$1 timeout=$2 deadline
  shift 2
  deadline=$(($(date +%s) + timeout))
  until "$@" >/dev/null 2>&1; do
    if ! pid_alive "$name"; then
      failed_server=$name
      rig_log "$name exited during start-up"
      return 1
    fi
    if (($(date +%s) > deadline)); then
      failed_server=$name
      rig_log "$name not ready after ${timeout}s"
      return 1
    fi
    sleep 0.2
  done
  rig_log "$name: $1 ok ($(elapsed))"
}

# --- start everything that needs no preparation -----------------------------
# --unsafe-no-fsync: test data, and fsync dominates etcd latency on CI disks.
start etcd "$etcd_bin" --name rig --data-dir "$RIG_DIR/etcd" \
  --listen-client-urls "http://127.0.0.1:$ETCD_PORT" \
  --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
  --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-cluster "rig=http://127.0.0.1:$ETCD_PEER_PORT" \
  --unsafe-no-fsync

# PostgreSQL, FerretDB's store. UTF8 and the C locale: FerretDB refuses
# others. Tuned for a throwaway test store: no fsync, asynchronous commits
# and no full-page writes (a crash may lose or corrupt data, which the rig
# deletes at down anyway); no JIT (compiling costs more than the short
# queries it would speed up); a plan per execution, so a statement FerretDB
# prepared while its table was small keeps using the indexes (see the GIN
# indexes below). Enough connections for the rig's FerretDB and the tests'
# private ones (each pools up to 50).
(cd "$PG_DIR" && "${as_pg[@]}" "$pg_bin/initdb" -D "$PG_DIR/data" --username=postgres \
  --auth=trust --encoding=UTF8 --locale=C --no-sync) >"$RIG_DIR/logs/postgres-setup.log" 2>&1 || {
  failed_server=postgres-setup
  rig_log "initdb failed"
  exit 1
}
start postgres "${as_pg[@]}" "$pg_bin/postgres" -D "$PG_DIR/data" \
  -c listen_addresses= -c unix_socket_directories="$PG_DIR" -c port="$PG_PORT" \
  -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c jit=off \
  -c plan_cache_mode=force_custom_plan -c max_connections=300

redis_conf=()
if [[ $RIG_CLUSTER == 1 ]]; then
  # Reachable from pods: a generated password (Redis refuses non-loopback
  # clients without one), in a config file rather than on the command line.
  (umask 077 && openssl rand -hex 24 >"$RIG_DIR/redis/password")
  printf 'requirepass %s\n' "$(<"$RIG_DIR/redis/password")" >"$RIG_DIR/redis/redis.conf"
  chmod 600 "$RIG_DIR/redis/redis.conf"
  redis_conf=("$RIG_DIR/redis/redis.conf")
fi
start redis redis-server "${redis_conf[@]}" --bind 127.0.0.1 ${NODE_IP:+"$NODE_IP"} --port "$REDIS_PORT" \
  --save '' --appendonly no --daemonize no --dir "$RIG_DIR/redis" --logfile ''

# --web.enable-admin-api lets tests wipe pushed groups between cases.
start pushgateway prometheus-pushgateway \
  --web.listen-address="$pod_reachable:$PUSHGATEWAY_PORT" --web.enable-admin-api

# Pushgateway keeps the labels its clients pushed (honor_labels); 1 s
# intervals so tests see pushes quickly.
cat >"$RIG_DIR/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: pushgateway
    honor_labels: true
    static_configs:
      - targets: ['127.0.0.1:$PUSHGATEWAY_PORT']
EOF
if [[ $RIG_CLUSTER == 1 ]]; then
  # Pods annotated prometheus.io/scrape (the API). Debian's Prometheus has
  # no Kubernetes service discovery: cluster-up.sh keeps this file of
  # targets current from the apiserver. Pod IPs are routable from the host
  # over the node's bridge.
  echo '[]' >"$RIG_DIR/pod-targets.json"
  cat >>"$RIG_DIR/prometheus.yml" <<EOF
  - job_name: kubernetes-pods
    file_sd_configs:
      - files: ['$RIG_DIR/pod-targets.json']
        refresh_interval: 5s
EOF
fi
start prometheus prometheus --config.file="$RIG_DIR/prometheus.yml" \
  --storage.tsdb.path="$RIG_DIR/prometheus" \
  --web.listen-address="127.0.0.1:$PROMETHEUS_PORT" \
  --web.enable-admin-api --web.enable-lifecycle

# --- certificates for kube-apiserver (as envtest makes them) -----------------
pki=$RIG_DIR/pki
cat >"$pki/openssl.cnf" <<'EOF'
[req]
distinguished_name = dn
prompt = no
[dn]
[ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign,digitalSignature
subjectKeyIdentifier = hash
[serving]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1,DNS:localhost,IP:10.0.0.1
authorityKeyIdentifier = keyid
[client]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = clientAuth
authorityKeyIdentifier = keyid
EOF
if [[ $RIG_CLUSTER == 1 ]]; then
  # Pods reach the apiserver as kubernetes.default (10.0.0.1) and the node
  # reaches it on its own address.
  sed -i "s#^subjectAltName = IP:127.0.0.1,DNS:localhost,IP:10.0.0.1\$#&,IP:$NODE_IP,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local#" "$pki/openssl.cnf"
fi
ossl() { openssl "$@" 2>>"$RIG_DIR/logs/openssl.log"; }
ossl req -x509 -config "$pki/openssl.cnf" -extensions ca -newkey rsa:2048 -nodes \
  -keyout "$pki/ca.key" -out "$pki/ca.crt" -days 3650 -subj "/CN=dbaas-rig-ca"
# sign NAME SUBJECT EXTENSIONS
sign() {
  ossl req -new -config "$pki/openssl.cnf" -newkey rsa:2048 -nodes \
    -keyout "$pki/$1.key" -out "$pki/$1.csr" -subj "$2"
  ossl x509 -req -in "$pki/$1.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" \
    -set_serial "0x$(openssl rand -hex 8)" -days 3650 \
    -extfile "$pki/openssl.cnf" -extensions "$3" -out "$pki/$1.crt"
}
sign serving "/CN=kube-apiserver" serving
sign admin "/O=system:masters/CN=admin" client
ossl genrsa -out "$pki/sa.key" 2048

b64() { base64 -w0 <"$1"; }
cat >"$RIG_DIR/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
  - name: rig
    cluster:
      server: https://127.0.0.1:$KUBE_PORT
      certificate-authority-data: $(b64 "$pki/ca.crt")
users:
  - name: admin
    user:
      client-certificate-data: $(b64 "$pki/admin.crt")
      client-key-data: $(b64 "$pki/admin.key")
contexts:
  - name: rig
    context:
      cluster: rig
      user: admin
      namespace: default
current-context: rig
EOF
chmod 600 "$RIG_DIR/kubeconfig"

wait_for etcd 30 curl -sf -m 1 "http://127.0.0.1:$ETCD_PORT/health"
wait_for postgres 30 "$pg_bin/pg_isready" -q -h "$PG_DIR" -p "$PG_PORT" -U postgres
# FerretDB 1.24 pushes an equality filter down as `_jsonb->'f' @> '"v"'`
# (containment, for MongoDB's array semantics), which the btree indexes it
# creates on `_jsonb->'f'` cannot serve: every find, update or delete by
# `_id` would scan its table. A GIN index on the same expression serves @>,
# so an event trigger adds one beside each btree index FerretDB creates (on
# its first key, a top-level field); without fastupdate, whose pending list
# every lookup would scan until a vacuum. In template1, so the database
# below and the tests' own databases have it.
failed_server=postgres-setup # for on_exit, should the next two fail
"$pg_bin/psql" -h "$PG_DIR" -p "$PG_PORT" -U postgres -d template1 -X -q -v ON_ERROR_STOP=1 \
  >>"$RIG_DIR/logs/postgres-setup.log" 2>&1 <<'SQL'
CREATE FUNCTION rig_gin_beside_btree() RETURNS event_trigger LANGUAGE plpgsql AS $$
DECLARE
  idx record;
BEGIN
  FOR idx IN
    SELECT i.indrelid::regclass AS tbl, pg_get_indexdef(i.indexrelid, 1, true) AS key
    FROM pg_event_trigger_ddl_commands() c
    JOIN pg_index i ON i.indexrelid = c.objid
    JOIN pg_class ic ON ic.oid = i.indexrelid
    JOIN pg_am am ON am.oid = ic.relam
    WHERE c.command_tag = 'CREATE INDEX' AND am.amname = 'btree'
  LOOP
    -- e.g. (_jsonb -> '_id'::text)
    IF idx.key ~ '^\(_jsonb -> ''[^'']*''::text\)$' THEN
      EXECUTE format('CREATE INDEX ON %s USING gin (%s) WITH (fastupdate = off)', idx.tbl, idx.key);
    END IF;
  END LOOP;
END
$$;
CREATE EVENT TRIGGER rig_gin_beside_btree ON ddl_command_end
  WHEN TAG IN ('CREATE INDEX') EXECUTE FUNCTION rig_gin_beside_btree();
SQL
"$pg_bin/createdb" -h "$PG_DIR" -p "$PG_PORT" -U postgres ferretdb >>"$RIG_DIR/logs/postgres-setup.log" 2>&1
failed_server=""
# The socket's directory as a URL query value (percent-encoded).
pg_host=$(python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$PG_DIR")
start ferretdb env FERRETDB_LISTEN="$pod_reachable:$MONGO_PORT" \
  FERRETDB_POSTGRESQL_URL="postgres://postgres@/ferretdb?host=$pg_host&port=$PG_PORT" "$ferretdb_bin"

if [[ $RIG_CLUSTER == 1 ]]; then
  # A real node: the kubernetes Service points at the node's address (the
  # lease reconciler keeps it), kubelets are authorized by the Node
  # authorizer, pods get service-account tokens, and `kubectl logs/exec`
  # reach the kubelet with the admin client certificate.
  kube_mode_flags=(
    --bind-address=0.0.0.0 --advertise-address="$NODE_IP"
    --authorization-mode=Node,RBAC
    --enable-admission-plugins=NodeRestriction
    --kubelet-client-certificate="$pki/admin.crt" --kubelet-client-key="$pki/admin.key"
    --kubelet-certificate-authority="$pki/ca.crt"
    --kubelet-preferred-address-types=InternalIP # the node's name does not resolve
    --service-account-issuer=https://kubernetes.default.svc.cluster.local
    # Who wrote KubeDB objects (tests check the worker's ServiceAccount).
    --audit-policy-file="$pki/audit-policy.yaml" --audit-log-path="$RIG_DIR/logs/audit.log"
    --audit-log-format=json
  )
  cat >"$pki/audit-policy.yaml" <<'EOF'
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: Metadata
    verbs: [create, update, patch, delete]
    resources:
      - group: kubedb.com
      - group: ops.kubedb.com
  - level: None
EOF
else
  kube_mode_flags=(
    --bind-address=127.0.0.1 --advertise-address=127.0.0.1
    --authorization-mode=RBAC
    --disable-admission-plugins=ServiceAccount
    --service-account-issuer=https://127.0.0.1
    --endpoint-reconciler-type=none # loopback endpoints are invalid: it would retry every 10 s
  )
fi
start kube-apiserver "$kube_bin" \
  --etcd-servers="http://127.0.0.1:$ETCD_PORT" \
  --secure-port="$KUBE_PORT" \
  --cert-dir="$pki" --tls-cert-file="$pki/serving.crt" --tls-private-key-file="$pki/serving.key" \
  --client-ca-file="$pki/ca.crt" \
  --service-cluster-ip-range=10.0.0.0/24 \
  --service-account-key-file="$pki/sa.key" \
  --service-account-signing-key-file="$pki/sa.key" \
  --allow-privileged=true \
  "${kube_mode_flags[@]}"

mongo_ping_port() { mongo_ping "$MONGO_PORT"; }
redis_ping() { [[ $(rig_redis_cli -h 127.0.0.1 -p "$REDIS_PORT" ping) == PONG ]]; }
wait_for ferretdb 30 mongo_ping_port
wait_for redis 30 redis_ping
wait_for pushgateway 30 curl -sf -m 1 "http://127.0.0.1:$PUSHGATEWAY_PORT/-/ready"
wait_for prometheus 60 curl -sf -m 1 "http://127.0.0.1:$PROMETHEUS_PORT/-/ready"

kube_ready() { [[ $(kube_curl -m 2 "https://127.0.0.1:$KUBE_PORT/readyz") == ok ]]; }
wait_for kube-apiserver 120 kube_ready

# --- CRDs: server-side apply (the mongodbs CRD is ~2 MB; client-side apply's
# last-applied annotation would not fit), in parallel -----------------------
crd_files=()
for f in "$CRDS_DIR"/kubedb/*.yaml "$CRDS_DIR"/keda/*.yaml; do
  [[ -f $f ]] && crd_files+=("$f")
done
mkdir -p "$RIG_DIR/crds"
declare -A crd_job=()
crd_names=()
for f in "${crd_files[@]}"; do
  # metadata.name, first two-space-indented name under the top-level metadata
  name=$(awk '/^metadata:/{m=1;next} m&&/^[^ ]/{m=0} m&&/^  name:/{print $2; exit}' "$f")
  [[ -n $name ]] || { rig_log "no metadata.name in $f"; exit 1; }
  crd_names+=("$name")
  kube_curl -m 120 -o "$RIG_DIR/crds/$name.json" -w '%{http_code}' -X PATCH \
    -H 'Content-Type: application/apply-patch+yaml' --data-binary "@$f" \
    "https://127.0.0.1:$KUBE_PORT/apis/apiextensions.k8s.io/v1/customresourcedefinitions/$name?fieldManager=dbaas-rig&force=true" \
    >"$RIG_DIR/crds/$name.code" &
  crd_job[$name]=$!
done
for name in "${crd_names[@]}"; do
  code=""
  wait "${crd_job[$name]}" && code=$(<"$RIG_DIR/crds/$name.code")
  if [[ $code != 200 && $code != 201 ]]; then
    rig_log "applying CRD $name failed (HTTP ${code:-none}):"
    head -c 2000 "$RIG_DIR/crds/$name.json" >&2 || true
    echo >&2
    exit 1
  fi
done
rig_log "applied ${#crd_names[@]} CRDs ($(elapsed))"

# Discovery lists a CRD's resource only once it is Established: a cheap
# probe to poll. Then one check of the conditions themselves (a ~9 MB list).
crds_discovered() {
  kube_curl -m 5 -H 'Accept: application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList' \
    "https://127.0.0.1:$KUBE_PORT/apis" | python3 -c '
import json, sys
have = {r["resource"] + "." + g["metadata"]["name"]
        for g in json.load(sys.stdin)["items"]
        for v in g["versions"] for r in v["resources"]}
sys.exit(0 if set(sys.argv[1:]) <= have else 1)' "${crd_names[@]}"
}
crds_established() {
  kube_curl -m 10 "https://127.0.0.1:$KUBE_PORT/apis/apiextensions.k8s.io/v1/customresourcedefinitions" |
    python3 -c '
import json, sys
ok = {i["metadata"]["name"] for i in json.load(sys.stdin)["items"]
      if any(c["type"] == "Established" and c["status"] == "True"
             for c in i.get("status", {}).get("conditions", []))}
sys.exit(0 if set(sys.argv[1:]) <= ok else 1)' "${crd_names[@]}" || { sleep 1; return 1; }
}
# Objects go into "default", which the apiserver creates shortly after start.
default_ns() { kube_curl -sf -m 5 "https://127.0.0.1:$KUBE_PORT/api/v1/namespaces/default"; }
wait_for kube-apiserver 60 crds_discovered
wait_for kube-apiserver 60 crds_established
wait_for kube-apiserver 60 default_ns
rig_log "CRDs established, namespace default present ($(elapsed))"

# --- env file: written last, atomically; its presence means "up" -----------
{
  printf 'export RIG_DIR=%q\n' "$RIG_DIR"
  printf 'export KUBECONFIG=%q\n' "$RIG_DIR/kubeconfig"
  printf 'export MONGODB_URI=%q\n' "mongodb://127.0.0.1:$MONGO_PORT/"
  if [[ -s $RIG_DIR/redis/password ]]; then
    printf 'export REDIS_URL=%q\n' "redis://:$(<"$RIG_DIR/redis/password")@127.0.0.1:$REDIS_PORT/"
  else
    printf 'export REDIS_URL=%q\n' "redis://127.0.0.1:$REDIS_PORT/"
  fi
  printf 'export PROMETHEUS_URL=%q\n' "http://127.0.0.1:$PROMETHEUS_PORT"
  printf 'export PUSHGATEWAY_URL=%q\n' "http://127.0.0.1:$PUSHGATEWAY_PORT"
  printf 'export RIG_POSTGRES_HOST=%q\n' "$PG_DIR"
  printf 'export RIG_POSTGRES_PORT=%q\n' "$PG_PORT"
  if [[ $RIG_CLUSTER == 1 ]]; then printf 'export RIG_NODE_IP=%q\n' "$NODE_IP"; fi
} >"$RIG_DIR/env.tmp"
mv "$RIG_DIR/env.tmp" "$RIG_DIR/env"
trap - EXIT
rig_log "rig up in $(elapsed); source $RIG_DIR/env"
