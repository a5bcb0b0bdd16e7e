//! Harness for Fanout's integration tests: the real `fanout` binary of this checkout,
//! driven by real WebSocket, gRPC and HTTP clients on ephemeral ports.
//!
//! - [`binary`]: builds `fanout` from this checkout once per test process, so a test
//!   never runs a stale binary.
//! - [`server`]: [`Fanout`], a running `fanout standalone` on `127.0.0.1:0` listeners,
//!   killed on drop; its stderr is kept and printed when a test fails.
//! - [`ws`]: [`GqlClient`], a `graphql-transport-ws` client over tokio-tungstenite.
//! - [`grpc`]: the `fanout.v1.Publisher` client plus gRPC health and reflection.
//! - [`metrics`]: reads `/metrics` (also parsed strictly as Prometheus text) and polls a
//!   series until it meets a condition.
//! - [`otlp`]: an OTLP/gRPC trace receiver for the span export tests.
//! - [`tls`]: clients trusting the test CA of `tests/fixtures/tls/`.
//! - [`token`]: HS256 tokens for `--jwt-secret` servers.
//! - [`keys`]: RSA/EC test keys, JWKS files and RS256/ES256/forged tokens.
//! - [`cli`]: runs `fanout publish | subscribe | check | standalone` as a command.
//! - [`fixtures`]: paths of `tests/fixtures/` and `examples/`.
//! - [`kube_api`]: a fake Kubernetes API serving EndpointSlices, and its kubeconfig.
//!
//! Every await that could hang is bounded ([`within`]), so a failing test reports what
//! it was waiting for instead of hanging CI.

pub mod binary;
pub mod cli;
pub mod cluster;
pub mod fixtures;
pub mod grpc;
pub mod keys;
pub mod kube_api;
pub mod metrics;
pub mod otlp;
pub mod server;
pub mod tls;
pub mod token;
pub mod ws;

use std::future::Future;
use std::time::Duration;

pub use anyhow::{Context as _, Result, anyhow, bail, ensure};
pub use grpc::Publisher;
pub use serde_json::{Value, json};
pub use server::Fanout;
pub use ws::{Closed, GqlClient};

/// How long one step (a connect, a message, a publish) may take before the test fails.
pub const STEP: Duration = Duration::from_secs(10);

/// Runs `fut`, failing with "timed out after ..: `what`" when it takes longer than `limit`.
pub async fn within<F: Future>(limit: Duration, what: &str, fut: F) -> Result<F::Output> {
    tokio::time::timeout(limit, fut)
        .await
        .map_err(|_| anyhow!("timed out after {limit:?}: {what}"))
}

/// Polls `check` every 50 ms until it returns `Ok(Some(value))`, failing after `limit`
/// with the description and the last observation (`Ok(None)` means "not yet").
pub async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let last = match within(STEP, what, check()).await {
            Ok(Ok(Some(value))) => return Ok(value),
            Ok(Ok(None)) => String::from("condition not met"),
            Ok(Err(e)) | Err(e) => format!("{e:#}"),
        };
        if tokio::time::Instant::now() >= deadline {
            bail!("not reached within {limit:?}: {what} (last: {last})");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
