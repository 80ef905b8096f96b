#!/usr/bin/env bash
# Downloads the pinned upstream CRDs the project is tested against into DIR
# (default ./crds), laid out like ../shared/crds: DIR/kubedb and DIR/keda.
# Needs internet access; then `export DBAAS_CRDS_DIR=DIR`.
set -euo pipefail
dir=${1:-crds}
KUBEDB_VERSION=v0.66.0 KEDA_VERSION=v2.20.2 HTTP_ADDON_VERSION=v0.15.0
raw=https://raw.githubusercontent.com
mkdir -p "$dir/kubedb" "$dir/keda"
get() { curl -fsSL --retry 3 -o "$2" "$1"; echo "fetched $2"; }
for e in mongodbs postgreses mysqls mariadbs redises; do
  get "$raw/kubedb/apimachinery/$KUBEDB_VERSION/crds/kubedb.com_$e.yaml" "$dir/kubedb/kubedb.com_$e.yaml"
done
for e in mongodb postgres mysql mariadb redis; do
  get "$raw/kubedb/apimachinery/$KUBEDB_VERSION/crds/ops.kubedb.com_${e}opsrequests.yaml" "$dir/kubedb/ops.kubedb.com_${e}opsrequests.yaml"
  get "$raw/kubedb/apimachinery/$KUBEDB_VERSION/crds/catalog.kubedb.com_${e}versions.yaml" "$dir/kubedb/catalog.kubedb.com_${e}versions.yaml"
done
for c in scaledjobs scaledobjects triggerauthentications clustertriggerauthentications; do
  get "$raw/kedacore/keda/$KEDA_VERSION/config/crd/bases/keda.sh_$c.yaml" "$dir/keda/keda.sh_$c.yaml"
done
for c in httpscaledobjects interceptorroutes; do
  get "$raw/kedacore/http-add-on/$HTTP_ADDON_VERSION/config/crd/bases/http.keda.sh_$c.yaml" "$dir/keda/http.keda.sh_$c.yaml"
done
