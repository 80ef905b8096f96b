# Recipes for the DBaaS control plane. `just --list` shows them.

set shell := ["bash", "-euo", "pipefail", "-c"]

# Where the KubeDB and KEDA CRDs are (users without ../shared: see README).
export DBAAS_CRDS_DIR := env_var_or_default("DBAAS_CRDS_DIR", justfile_directory() / "../shared/crds")

# The whole control plane in one process, embedded store, queue and cluster.
dev *ARGS:
    cargo run --release -p dbaas-local -- {{ARGS}}

# The command-line client, e.g. `just ctl db list` (DBAAS_URL, DBAAS_API_KEY or a profile: see README).
ctl *ARGS:
    cargo run -q -p dbaasctl -- {{ARGS}}

# Every test, as root: the lints; the workspace's tests with the rig up
# (installed and started if down, torn down after if this started it); then
# test-cluster, on an image of that same debug build. The node's Go binaries
# build in the background from the start, at the lowest priority (about an
# hour of CPU on a new machine, then cached in ~/.cache/dbaas-rig).
# Run every test: lints, the workspace on the rig, then the functions on a real node with KEDA.
test:
    #!/usr/bin/env bash
    set -euo pipefail
    mkdir -p target
    # Its own process group, so that stopping early stops the Go compilers too.
    setsid bash tests/rig/build-servers.sh cluster >target/cluster-build.log 2>&1 &
    builds=$!
    trap 'kill -- -$builds 2>/dev/null || true' EXIT
    {{just_executable()}} lint
    status=0
    bash tests/rig/with-rig.sh bash -c 'cargo build --workspace --bins && cargo test --workspace --no-fail-fast' || status=$?
    if ! wait "$builds"; then
        tail -n 40 target/cluster-build.log >&2
        echo "building the node's binaries failed (target/cluster-build.log)" >&2
        exit 1
    fi
    DBAAS_BIN_DIR="${CARGO_TARGET_DIR:-$PWD/target}/debug" {{just_executable()}} test-cluster || status=$?
    exit $status

# Start the test rig (Redis, FerretDB, kube-apiserver + etcd with the CRDs, Prometheus, Pushgateway).
rig-up:
    bash tests/rig/install.sh
    bash tests/rig/up.sh

# Stop the test rig.
rig-down:
    bash tests/rig/down.sh

# Download the pinned upstream CRDs into DIR (needs internet).
fetch-crds DIR="crds":
    bash tests/rig/fetch-crds.sh {{DIR}}

# Lints: rustfmt and clippy, warnings as errors.
lint:
    rustup component add rustfmt clippy >/dev/null 2>&1 || true
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings

# Rewrites k8s/base/reconciler-schedule.yaml (schedule, deadlines, Lease
# TTL); rejects intervals cron cannot repeat exactly (sub-minute, 7m, 90m...).
# Set the reconciler's interval: Ns, Nm, Nh, Nd or seconds (RECONCILIATION_INTERVAL).
schedule INTERVAL=env_var_or_default("RECONCILIATION_INTERVAL", "300"):
    python3 k8s/scripts/schedule.py '{{INTERVAL}}'

# Creates the cluster if absent; installs ingress-nginx, KEDA + HTTP add-on,
# the KubeDB CRDs; builds and loads the image; applies k8s/overlays/kind
# (which includes keda/). Needs docker, kubectl and helm.
# Deploy everything to a local kind cluster and print how to reach it.
deploy:
    bash k8s/scripts/kind.sh up

# Delete the local kind cluster that `just deploy` made.
undeploy:
    bash k8s/scripts/kind.sh down

# Benchmarks: API latency with oha on the embedded store; the API on the
# rig's FerretDB at 1, 16 and 64 clients (GET, PATCH, list) beside the same
# queries made straight through the driver, with statuses and leftover
# locks; cold starts, the reconciler at 1k and 10k databases, the worker,
# binary sizes and RSS. Writes target/bench/report.md and report.json.
# `just bench --quick` tries the harness in a minute or two.
bench *ARGS:
    oha="$(bash tests/bench/install-oha.sh)"; OHA="$oha" bash tests/rig/with-rig.sh bash -c 'cargo build --release --workspace --bins && target/release/dbaas-bench "$@"' bench {{ARGS}}

