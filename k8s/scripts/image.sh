#!/usr/bin/env bash
# The project's image without Docker: the same contents as the Dockerfile
# (dbaas-api, dbaas-reconciler, dbaas-worker, dbaas-local, kubedb-standin in
# /usr/local/bin; user 65532:65532; nothing written to the root filesystem
# at run time; entrypoint dbaas-api; port 8000), built with buildah (storage
# driver vfs, no daemon) from binaries built on this host, then written as
# a docker-archive and, when a containerd socket is given, imported into its
# k8s.io namespace (what kubelet uses).
#
# Binaries: static musl builds (x86_64-unknown-linux-musl with Debian's
# musl-tools) in the `dist` profile, like the Dockerfile's. Where the musl
# target cannot be installed, glibc builds with the shared libraries they link copied into
# the image (the only difference then is in the base layer).
#
# Base layer: the Dockerfile uses gcr.io/distroless/static-debian12:nonroot,
# which cannot be pulled without a registry. This script lays down the parts
# of it the binaries use: /etc/passwd and /etc/group with root, nobody and
# nonroot (65532, home /home/nonroot), the CA bundle, tzdata, /tmp (1777).
#
# Settings (environment):
#   DBAAS_IMAGE            image name (localhost/dbaas:dev)
#   DBAAS_IMAGE_ARCHIVE    where to write the archive (target/image/dbaas.tar)
#   DBAAS_BIN_DIR          take prebuilt binaries from here (skips cargo);
#                          `just test` passes its debug build (glibc)
#   DBAAS_CONTAINERD_SOCK  import into this containerd (k8s.io namespace);
#                          default: the rig cluster's, when it is up
#   DBAAS_IMAGE_LIBC       musl (default) or glibc
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
IMAGE="${DBAAS_IMAGE:-localhost/dbaas:dev}"
ARCHIVE="${DBAAS_IMAGE_ARCHIVE:-$repo/target/image/dbaas.tar}"
LIBC="${DBAAS_IMAGE_LIBC:-musl}"
BINS=(dbaas-api dbaas-reconciler dbaas-worker dbaas-local kubedb-standin)
CACHE="${DBAAS_RIG_CACHE:-$HOME/.cache/dbaas-rig}"
log() { printf '[image] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

command -v buildah >/dev/null || {
  log "installing buildah"
  apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends buildah >/dev/null
}

# --- binaries ----------------------------------------------------------------------
bin_dir=${DBAAS_BIN_DIR:-}
if [[ -z $bin_dir ]]; then
  pkgs=()
  for b in "${BINS[@]}"; do pkgs+=(-p "$b"); done
  if [[ $LIBC == musl ]]; then
    command -v musl-gcc >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends musl-tools >/dev/null || true
    if command -v musl-gcc >/dev/null &&
      { rustup target list --installed 2>/dev/null | grep -qx x86_64-unknown-linux-musl ||
        rustup target add x86_64-unknown-linux-musl >/dev/null 2>&1; }; then
      log "cargo build --profile dist --target x86_64-unknown-linux-musl (static)"
      (cd "$repo" && nice -n 10 cargo build --profile dist --locked --target x86_64-unknown-linux-musl "${pkgs[@]}")
      bin_dir="${CARGO_TARGET_DIR:-$repo/target}/x86_64-unknown-linux-musl/dist"
    else
      log "the musl target is not available here: glibc binaries with their libraries"
      LIBC=glibc
    fi
  fi
  if [[ $LIBC == glibc ]]; then
    (cd "$repo" && nice -n 10 cargo build --profile dist --locked "${pkgs[@]}")
    bin_dir="${CARGO_TARGET_DIR:-$repo/target}/dist"
  fi
fi
for b in "${BINS[@]}"; do [[ -x $bin_dir/$b ]] || die "no $bin_dir/$b"; done
static=1
for b in "${BINS[@]}"; do
  # ldd lists "lib => path" lines only for dynamically linked binaries.
  if ldd "$bin_dir/$b" 2>&1 | grep -q '=>'; then static=0; fi
done

# --- the image -------------------------------------------------------------------------
B=(buildah --root "$CACHE/buildah/storage" --runroot "/run/dbaas-buildah-$(id -u)" --storage-driver vfs)
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{etc,tmp,home/nonroot,usr/local/bin,etc/ssl/certs,usr/share}
chmod 1777 "$root/tmp"
cat >"$root/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin
EOF
cat >"$root/etc/group" <<'EOF'
root:x:0:
nobody:x:65534:
nonroot:x:65532:
EOF
chown 65532:65532 "$root/home/nonroot"
cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/"
[[ -d /usr/share/zoneinfo ]] && cp -a /usr/share/zoneinfo "$root/usr/share/"
# Stripped as they go in (release builds already are; a debug build from
# DBAAS_BIN_DIR, such as the one `just test` makes, sheds its debug info).
for b in "${BINS[@]}"; do install -m 755 -s "$bin_dir/$b" "$root/usr/local/bin/$b"; done
if ((!static)); then
  # glibc binaries: the libraries they link, and the loader, at their paths.
  for b in "${BINS[@]}"; do ldd "$bin_dir/$b" || true; done | grep -o '/[^ ]*' | sort -u | while read -r lib; do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
  done
fi

c=$("${B[@]}" from scratch)
"${B[@]}" copy "$c" "$root/" / >/dev/null
"${B[@]}" config --user 65532:65532 --port 8000 --workingdir / \
  --entrypoint '["/usr/local/bin/dbaas-api"]' --cmd '' \
  --label org.opencontainers.image.title=dbaas \
  --label "org.opencontainers.image.description=Declarative DBaaS control plane for KubeDB: dbaas-api, dbaas-reconciler, dbaas-worker (+ dbaas-local, kubedb-standin)" \
  --label org.opencontainers.image.licenses=Apache-2.0 \
  --label "dbaas.io/libc=$([[ $static == 1 ]] && echo static-musl || echo glibc)" "$c"
"${B[@]}" commit -q "$c" "$IMAGE" >/dev/null
"${B[@]}" rm "$c" >/dev/null
mkdir -p "$(dirname "$ARCHIVE")"
rm -f "$ARCHIVE"
"${B[@]}" push -q "$IMAGE" "docker-archive:$ARCHIVE:$IMAGE" >/dev/null
log "built $IMAGE ($([[ $static == 1 ]] && echo static || echo glibc) binaries) -> $ARCHIVE"
# The checks a Docker-built image passes too (docker save, then the same script).
python3 "$here/check-image.py" "$ARCHIVE"

# --- into the node ------------------------------------------------------------------------
sock=${DBAAS_CONTAINERD_SOCK:-}
if [[ -z $sock ]]; then
  env_file="${RIG_DIR:-$repo/target/rig-cluster}/cluster/env"
  # shellcheck source=/dev/null
  [[ -s $env_file ]] && sock=$(source "$env_file" && echo "${RIG_CONTAINERD_SOCK:-}")
fi
if [[ -n $sock ]]; then
  ctr --address "$sock" -n k8s.io images import "$ARCHIVE" >/dev/null
  log "imported $IMAGE into containerd at $sock (namespace k8s.io)"
else
  log "no containerd socket given (DBAAS_CONTAINERD_SOCK): archive only"
fi
echo "$IMAGE"
