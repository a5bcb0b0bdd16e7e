//! The life of a role process: servers that must keep running, a shutdown signal and
//! a grace period, in one place for every binary.

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long running tasks get to finish after a shutdown signal.
pub const GRACE: Duration = Duration::from_secs(10);

/// A failing server stops the process, as a signal does.
#[derive(Debug, Default, Clone)]
pub struct Servers {
    /// Every task of the process, waited for at shutdown.
    pub tracker: TaskTracker,
    /// Cancelled when the process stops.
    pub shutdown: CancellationToken,
    failed: CancellationToken,
}

impl Servers {
    /// No servers yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs a server whose error stops the process.
    pub fn spawn<F, E>(&self, name: &'static str, server: F)
    where
        F: Future<Output = Result<(), E>> + Send + 'static,
        E: std::fmt::Display + Send + 'static,
    {
        let failed = self.failed.clone();
        self.tracker.spawn(async move {
            if let Err(e) = server.await {
                tracing::error!(server = name, error = %e, "server failed");
                failed.cancel();
            }
        });
    }

    /// Waits for SIGTERM/SIGINT or a failed server.
    pub async fn wait_for_stop(&self) {
        tokio::select! {
            () = super::terminated() => tracing::info!("shutting down"),
            () = self.failed.cancelled() => tracing::error!("a server failed; shutting down"),
        }
    }

    /// Cancels every task, waits up to [`GRACE`] for them, and tells whether a server
    /// failed.
    pub async fn stop(&self) -> bool {
        self.shutdown.cancel();
        self.tracker.close();
        if tokio::time::timeout(GRACE, self.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!("tasks still running after the grace period; exiting anyway");
        }
        self.failed.is_cancelled()
    }
}