# Crash points (in-process and real SIGKILL), outages of a private FerretDB,
# Redis and kube-apiserver, PATCH races, reconciler exclusivity, schemathesis
# and hostile requests, secrets in logs; `just test` runs them with small
# counts (the DBAAS_FAULT_* / DBAAS_FUZZ_CASES variables raise them).
#
# Fault tests at full counts (200 crash trials, 10k fuzz cases), with summaries.
test-faults:
    #!/usr/bin/env bash
    set -euo pipefail
    mkdir -p target/faults
    rm -f target/faults/summary.txt
    status=0
    DBAAS_FAULT_TRIALS="${DBAAS_FAULT_TRIALS:-200}" \
    DBAAS_FAULT_PROCESS_TRIALS="${DBAAS_FAULT_PROCESS_TRIALS:-24}" \
    DBAAS_FUZZ_CASES="${DBAAS_FUZZ_CASES:-10000}" \
    DBAAS_RACE_PATCHES="${DBAAS_RACE_PATCHES:-1000}" \
    DBAAS_EXCLUSIVITY_ROUNDS="${DBAAS_EXCLUSIVITY_ROUNDS:-40}" \
    DBAAS_EXCLUSIVITY_PROCESS_ROUNDS="${DBAAS_EXCLUSIVITY_PROCESS_ROUNDS:-5}" \
        bash tests/rig/with-rig.sh bash -c 'cargo build --workspace --bins && cargo test -p dbaas-faults --no-fail-fast' || status=$?
    echo
    cat target/faults/summary.txt
    exit $status

# --- A real single-node Kubernetes in the rig (issue 11) ---------------------
# `just test` ends with test-cluster. The cluster rig lives in
# target/rig-cluster (RIG_DIR), apart from the default rig in target/rig.
# Needs root (containerd, kubelet, kube-proxy) and, the first time, about an
# hour of Go builds on two cores (cached under ~/.cache/dbaas-rig).

# Build the cluster layer's binaries (kubelet, controller-manager, scheduler, kube-proxy, CoreDNS, KEDA, HTTP add-on).
cluster-build:
    bash tests/rig/build-servers.sh cluster

# Bring up the rig with a real node, CoreDNS, KEDA and the KEDA HTTP add-on.
cluster-up:
    bash tests/rig/install.sh
    bash tests/rig/cluster-up.sh

# Stop the node and the rig and restore what kubelet changed on the host.
cluster-down:
    bash tests/rig/cluster-down.sh

# Build the image with buildah (no Docker) and import it into the rig's node when it is up.
image:
    bash k8s/scripts/image.sh

# Deploy k8s/overlays/rig to the rig's node (SCHEDULE: e.g. 1m for the reconciler CronJob).
cluster-deploy SCHEDULE="":
    DBAAS_SCHEDULE='{{SCHEDULE}}' KUBECONFIG="${RIG_DIR:-target/rig-cluster}/kubeconfig" bash k8s/scripts/deploy.sh k8s/overlays/rig

# DBAAS_BIN_DIR: build the image from these binaries instead of a release
# musl build (`just test` passes its debug build).
# Cluster rig up, image built and imported, deployed with a 1m schedule, the tests/cluster end-to-end tests, down again.
test-cluster:
    #!/usr/bin/env bash
    set -euo pipefail
    export RIG_DIR="${RIG_DIR:-$PWD/target/rig-cluster}"
    trap 'bash tests/rig/cluster-down.sh' EXIT
    bash tests/rig/install.sh
    bash tests/rig/cluster-up.sh
    bash k8s/scripts/image.sh
    DBAAS_SCHEDULE=1m KUBECONFIG="$RIG_DIR/kubeconfig" bash k8s/scripts/deploy.sh k8s/overlays/rig
    source "$RIG_DIR/env"
    cargo test -p dbaas-cluster-tests -- --ignored --test-threads=1 --nocapture
