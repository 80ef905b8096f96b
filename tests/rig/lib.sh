# shellcheck shell=bash
# Shared by up.sh, down.sh and status.sh (sourced, not run).
#
# Rig dir layout ($RIG_DIR, default <repo>/target/rig):
#   pids/<name>.pid   "<pid> <start time>"; the pid is also its process group id
#   logs/<name>.log   server output
#   pki/              CA, serving cert, admin client cert, SA key
#   kubeconfig        admin kubeconfig with embedded certs
#   postgres/         PostgreSQL's data (data/) and unix socket, owned by the
#                     user it runs as (a link to /tmp when that user cannot
#                     reach the rig dir)
#   ports             NAME=PORT lines chosen by up.sh
#   env               shell exports for tests; written last by up.sh

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
RIG_DIR="${RIG_DIR:-$REPO_ROOT/target/rig}"
mkdir -p "$RIG_DIR"
RIG_DIR="$(cd "$RIG_DIR" && pwd)" # absolute: it ends up in env and kubeconfig

# Servers in start order. rig_stop stops the clients of another server
# first (kube-apiserver of etcd, FerretDB of PostgreSQL), then the rest.
RIG_SERVERS=(etcd kube-apiserver postgres ferretdb redis pushgateway prometheus)

rig_log() { printf '[rig %s] %s\n' "$(date +%T)" "$*" >&2; }

# proc_info PID: "<state> <start time>" from /proc/PID/stat (the fields
# after the parenthesised command name).
proc_info() {
  local s fields
  { s=$(<"/proc/$1/stat"); } 2>/dev/null || return 1
  read -r -a fields <<<"${s##*) }"
  echo "${fields[0]} ${fields[19]}"
}

# record_pid NAME PID: stores the pid with its start time, so a recycled pid
# is never mistaken for (and never killed as) a rig server.
record_pid() {
  local info
  info=$(proc_info "$2") || info="? 0"
  echo "$2 ${info#* }" >"$RIG_DIR/pids/$1.pid"
}

# rig_pid NAME: the recorded pid.
rig_pid() { local p; read -r p _ <"$RIG_DIR/pids/$1.pid" && echo "$p"; }

# pid_alive NAME: the recorded process still runs (same start time, not a
# zombie).
pid_alive() {
  local f="$RIG_DIR/pids/$1.pid" pid start info
  [[ -s $f ]] || return 1
  read -r pid start <"$f"
  info=$(proc_info "$pid") || return 1
  [[ ${info%% *} != Z && ${info#* } == "$start" ]]
}

# rig_mode: 1 if the rig in $RIG_DIR was started for a real node
# (RIG_CLUSTER=1, see up.sh), 0 otherwise.
rig_mode() {
  local m
  m=$(sed -n 's/^CLUSTER_MODE=//p' "$RIG_DIR/ports" 2>/dev/null)
  echo "${m:-0}"
}

# rig_pg_bin: the directory of Debian's PostgreSQL server binaries (the
# newest installed major version), or RIG_PG_BIN.
rig_pg_bin() {
  local d=${RIG_PG_BIN:-}
  [[ -n $d ]] || d=$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -n1)
  [[ -x $d/postgres ]] && echo "$d"
}

# rig_node_ip: the address a node registers with (kubelet refuses
# loopback): the first global IPv4 address of this machine.
rig_node_ip() {
  local ip
  ip=$(ip -4 -o addr show scope global 2>/dev/null | awk '{print $4}' | cut -d/ -f1 | head -n1)
  [[ -n $ip ]] && echo "$ip"
}

# rig_redis_cli ARGS...: redis-cli with the rig's Redis password, if it has
# one (cluster mode, see up.sh).
rig_redis_cli() {
  if [[ -s $RIG_DIR/redis/password ]]; then
    REDISCLI_AUTH=$(<"$RIG_DIR/redis/password") redis-cli "$@"
  else
    redis-cli "$@"
  fi
}

# Admin client TLS options for curl against the API server.
kube_curl() {
  curl -sS --cacert "$RIG_DIR/pki/ca.crt" --cert "$RIG_DIR/pki/admin.crt" \
    --key "$RIG_DIR/pki/admin.key" "$@"
}

# mongo_ping PORT: send a MongoDB OP_MSG {ping: 1} and expect ok: 1.0.
mongo_ping() {
  python3 - "$1" <<'EOF'
import socket, struct, sys
def bson(doc):
    body = b""
    for k, v in doc.items():
        key = k.encode() + b"\0"
        if isinstance(v, int):
            body += b"\x10" + key + struct.pack("<i", v)
        else:
            s = v.encode() + b"\0"
            body += b"\x02" + key + struct.pack("<i", len(s)) + s
    return struct.pack("<i", len(body) + 5) + body + b"\0"
payload = struct.pack("<I", 0) + b"\0" + bson({"ping": 1, "$db": "admin"})
msg = struct.pack("<iiii", 16 + len(payload), 1, 0, 2013) + payload
try:
    with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2) as s:
        s.sendall(msg)
        data = b""
        while len(data) < 4 or len(data) < struct.unpack("<i", data[:4])[0]:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
except OSError:
    sys.exit(1)
# ok is a double 1.0 in the reply document
sys.exit(0 if b"\x01ok\x00" + struct.pack("<d", 1.0) in data else 1)
EOF
}

# rig_healthy [-v]: every recorded server is alive and answering, and the env
# file exists. With -v, prints one line per server.
rig_healthy() {
  local verbose=${1:-} ok=0 name good
  [[ -s $RIG_DIR/env && -s $RIG_DIR/ports ]] || {
    [[ -n $verbose ]] && echo "rig at $RIG_DIR: not up (no env file)"
    return 1
  }
  # shellcheck disable=SC1091
  source "$RIG_DIR/ports"
  for name in "${RIG_SERVERS[@]}"; do
    good=0
    if pid_alive "$name"; then
      case $name in
        etcd) curl -sf -m 2 "http://127.0.0.1:$ETCD_PORT/health" >/dev/null && good=1 ;;
        kube-apiserver) [[ $(kube_curl -m 2 "https://127.0.0.1:$KUBE_PORT/readyz" 2>/dev/null) == ok ]] && good=1 ;;
        postgres) "$(rig_pg_bin)/pg_isready" -q -t 2 -h "$PG_DIR" -p "$PG_PORT" -U postgres && good=1 ;;
        ferretdb) mongo_ping "$MONGO_PORT" && good=1 ;;
        redis) [[ $(rig_redis_cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null) == PONG ]] && good=1 ;;
        pushgateway) curl -sf -m 2 "http://127.0.0.1:$PUSHGATEWAY_PORT/-/ready" >/dev/null && good=1 ;;
        prometheus) curl -sf -m 2 "http://127.0.0.1:$PROMETHEUS_PORT/-/ready" >/dev/null && good=1 ;;
      esac
    fi
    ((good)) || ok=1
    [[ -n $verbose ]] && printf '%-15s %s (pid %s)\n' "$name" \
      "$( ((good)) && echo healthy || echo DOWN)" "$(rig_pid "$name" 2>/dev/null || echo -)"
  done
  return $ok
}

