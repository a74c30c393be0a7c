# syntax=docker/dockerfile:1.7
# Image of `cairn`: the secrets core (server and CLI).
# Build from the repository root: docker/build.sh cairn
# (or: docker build -f docker/cairn.Dockerfile .).

ARG RUST_VERSION=1.95
FROM docker.io/library/rust:${RUST_VERSION}-slim-bookworm AS build
WORKDIR /src
COPY . .
# The registry and target caches only speed up rebuilds; the binary is copied
# out of the cache mount so the final stage can take it.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin cairn \
 && install -D -m 0755 target/release/cairn /out/cairn

# glibc and libgcc, no shell, no package manager; runs as nonroot (65532).
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/cairn /usr/local/bin/cairn
USER 65532:65532
EXPOSE 8200 8201
ENTRYPOINT ["/usr/local/bin/cairn"]
