#!/usr/bin/env bash
# Builds the rig's Go servers (kube-apiserver, etcd, FerretDB) from the Go
# module proxy into ~/.cache/dbaas-rig/<name>-<version>/, once per version.
# `build-servers.sh cluster` adds the opt-in single-node cluster's binaries
# (kubelet, kube-controller-manager, kube-scheduler, kube-proxy, CoreDNS,
# the KEDA operator and the KEDA HTTP add-on); `all` never builds those.
#
# Upstream `go install` does not work for any of them (kube-apiserver's
# go.mod has replace directives; FerretDB panics without a generated
# version file), so each is built from a tiny wrapper module whose main
# calls the upstream entry point.
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-v1.32.13}"
ETCD_VERSION="${ETCD_VERSION:-v3.5.35}"
FERRETDB_VERSION="${FERRETDB_VERSION:-v1.24.2}"
# Builds only for the cluster layer (build-servers.sh cluster).
# k8s.io/endpointslice v0.32.13 is refused by the module proxy (403); the
# package is unchanged between patch releases, so v0.32.12 stands in.
ENDPOINTSLICE_VERSION="${ENDPOINTSLICE_VERSION:-v0.32.12}"
KEDA_VERSION="${KEDA_VERSION:-v2.20.2}"
KEDA_HTTP_VERSION="${KEDA_HTTP_VERSION:-v0.15.0}"
COREDNS_VERSION="${COREDNS_VERSION:-v1.14.7}"
CACHE="${DBAAS_RIG_CACHE:-$HOME/.cache/dbaas-rig}"
export GOFLAGS="-mod=mod"
export CGO_ENABLED=0
# One build cache for every server: the Kubernetes binaries share most of
# their packages, so kubelet after kube-apiserver compiles a fraction.
export GOCACHE="${DBAAS_RIG_GOCACHE:-$CACHE/gocache}"
# Lowest priority: Rust builds and tests share the same two cores.
GO=(nice -n 19 go)

log() { printf '[build-servers] %s\n' "$*" >&2; }

# build NAME VERSION MAIN_GO GO_MOD_SETUP_FN [EXTRA_LDFLAGS] [KEY_MAIN]
# The cache is keyed by NAME and VERSION; with KEY_MAIN=1 also by a hash of
# MAIN_GO, so a changed wrapper main rebuilds (only where that is cheap: a
# new key for the Kubernetes binaries would cost each machine an hour).
build() {
  local name=$1 version=$2 main_go=$3 setup=$4 ldflags="-s -w ${5:-}" key=$2
  [[ ${6:-0} == 1 ]] && key="$version-$(printf '%s\n' "$main_go" | sha256sum | cut -c1-12)"
  local out="$CACHE/$name-$key/$name"
  if [[ -x $out ]]; then
    echo "$out"
    return
  fi
  # Two runs building the same binary would clobber each other's source dir.
  mkdir -p "$CACHE"
  local lock
  exec {lock}>"$CACHE/.$name-$key.lock"
  flock "$lock"
  if [[ -x $out ]]; then
    echo "$out"
    return
  fi
  local src="$CACHE/src/$name-$key"
  rm -rf "$src" && mkdir -p "$src" "$(dirname "$out")"
  log "building $name $key (first run on this machine only)"
  printf '%s\n' "$main_go" >"$src/main.go"
  local t0=$SECONDS
  (cd "$src" && "$setup" "$version" && "${GO[@]}" build -trimpath -ldflags="$ldflags" -o "$out.tmp" . && mv "$out.tmp" "$out")
  log "built $name $version in $((SECONDS - t0)) s"
  echo "$out"
}

# build_pkg NAME VERSION SETUP_DIR PACKAGE [EXTRA_LDFLAGS]: a main package of
# a dependency, built inside the wrapper module SETUP_DIR (already set up by
# wrapper_module); several binaries share one wrapper.
build_pkg() {
  local name=$1 version=$2 dir=$3 pkg=$4 ldflags="-s -w ${5:-}"
  local out="$CACHE/$name-$version/$name"
  if [[ -x $out ]]; then
    echo "$out"
    return
  fi
  mkdir -p "$(dirname "$out")"
  local lock
  exec {lock}>"$CACHE/.$name-$version.lock"
  flock "$lock"
  if [[ -x $out ]]; then
    echo "$out"
    return
  fi
  log "building $name $version (first run on this machine only)"
  local t0=$SECONDS
  (cd "$dir" && "${GO[@]}" build -trimpath -ldflags="$ldflags" -o "$out.tmp" "$pkg" && mv "$out.tmp" "$out")
  log "built $name $version in $((SECONDS - t0)) s"
  echo "$out"
}

