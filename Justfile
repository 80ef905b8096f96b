# Recipes for the DBaaS control plane. `just --list` shows them.

set shell := ["bash", "-euo", "pipefail", "-c"]

# Where the KubeDB and KEDA CRDs are (users without ../shared: see README).
export DBAAS_CRDS_DIR := env_var_or_default("DBAAS_CRDS_DIR", justfile_directory() / "../shared/crds")

# The whole control plane in one process, embedded store, queue and cluster.
dev *ARGS:
    cargo run --release -p dbaas-local -- {{ARGS}}

# Install what the tests need, bring the rig up if it is down, run every
# test, and tear down what this recipe started.
test:
    #!/usr/bin/env bash
    set -euo pipefail
    bash tests/rig/install.sh
    started=0
    if ! bash tests/rig/status.sh >/dev/null 2>&1; then
        bash tests/rig/up.sh
        started=1
    fi
    trap '[[ $started == 1 ]] && bash tests/rig/down.sh' EXIT
    source target/rig/env
    cargo build --workspace --bins
    cargo test --workspace --no-fail-fast

# Start the test rig (Redis, FerretDB, kube-apiserver+etcd with the CRDs,
# Prometheus, Pushgateway) and write target/rig/env.
rig-up:
    bash tests/rig/install.sh
    bash tests/rig/up.sh

# Stop the test rig.
rig-down:
    bash tests/rig/down.sh

# Download the pinned upstream CRDs into DIR (needs internet).
fetch-crds DIR="crds":
    bash tests/rig/fetch-crds.sh {{DIR}}

# Lints.
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings
