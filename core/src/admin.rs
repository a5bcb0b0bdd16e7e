//! Admin HTTP endpoints of every role: `/healthz` (live), `/readyz` (ready),
//! `/metrics` (Prometheus text).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// The metrics recorder could not be installed.
#[derive(Debug, thiserror::Error)]
#[error("cannot install the metrics recorder: {0}")]
pub struct AdminError(String);

/// Shared state of the admin server.
#[derive(Clone)]
#[allow(missing_debug_implementations)]
pub struct Admin {
    metrics: PrometheusHandle,
    ready: Arc<AtomicBool>,
}

impl Admin {
    /// Installs the process-wide Prometheus recorder (once per process).
    pub fn install() -> Result<Self, AdminError> {
        let metrics = PrometheusBuilder::new()
            .set_buckets(&[
                0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05,
                0.1, 0.25, 0.5, 1.0, 2.5,
            ])
            .map_err(|e| AdminError(e.to_string()))?
            .install_recorder()
            .map_err(|e| AdminError(e.to_string()))?;
        crate::telemetry::zero_unlabelled_series();
        Ok(Self {
            metrics,
            ready: Arc::new(AtomicBool::new(false)),
        })
    }

    /// Whether the process is marked ready.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    /// Marks the process ready or not ready.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }

    /// Serves the endpoints until `shutdown` fires.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: CancellationToken,
    ) -> std::io::Result<()> {
        let upkeep = self.metrics.clone();
        let upkeep_stop = shutdown.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            loop {
                tokio::select! {
                    _ = tick.tick() => upkeep.run_upkeep(),
                    () = upkeep_stop.cancelled() => break,
                }
            }
        });
        let app = Router::new()
            .route("/healthz", get(|| async { "ok\n" }))
            .route("/readyz", get(readyz))
            .route("/metrics", get(metrics))
            .with_state(self);
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await
    }
}

async fn readyz(State(admin): State<Admin>) -> (StatusCode, &'static str) {
    if admin.ready.load(Ordering::SeqCst) {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}

async fn metrics(State(admin): State<Admin>) -> String {
    admin.metrics.render()
}
