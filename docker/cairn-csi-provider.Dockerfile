# syntax=docker/dockerfile:1.7
# Image of `cairn-csi-provider`: the Secrets Store CSI Driver provider (a unix socket on a host path; the chart runs it as uid 0 without capabilities, for the root-owned socket directories).
# Build from the repository root: docker/build.sh cairn-csi-provider
# (or: docker build -f docker/cairn-csi-provider.Dockerfile .).

ARG RUST_VERSION=1.95
FROM docker.io/library/rust:${RUST_VERSION}-slim-bookworm AS build
# No protoc: csi-provider/build.rs compiles the provider protocol with protox.
WORKDIR /src
COPY . .
# The registry and target caches only speed up rebuilds; the binary is copied
# out of the cache mount so the final stage can take it.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin cairn-csi-provider \
 && install -D -m 0755 target/release/cairn-csi-provider /out/cairn-csi-provider

# glibc and libgcc, no shell, no package manager; runs as nonroot (65532).
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/cairn-csi-provider /usr/local/bin/cairn-csi-provider
USER 65532:65532
EXPOSE 8081
ENTRYPOINT ["/usr/local/bin/cairn-csi-provider"]
