#!/usr/bin/env bash
# Builds the rig's Go servers (kube-apiserver, etcd, FerretDB) from the Go
# module proxy into ~/.cache/dbaas-rig/<name>-<version>/, once per version.
#
# Upstream `go install` does not work for any of them (kube-apiserver's
# go.mod has replace directives; FerretDB panics without a generated
# version file), so each is built from a tiny wrapper module whose main
# calls the upstream entry point.
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-v1.32.13}"
ETCD_VERSION="${ETCD_VERSION:-v3.5.35}"
FERRETDB_VERSION="${FERRETDB_VERSION:-v1.24.2}"
CACHE="${DBAAS_RIG_CACHE:-$HOME/.cache/dbaas-rig}"
export GOFLAGS="-mod=mod"
export CGO_ENABLED=0

log() { printf '[build-servers] %s\n' "$*" >&2; }

# build NAME VERSION MAIN_GO GO_MOD_SETUP_FN [EXTRA_LDFLAGS]
build() {
  local name=$1 version=$2 main_go=$3 setup=$4 ldflags="-s -w ${5:-}"
  local out="$CACHE/$name-$version/$name"
  if [[ -x $out ]]; then
    echo "$out"
    return
  fi
  local src="$CACHE/src/$name-$version"
  rm -rf "$src" && mkdir -p "$src" "$(dirname "$out")"
  log "building $name $version (first run on this machine only)"
  printf '%s\n' "$main_go" >"$src/main.go"
  (cd "$src" && "$setup" "$version" && go build -trimpath -ldflags="$ldflags" -o "$out.tmp" . && mv "$out.tmp" "$out")
  echo "$out"
}

setup_kube_apiserver() {
  local v=$1 minor=${1#v1.}
  go mod init rig/kube-apiserver >/dev/null 2>&1
  local gomod
  gomod=$(go mod download -json "k8s.io/kubernetes@$v" | sed -n 's/.*"GoMod": "\(.*\)",*/\1/p')
  {
    echo "require k8s.io/kubernetes $v"
    # Every staging module upstream replaces with a local path is published
    # as k8s.io/<m> v0.<minor>.
    sed -n 's#^[[:space:]]*\(k8s.io/[a-z0-9-]*\) => ./staging/.*#\1#p' "$gomod" |
      while read -r m; do echo "replace $m => $m v0.$minor"; done
  } >>go.mod
  go mod tidy >/dev/null
}


setup_etcd() {
  go mod init rig/etcd >/dev/null 2>&1
  go get "go.etcd.io/etcd/server/v3@$1" >/dev/null
  go mod tidy >/dev/null
}

setup_ferretdb() {
  go mod init rig/ferretdb >/dev/null 2>&1
  go get "github.com/FerretDB/FerretDB@$1" >/dev/null
  go mod tidy >/dev/null
}

KUBE_MAIN='package main

import (
	"os"

	"k8s.io/component-base/cli"
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

func main() { os.Exit(cli.Run(app.NewAPIServerCommand())) }'

# Without these, /version reports v0.0.0-master (normally stamped by
# Kubernetes' own build scripts).
kube_ldflags() {
  local v=$1 mm=${1#v} pkg=k8s.io/component-base/version
  echo "-X $pkg.gitVersion=$v -X $pkg.gitMajor=${mm%%.*} -X $pkg.gitMinor=$(cut -d. -f2 <<<"$mm") -X $pkg.gitTreeState=clean"
}

ETCD_MAIN='package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }'

# FerretDB embedded as a library: listens where FERRETDB_LISTEN says and
# stores data under FERRETDB_DIR with the SQLite backend.
FERRETDB_MAIN='package main

import (
	"context"
	"log"
	"os"
	"os/signal"
	"syscall"

	"github.com/FerretDB/FerretDB/ferretdb"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	f, err := ferretdb.New(&ferretdb.Config{
		Listener: ferretdb.ListenerConfig{TCP: os.Getenv("FERRETDB_LISTEN")},
		Handler:  "sqlite",
		SQLiteURL: "file:" + os.Getenv("FERRETDB_DIR") + "/",
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := f.Run(ctx); err != nil && ctx.Err() == nil {
		log.Fatal(err)
	}
}'

what="${1:-all}"
case $what in
  kube-apiserver) build kube-apiserver "$K8S_VERSION" "$KUBE_MAIN" setup_kube_apiserver "$(kube_ldflags "$K8S_VERSION")" ;;
  etcd) build etcd "$ETCD_VERSION" "$ETCD_MAIN" setup_etcd ;;
  ferretdb) build ferretdb "$FERRETDB_VERSION" "$FERRETDB_MAIN" setup_ferretdb ;;
  all)
    build etcd "$ETCD_VERSION" "$ETCD_MAIN" setup_etcd
    build ferretdb "$FERRETDB_VERSION" "$FERRETDB_MAIN" setup_ferretdb
    build kube-apiserver "$K8S_VERSION" "$KUBE_MAIN" setup_kube_apiserver "$(kube_ldflags "$K8S_VERSION")"
    ;;
  *) echo "usage: $0 [kube-apiserver|etcd|ferretdb|all]" >&2; exit 2 ;;
esac
