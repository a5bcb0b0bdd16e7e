# syntax=docker/dockerfile:1.7
# fanout-worker: embedded CPython running the Python resolvers, on the Python base image
# it was built against. Also carries the `fanout` command (it embeds Python too), which
# the chart's `helm test` pod runs.
#
#   docker build -f deploy/docker/worker.Dockerfile -t REGISTRY/fanout-worker:TAG \
#     --build-arg REQUIREMENTS=path/in/context/requirements.txt .
#
# REQUIREMENTS names a pip requirements file (inside the build context) with what your
# resolvers import; it is installed into the virtualenv /opt/venv, which the worker
# adds to its import path (VIRTUAL_ENV). Bake your resolvers in with a second
# Dockerfile `FROM REGISTRY/fanout-worker:TAG` + `COPY resolvers.py /app/resolvers.py`
# (chart: resolvers.source="" and resolvers.path=/app/resolvers.py), or mount them
# from the chart's ConfigMap.
#
# The `build` stage is the same in edge.Dockerfile, router.Dockerfile and
# worker.Dockerfile (keep them identical): BuildKit caches it by content, so building
# the three images compiles the workspace once. It builds on the worker's Python base
# image so that the one build links the worker against the same libpython the worker
# image runs with; the edge and router binaries do not link libpython at all.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

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

# The runtime must be the very image the build stage linked against (same Python minor
# version, same libpython path).
FROM ${PYTHON_IMAGE} AS worker
ARG REQUIREMENTS=deploy/docker/requirements.txt
ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp
COPY ${REQUIREMENTS} /tmp/requirements.txt
RUN python3 -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check -r /tmp/requirements.txt \
 && rm /tmp/requirements.txt \
 && mkdir -p /app
COPY --from=build /out/fanout-worker /out/fanout /usr/local/bin/
WORKDIR /app
USER 65532:65532
# Admin endpoints (/healthz, /readyz, /startupz, /metrics).
EXPOSE 9092
ENTRYPOINT ["/usr/local/bin/fanout-worker"]