# wrapper_module DIR MODULE VERSION PACKAGE...: a module that requires
# MODULE@VERSION with MODULE's own replace directives (version-to-version
# ones only; a consumer ignores a dependency's replaces otherwise) and
# imports the PACKAGEs (main packages) from a tools.go, so `go mod tidy`
# keeps everything they need.
wrapper_module() {
  local dir=$1 mod=$2 version=$3
  shift 3
  mkdir -p "$CACHE"
  local lock
  exec {lock}>"$CACHE/.$(basename "$dir").lock"
  flock "$lock"
  [[ -s $dir/.ready ]] && return
  rm -rf "$dir" && mkdir -p "$dir"
  (
    cd "$dir"
    "${GO[@]}" mod init "rig/$(basename "$dir")" >/dev/null 2>&1
    {
      echo '//go:build tools'
      echo
      echo 'package tools'
      echo
      echo 'import ('
      printf '\t_ "%s"\n' "$@"
      echo ')'
    } >tools.go
    local gomod
    gomod=$("${GO[@]}" mod download -json "$mod@$version" | sed -n 's/.*"GoMod": "\(.*\)",*/\1/p')
    {
      echo "require $mod $version"
      # single-line and block replaces (not comments), version-to-version only
      awk '/^replace \(/{b=1;next} b&&/^\)/{b=0;next} b&&/=>/{print "replace " $0; next} /^replace [^(]/{print}' "$gomod" |
        grep -v '=> *\.' || true
    } >>go.mod
    "${GO[@]}" mod tidy >/dev/null
    echo ok >.ready
  )
}

