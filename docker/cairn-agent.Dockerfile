# syntax=docker/dockerfile:1.7
# Image of `cairn-agent`: the init/sidecar agent the injector adds to pods.
# Build from the repository root: docker/build.sh cairn-agent
# (or: docker build -f docker/cairn-agent.Dockerfile .).

ARG RUST_VERSION=1.95
FROM docker.io/library/rust:${RUST_VERSION}-slim-bookworm AS build
WORKDIR /src
COPY . .
# The registry and target caches only speed up rebuilds; the binary is copied
# out of the cache mount so the final stage can take it.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin cairn-agent \
 && install -D -m 0755 target/release/cairn-agent /out/cairn-agent

# glibc and libgcc, no shell, no package manager; runs as nonroot (65532).
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/cairn-agent /usr/local/bin/cairn-agent
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/cairn-agent"]
