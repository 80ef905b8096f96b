#!/usr/bin/env bash
# Stops every server recorded in $RIG_DIR (default <repo>/target/rig): TERM,
# then KILL after 5 s; removes the env file and data dirs, keeps logs/.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=lib.sh
source "$here/lib.sh"
rig_lock
rig_stop
rig_log "rig at $RIG_DIR is down"
