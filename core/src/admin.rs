//! Admin HTTP endpoints of every role: `/healthz` (liveness), `/readyz` (readiness),
//! `/startupz` (startup), `/drain` (start an edge's drain) and `/metrics` (Prometheus
//! text).
//!
//! - `/healthz`: 200 while the process serves HTTP at all.
//! - `/readyz`: 200 while the role is ready for traffic; 503 before that, and from the
//!   moment a drain starts.
//! - `/startupz`: 503 until the role has been ready once, 200 from then on (also while
//!   draining), so a slow start is not mistaken for a hung process.
//! - `/drain` (GET or POST, since a Kubernetes `preStop` `httpGet` only does GET):
//!   starts the drain and answers 202 at once; idempotent. Roles without a drain
//!   (routers, workers) answer 501.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
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
    /// Set the first time the role is ready; never cleared.
    started: Arc<AtomicBool>,
    /// Present on roles that drain; cancelled when the drain starts.
    drain: Arc<OnceLock<CancellationToken>>,
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
        Ok(Self::with_metrics(metrics))
    }

    fn with_metrics(metrics: PrometheusHandle) -> Self {
        Self {
            metrics,
            ready: Arc::new(AtomicBool::new(false)),
            started: Arc::new(AtomicBool::new(false)),
            drain: Arc::new(OnceLock::new()),
        }
    }

    /// Whether `/readyz` answers 200: marked ready and not draining.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst) && !self.is_draining()
    }

    /// Marks the process ready or not ready. While a drain runs `/readyz` stays 503
    /// whatever is set here.
    pub fn set_ready(&self, ready: bool) {
        if ready {
            self.started.store(true, Ordering::SeqCst);
        }
        self.ready.store(ready, Ordering::SeqCst);
    }

    /// Whether the role has been ready at least once since the process started.
    pub fn has_started(&self) -> bool {
        self.started.load(Ordering::SeqCst)
    }

    /// Gives the role a drain: from now on `/drain` cancels the returned token instead
    /// of answering 501. The same token is returned on every call.
    pub fn enable_drain(&self) -> CancellationToken {
        self.drain.get_or_init(CancellationToken::new).clone()
    }

    /// Starts the drain (as `/drain` does): `/readyz` answers 503 from now on. Returns
    /// false when the role has no drain.
    pub fn start_drain(&self) -> bool {
        match self.drain.get() {
            Some(token) => {
                token.cancel();
                true
            }
            None => false,
        }
    }

    /// Whether a drain has started.
    pub fn is_draining(&self) -> bool {
        self.drain
            .get()
            .is_some_and(CancellationToken::is_cancelled)
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
        axum::serve(listener, self.router())
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await
    }

    /// The admin endpoints as an axum router.
    pub fn router(self) -> Router {
        Router::new()
            .route("/healthz", get(|| async { "ok\n" }))
            .route("/readyz", get(readyz))
            .route("/startupz", get(startupz))
            .route("/drain", get(drain).post(drain))
            .route("/metrics", get(metrics))
            .with_state(self)
    }
}

async fn readyz(State(admin): State<Admin>) -> (StatusCode, &'static str) {
    if admin.is_draining() {
        (StatusCode::SERVICE_UNAVAILABLE, "draining\n")
    } else if admin.is_ready() {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}

async fn startupz(State(admin): State<Admin>) -> (StatusCode, &'static str) {
    if admin.has_started() {
        (StatusCode::OK, "started\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "starting\n")
    }
}

async fn drain(State(admin): State<Admin>) -> (StatusCode, &'static str) {
    if admin.start_drain() {
        (StatusCode::ACCEPTED, "draining\n")
    } else {
        (
            StatusCode::NOT_IMPLEMENTED,
            "this role has no drain (only edges drain)\n",
        )
    }
}

async fn metrics(State(admin): State<Admin>) -> String {
    admin.metrics.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admin() -> Admin {
        Admin::with_metrics(PrometheusBuilder::new().build_recorder().handle())
    }

    #[test]
    fn started_stays_once_ready() {
        let admin = admin();
        assert!(!admin.has_started());
        admin.set_ready(true);
        admin.set_ready(false);
        assert!(admin.has_started());
        assert!(!admin.is_ready());
    }

    #[test]
    fn drain_overrides_readiness_and_is_idempotent() {
        let admin = admin();
        admin.set_ready(true);
        assert!(!admin.start_drain(), "no drain before enable_drain");
        let token = admin.enable_drain();
        assert!(admin.is_ready());
        assert!(admin.start_drain());
        assert!(admin.start_drain());
        assert!(token.is_cancelled());
        admin.set_ready(true);
        assert!(!admin.is_ready(), "draining wins over set_ready");
        assert!(admin.has_started());
        assert!(admin.enable_drain().is_cancelled(), "the same token");
    }
}
