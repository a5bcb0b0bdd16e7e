# syntax=docker/dockerfile:1.7
# fanout-router: gRPC publish API, partitions and channel index. No Python in the
# runtime image (routers only read the `@fanout.resolver` lines of the resolvers file).
#
#   docker build -f deploy/docker/edge.Dockerfile -t REGISTRY/fanout-router:TAG .
#
# The `build` stage is the same in edge.Dockerfile, router.Dockerfile and
# worker.Dockerfile (keep them identical): BuildKit caches it by content, so building
# the three images compiles the workspace once. It builds on the worker's Python base
# image so that the one build links the worker against the same libpython the worker
# image runs with; the edge and router binaries do not link libpython at all.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot

FROM ${PYTHON_IMAGE} AS build
ARG RUST_TOOLCHAIN=1.95.0
ENV RUSTUP_HOME=/usr/local/rustup CARGO_HOME=/usr/local/cargo PATH=/usr/local/cargo/bin:$PATH
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/* \
 && curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs \
    | sh -s -- -y --profile minimal --default-toolchain "${RUST_TOOLCHAIN}"
WORKDIR /src
COPY . .
# pyo3 finds the image's python3 (/usr/local/bin) and links its libpython with an rpath.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked -p fanout-cli -p fanout-resolver-worker \
 && mkdir -p /out \
 && cp target/release/fanout target/release/fanout-edge target/release/fanout-router \
       target/release/fanout-worker /out/

FROM ${RUNTIME_IMAGE} AS router
COPY --from=build /out/fanout-router /usr/local/bin/fanout-router
USER 65532:65532
# gRPC (publish API, interest streams, health, reflection) and the admin endpoints.
EXPOSE 50051 9090
ENTRYPOINT ["/usr/local/bin/fanout-router"]
