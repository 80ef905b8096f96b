#!/usr/bin/env bash
# Installs what the test rig needs: Debian packages (only when one is
# missing) and the Go-built servers (build-servers.sh caches them, so a
# second run costs nothing). Idempotent; safe to run before every test run.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
log() { printf '[rig-install] %s\n' "$*" >&2; }

# command -> Debian package providing it
declare -A pkg_for=(
  [redis-server]=redis-server
  [redis-cli]=redis-tools
  [prometheus]=prometheus
  [prometheus-pushgateway]=prometheus-pushgateway
  [openssl]=openssl
  [curl]=curl
  [python3]=python3
  [flock]=util-linux
  [setsid]=util-linux
  [setpriv]=util-linux # runs PostgreSQL as the postgres user when root
  # The web console's browser tests (tests/console): headless Chromium
  # driven over WebDriver.
  [chromium]=chromium
  [chromedriver]=chromium-driver
)

missing=()
for cmd in "${!pkg_for[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${pkg_for[$cmd]}")
done
# PostgreSQL, FerretDB's store: the rig runs the server binaries itself
# (up.sh), never the package's cluster or service. They are off PATH.
compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null || missing+=(postgresql)

if ((${#missing[@]})); then
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
  log "installing: ${missing[*]}"
  sudo=()
  ((EUID == 0)) || sudo=(sudo)

  # The packages' postinst scripts would start system redis (6379),
  # prometheus (9090) and postgresql (5432) services. The rig runs its own
  # instances, so forbid service starts during the install (policy-rc.d
  # exit 101) unless the machine already has a policy of its own.
  policy=/usr/sbin/policy-rc.d
  own_policy=0
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
    "${sudo[@]}" chmod 755 "$policy"
    own_policy=1
  fi
  cleanup() { ((own_policy)) && "${sudo[@]}" rm -f "$policy"; return 0; }
  trap cleanup EXIT

  "${sudo[@]}" apt-get update -q
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -q --no-install-recommends "${missing[@]}"

  # Where systemd runs, keep the freshly installed services from starting at
  # boot, and stop any that started anyway.
  if [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null; then
    for unit in redis-server prometheus prometheus-pushgateway postgresql; do
      if printf '%s\n' "${missing[@]}" | grep -qx "$unit"; then
        "${sudo[@]}" systemctl disable --now "$unit" >/dev/null 2>&1 || true
      fi
    done
  fi
else
  log "Debian packages already present"
fi

# The Go toolchain (>= 1.23; Debian 12's golang is too old) is needed only
# while a server binary is not cached yet.
command -v go >/dev/null || log "warning: no 'go' on PATH; building will fail unless binaries are cached"
log "building/locating servers (cached after the first run)"
"$here/build-servers.sh" all >/dev/null
# kustomize renders the manifests in the deployment tests.
bash "$here/install-kustomize.sh" >/dev/null
log "done"
