# syntax=docker/dockerfile:1.7
#
# One image with the three role binaries, the local runner and the KubeDB
# stand-in (used by the kind overlay only): static musl builds in the
# `dist` profile (release + cross-crate LTO, optimised for size: about 40%
# smaller and as fast, several minutes longer to build; rustls, bundled
# SQLite; no OpenSSL, no glibc) on distroless static, running as the
# distroless `nonroot` user (65532). Nothing is written to the image's
# filesystem at run time, so pods run it with
# readOnlyRootFilesystem. Each workload picks its binary with `command`
# (k8s/base, keda/); the default is the API.
#
#   docker build -t dbaas:dev .          (just deploy does this)
#   docker run --rm dbaas:dev --help

ARG RUST_VERSION=1.95

FROM docker.io/library/rust:${RUST_VERSION}-slim-bookworm AS build
# musl-gcc (which the cc crate picks for musl targets) compiles the C parts:
# ring and the bundled SQLite.
RUN apt-get update \
 && apt-get install -y --no-install-recommends musl-tools \
 && rm -rf /var/lib/apt/lists/* \
 && rustup target add x86_64-unknown-linux-musl
WORKDIR /src
COPY . .
ENV CARGO_TERM_COLOR=never
# Cache mounts keep the registry and target directory between builds; the
# binaries are copied out in the same step, since the mount is not part of
# the image.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --profile dist --locked --target x86_64-unknown-linux-musl \
      -p dbaas-api -p dbaas-reconciler -p dbaas-worker -p dbaas-local -p kubedb-standin \
 && mkdir -p /out \
 && for bin in dbaas-api dbaas-reconciler dbaas-worker dbaas-local kubedb-standin; do \
      cp "target/x86_64-unknown-linux-musl/dist/$bin" /out/; \
    done

FROM gcr.io/distroless/static-debian12:nonroot
LABEL org.opencontainers.image.title="dbaas" \
      org.opencontainers.image.description="Declarative DBaaS control plane for KubeDB: dbaas-api, dbaas-reconciler, dbaas-worker (+ dbaas-local, kubedb-standin)" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /out/ /usr/local/bin/
USER 65532:65532
EXPOSE 8000
ENTRYPOINT ["/usr/local/bin/dbaas-api"]
