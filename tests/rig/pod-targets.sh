#!/usr/bin/env bash
# Prometheus file service discovery for the cluster rig (Debian's
# Prometheus has no Kubernetes discovery): every 5 s, writes the running
# pods annotated prometheus.io/scrape=true as targets into
# $RIG_DIR/pod-targets.json. Started and stopped by cluster-up/down.sh.
set -euo pipefail
: "${RIG_DIR:?}"
while true; do
  if kubectl --kubeconfig "$RIG_DIR/kubeconfig" get pods -A -o json >"$RIG_DIR/pods.json.tmp" 2>/dev/null; then
    python3 - "$RIG_DIR" <<'PY'
import json, os, sys
d = sys.argv[1]
pods = json.load(open(os.path.join(d, "pods.json.tmp")))["items"]
groups = []
for p in pods:
    a = p["metadata"].get("annotations") or {}
    ip = p.get("status", {}).get("podIP")
    if a.get("prometheus.io/scrape") != "true" or not ip or p["status"].get("phase") != "Running":
        continue
    groups.append({
        "targets": [f'{ip}:{a.get("prometheus.io/port", "80")}'],
        "labels": {
            "__metrics_path__": a.get("prometheus.io/path", "/metrics"),
            "namespace": p["metadata"]["namespace"],
            "pod": p["metadata"]["name"],
        },
    })
tmp = os.path.join(d, "pod-targets.json.tmp")
json.dump(groups, open(tmp, "w"))
os.replace(tmp, os.path.join(d, "pod-targets.json"))
PY
  fi
  sleep 5
done