setup_kube_apiserver() {
  local v=$1 minor=${1#v1.}
  "${GO[@]}" mod init rig/kube-apiserver >/dev/null 2>&1
  local gomod
  gomod=$("${GO[@]}" mod download -json "k8s.io/kubernetes@$v" | sed -n 's/.*"GoMod": "\(.*\)",*/\1/p')
  {
    echo "require k8s.io/kubernetes $v"
    # Every staging module upstream replaces with a local path is published
    # as k8s.io/<m> v0.<minor>.
    sed -n 's#^[[:space:]]*\(k8s.io/[a-z0-9-]*\) => ./staging/.*#\1#p' "$gomod" |
      while read -r m; do echo "replace $m => $m v0.$minor"; done
  } >>go.mod
  "${GO[@]}" mod tidy >/dev/null
}

# The node's components: the same wrapper, plus the endpointslice stand-in
# (kube-apiserver does not import it, so its module stays as it was).
setup_kube_node() {
  setup_kube_apiserver "$1"
  "${GO[@]}" mod edit -replace "k8s.io/endpointslice=k8s.io/endpointslice@$ENDPOINTSLICE_VERSION"
  "${GO[@]}" mod tidy >/dev/null
}

# kube_node_main CMD: upstream's own cmd/<CMD> main file, verbatim (package
# main importing only importable packages).
kube_node_main() {
  local dir
  dir=$("${GO[@]}" mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"Dir": "\(.*\)",*/\1/p')
  cat "$dir/cmd/$1/$1.go" 2>/dev/null || cat "$dir/cmd/$1/"*.go
}


setup_etcd() {
  "${GO[@]}" mod init rig/etcd >/dev/null 2>&1
  "${GO[@]}" get "go.etcd.io/etcd/server/v3@$1" >/dev/null
  "${GO[@]}" mod tidy >/dev/null
}

setup_ferretdb() {
  "${GO[@]}" mod init rig/ferretdb >/dev/null 2>&1
  "${GO[@]}" get "github.com/FerretDB/FerretDB@$1" >/dev/null
  "${GO[@]}" mod tidy >/dev/null
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
# stores data in the PostgreSQL database FERRETDB_POSTGRESQL_URL names (the
# rig's: collections are tables with real indexes), or, without it, under
# FERRETDB_DIR with the SQLite backend (which scans a collection per update).
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
	cfg := ferretdb.Config{
		Listener: ferretdb.ListenerConfig{TCP: os.Getenv("FERRETDB_LISTEN")},
	}
	if url := os.Getenv("FERRETDB_POSTGRESQL_URL"); url != "" {
		cfg.Handler = "postgresql"
		cfg.PostgreSQLURL = url
	} else {
		cfg.Handler = "sqlite"
		cfg.SQLiteURL = "file:" + os.Getenv("FERRETDB_DIR") + "/"
	}
	f, err := ferretdb.New(&cfg)
	if err != nil {
		log.Fatal(err)
	}
	if err := f.Run(ctx); err != nil && ctx.Err() == nil {
		log.Fatal(err)
	}
}'

# CoreDNS with only the plugins the cluster's Corefile uses (the full set
# pulls in every cloud SDK): cluster names from the API, nothing forwarded.
COREDNS_MAIN='package main

import (
	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/loadbalance"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/ready"
	_ "github.com/coredns/coredns/plugin/template"
	"github.com/coredns/coredns/coremain"
)

func main() { coremain.Run() }'

setup_coredns() {
  "${GO[@]}" mod init rig/coredns >/dev/null 2>&1
  "${GO[@]}" get "github.com/coredns/coredns@$1" >/dev/null
  "${GO[@]}" mod tidy >/dev/null
}

build_kube_node() {
  local name=$1
  build "$name" "$K8S_VERSION" "$(kube_node_main "$name")" setup_kube_node "$(kube_ldflags "$K8S_VERSION")"
}

build_keda() {
  local dir="$CACHE/src/keda-$KEDA_VERSION"
  [[ -x $CACHE/keda-operator-$KEDA_VERSION/keda-operator ]] && {
    echo "$CACHE/keda-operator-$KEDA_VERSION/keda-operator"
    return
  }
  wrapper_module "$dir" github.com/kedacore/keda/v2 "$KEDA_VERSION" github.com/kedacore/keda/v2/cmd/operator
  build_pkg keda-operator "$KEDA_VERSION" "$dir" github.com/kedacore/keda/v2/cmd/operator \
    "-X github.com/kedacore/keda/v2/version.Version=${KEDA_VERSION#v}"
}

# build_keda_http operator|interceptor|scaler
build_keda_http() {
  local part=$1 dir="$CACHE/src/keda-http-$KEDA_HTTP_VERSION"
  [[ -x $CACHE/keda-http-$part-$KEDA_HTTP_VERSION/keda-http-$part ]] && {
    echo "$CACHE/keda-http-$part-$KEDA_HTTP_VERSION/keda-http-$part"
    return
  }
  wrapper_module "$dir" github.com/kedacore/http-add-on "$KEDA_HTTP_VERSION" \
    github.com/kedacore/http-add-on/operator github.com/kedacore/http-add-on/interceptor \
    github.com/kedacore/http-add-on/scaler
  build_pkg "keda-http-$part" "$KEDA_HTTP_VERSION" "$dir" "github.com/kedacore/http-add-on/$part"
}

what="${1:-all}"
case $what in
  kube-apiserver) build kube-apiserver "$K8S_VERSION" "$KUBE_MAIN" setup_kube_apiserver "$(kube_ldflags "$K8S_VERSION")" ;;
  etcd) build etcd "$ETCD_VERSION" "$ETCD_MAIN" setup_etcd ;;
  ferretdb) build ferretdb "$FERRETDB_VERSION" "$FERRETDB_MAIN" setup_ferretdb "" 1 ;;
  kubelet | kube-controller-manager | kube-scheduler | kube-proxy) build_kube_node "$what" ;;
  coredns) build coredns "$COREDNS_VERSION" "$COREDNS_MAIN" setup_coredns ;;
  keda-operator) build_keda ;;
  keda-http-operator) build_keda_http operator ;;
  keda-http-interceptor) build_keda_http interceptor ;;
  keda-http-scaler) build_keda_http scaler ;;
  all)
    build etcd "$ETCD_VERSION" "$ETCD_MAIN" setup_etcd
    build ferretdb "$FERRETDB_VERSION" "$FERRETDB_MAIN" setup_ferretdb "" 1
    build kube-apiserver "$K8S_VERSION" "$KUBE_MAIN" setup_kube_apiserver "$(kube_ldflags "$K8S_VERSION")"
    ;;
  # The opt-in cluster layer (tests/rig/cluster-up.sh): everything above
  # that it reuses, then the node, DNS and KEDA. Prints one path a line.
  cluster)
    "$0" all
    for b in kube-scheduler kube-controller-manager kube-proxy kubelet \
      keda-http-interceptor keda-http-scaler keda-http-operator keda-operator coredns; do
      "$0" "$b"
    done
    ;;
  *)
    echo "usage: $0 [all|cluster|kube-apiserver|etcd|ferretdb|kubelet|kube-controller-manager|kube-scheduler|kube-proxy|coredns|keda-operator|keda-http-operator|keda-http-interceptor|keda-http-scaler]" >&2
    exit 2
    ;;
esac