# stop_servers NAME...: TERM each live one (its whole process group), KILL
# what is left after 5 s.
stop_servers() {
  local name pid i alive=() still
  for name in "$@"; do
    pid_alive "$name" || continue
    pid=$(rig_pid "$name")
    if [[ $name == postgres ]]; then
      # Fast shutdown (INT), to the postmaster alone: TERM would wait for
      # every client to leave, and its children read signals differently.
      kill -INT "$pid" 2>/dev/null || true
    else
      # pid == process group id: servers are started with setsid
      kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    fi
    alive+=("$name")
  done
  for ((i = 0; i < 50 && ${#alive[@]}; i++)); do
    sleep 0.1
    still=()
    for name in "${alive[@]}"; do pid_alive "$name" && still+=("$name"); done
    alive=("${still[@]}")
  done
  for name in "${alive[@]}"; do
    pid=$(rig_pid "$name")
    rig_log "$name (pid $pid) ignored TERM for 5 s; killing"
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
  done
}

# rig_stop: stop every recorded server, then drop pids, env and data. Logs
# stay for post-mortems. Callers hold the rig lock.
rig_stop() {
  rm -f "$RIG_DIR/env" # first: a half-stopped rig must not look up
  # Clients first: etcd waits for the apiserver to disconnect, and FerretDB
  # must not see PostgreSQL go away under it.
  stop_servers kube-apiserver ferretdb
  stop_servers "${RIG_SERVERS[@]}"
  local pg_link
  if [[ -L $RIG_DIR/postgres ]]; then
    pg_link=$(readlink "$RIG_DIR/postgres")
    [[ $pg_link == /tmp/dbaas-rig-postgres.* ]] && rm -rf "$pg_link"
  fi
  rm -rf "$RIG_DIR/pids" "$RIG_DIR/ports" "$RIG_DIR/etcd" "$RIG_DIR/ferretdb" "$RIG_DIR/postgres" \
    "$RIG_DIR/redis" "$RIG_DIR/prometheus" "$RIG_DIR/pki" "$RIG_DIR/kubeconfig" \
    "$RIG_DIR/prometheus.yml" "$RIG_DIR/crds"
}

# Serialises up/down/status on one rig dir; two rig dirs never contend.
rig_lock() {
  exec 9>"$RIG_DIR/.lock"
  flock -w 600 9 || { rig_log "timed out waiting for $RIG_DIR/.lock"; exit 1; }
}
