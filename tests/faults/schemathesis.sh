#!/usr/bin/env bash
# Property-based fuzzing of the API from its OpenAPI document with
# schemathesis (pinned in requirements.txt, installed once into a venv under
# ~/.cache/dbaas-rig/schemathesis-<version>).
#
#   schemathesis.sh BASE_URL API_KEY ADMIN_TOKEN MAX_EXAMPLES REPORT_DIR [SEED]
#
# Two runs: the tenant routes with the API key, the admin routes with the
# admin token. Exits non-zero on any failed check (a 5xx, a response that
# does not match the document, ...). Prints "schemathesis cases: N" last.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
base=$1 key=$2 admin=$3 examples=$4 report=$5 seed=${6:-$RANDOM}
version=$(sed -n 's/^schemathesis==//p' "$here/requirements.txt")
venv="${DBAAS_RIG_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/dbaas-rig}/schemathesis-$version"
# The newest Python there is: CPython 3.11 before 3.11.9 fails inside
# hypothesis ("AST constructor recursion depth mismatch").
python=python3
for candidate in python3.13 python3.12 "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.1[23]*/bin/python3; do
  if "$candidate" -c 'import sys, venv' >/dev/null 2>&1; then
    python=$candidate
    break
  fi
done
stamp="$(sha256sum "$here/requirements.txt" | cut -c1-16) $("$python" --version 2>&1)"
if [[ ! -x $venv/bin/st || $(cat "$venv/.requirements" 2>/dev/null) != "$stamp" ]]; then
  echo "installing schemathesis $version into $venv with $("$python" --version 2>&1)" >&2
  rm -rf "$venv"
  "$python" -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check -r "$here/requirements.txt" >&2
  echo "$stamp" >"$venv/.requirements"
fi
mkdir -p "$report"
export NO_COLOR=1
status=0
run() {
  local name=$1 token=$2
  shift 2
  "$venv/bin/st" --config-file "$here/schemathesis.toml" run "$base/openapi.json" \
    -H "Authorization: Bearer $token" \
    --max-examples "$examples" --seed "$seed" --workers 2 \
    --checks all --exclude-checks positive_data_acceptance,use_after_free \
    --request-timeout 15 --no-shrink \
    --report junit --report-junit-path "$report/$name.xml" "$@" \
    >"$report/$name.log" 2>&1 || status=1
  tail -n 30 "$report/$name.log" >&2
}
run tenant "$key" --exclude-tag admin
run admin "$admin" --include-tag admin
# "N generated" on the summary's test-case line of each run.
cases=$(sed -n 's/^ *\([0-9][0-9]*\) generated.*/\1/p' "$report/tenant.log" "$report/admin.log" | awk '{s += $1} END {print s + 0}')
echo "schemathesis cases: $cases seed: $seed"
exit $status
