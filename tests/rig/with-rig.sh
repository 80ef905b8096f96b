#!/usr/bin/env bash
# Runs a command with the test rig up: installs what the rig needs, brings
# it up if it is down, exports its settings (target/rig/env), runs the
# command, and tears down the rig only if this script started it.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bash "$here/install.sh"
started=0
if ! bash "$here/status.sh" >/dev/null 2>&1; then
  bash "$here/up.sh"
  started=1
fi
trap '[[ $started == 1 ]] && bash "$here/down.sh"' EXIT
# shellcheck source=/dev/null
source "${RIG_DIR:-$here/../../target/rig}/env"
"$@"
