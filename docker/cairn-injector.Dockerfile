# syntax=docker/dockerfile:1.7
# Image of `cairn-injector`: the mutating admission webhook that adds the agent.
# Build from the repository root: docker/build.sh cairn-injector
# (or: docker build -f docker/cairn-injector.Dockerfile .).

ARG RUST_VERSION=1.95
FROM docker.io/library/rust:${RUST_VERSION}-slim-bookworm AS build
WORKDIR /src
COPY . .
# The registry and target caches only speed up rebuilds; the binary is copied
# out of the cache mount so the final stage can take it.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin cairn-injector \
 && install -D -m 0755 target/release/cairn-injector /out/cairn-injector

# glibc and libgcc, no shell, no package manager; runs as nonroot (65532).
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/cairn-injector /usr/local/bin/cairn-injector
USER 65532:65532
EXPOSE 8443 8080
ENTRYPOINT ["/usr/local/bin/cairn-injector"]
