#!/usr/bin/env bash
# Installs the oha HTTP load generator (crates.io, pinned) once, into the
# rig's cache, and prints its path. Idempotent: a second run costs nothing.
set -euo pipefail
version=1.16.0
root="${DBAAS_RIG_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/dbaas-rig}/oha-$version"
if [[ ! -x $root/bin/oha ]]; then
  printf '[bench] installing oha %s into %s (once, a few minutes)\n' "$version" "$root" >&2
  cargo install oha --version "$version" --locked --root "$root" >&2
fi
printf '%s\n' "$root/bin/oha"
