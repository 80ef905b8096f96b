#!/usr/bin/env bash
# Reports each rig server's health; exits 0 only if the whole rig is up.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=lib.sh
source "$here/lib.sh"
rig_healthy -v
