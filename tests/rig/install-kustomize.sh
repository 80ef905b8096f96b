#!/usr/bin/env bash
# Installs kustomize (for rendering k8s/ and keda/ in tests) from the Go
# module proxy into ~/.cache/dbaas-rig/kustomize-<version>/, once per
# version, and prints the binary's path. Idempotent: a cached binary costs
# nothing. Called by install.sh; tests/deploy also runs it on its own.
set -euo pipefail

KUSTOMIZE_VERSION="${KUSTOMIZE_VERSION:-v5.7.1}"
CACHE="${DBAAS_RIG_CACHE:-$HOME/.cache/dbaas-rig}"
dir="$CACHE/kustomize-$KUSTOMIZE_VERSION"
out="$dir/kustomize"

log() { printf '[install-kustomize] %s\n' "$*" >&2; }

if [[ -x $out ]]; then
  echo "$out"
  exit 0
fi
command -v go >/dev/null || { log "no 'go' on PATH: cannot build kustomize $KUSTOMIZE_VERSION"; exit 1; }
log "building kustomize $KUSTOMIZE_VERSION (first run on this machine only)"
mkdir -p "$dir"
# A private GOBIN, then an atomic rename: a concurrent or interrupted run
# never leaves a half-written binary at $out.
tmp=$(mktemp -d "$dir/.gobin.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
GOBIN="$tmp" CGO_ENABLED=0 GOFLAGS="-mod=mod" \
  go install -trimpath -ldflags='-s -w' "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION"
mv "$tmp/kustomize" "$out"
echo "$out"
