//! The life of a role process: servers that must keep running, a shutdown signal and
//! a grace period, in one place for every binary.
//!
//! An edge drains before it stops ([`Servers::wait_for_stop_draining`]): the first
//! SIGTERM/SIGINT (or the admin `/drain`) starts the drain, and [`Servers::stop`]
//! follows once the drain is done. The drain is bounded by its window, so from the
//! signal to the exit takes at most the drain window plus [`GRACE`].

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

    /// Like [`Servers::wait_for_stop`] for a role that drains. The first signal, or
    /// `requested` being cancelled (the admin `/drain`), cancels `requested` and runs
    /// `drain`; this returns once the drain is done and a signal has arrived, so a
    /// drain started through `/drain` leaves the process running (drained) until its
    /// SIGTERM, and a SIGTERM during that drain continues it rather than restarting
    /// it. A second signal during the drain, or a failed server, returns at once.
    pub async fn wait_for_stop_draining<F>(&self, requested: &CancellationToken, drain: F)
    where
        F: Future<Output = ()>,
    {
        let mut signals = Signals::new();
        let mut signalled = false;
        tokio::select! {
            () = signals.recv() => {
                signalled = true;
                tracing::info!("signal received; draining");
            }
            () = requested.cancelled() => tracing::info!("drain requested; draining"),
            () = self.failed.cancelled() => {
                tracing::error!("a server failed; shutting down");
                return;
            }
        }
        requested.cancel();
        let mut drain = std::pin::pin!(drain);
        let mut drained = false;
        loop {
            tokio::select! {
                () = &mut drain, if !drained => {
                    drained = true;
                    if signalled {
                        tracing::info!("drained; shutting down");
                        return;
                    }
                    tracing::info!("drained; waiting for SIGTERM to exit");
                }
                () = signals.recv() => {
                    if signalled || drained {
                        tracing::info!("signal received; shutting down");
                        return;
                    }
                    signalled = true;
                    tracing::info!("signal received; shutting down when the drain is done");
                }
                () = self.failed.cancelled() => {
                    tracing::error!("a server failed; shutting down");
                    return;
                }
            }
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

/// SIGTERM and SIGINT, listened for from creation on, so that no signal between two
/// waits is missed.
struct Signals {
    term: Option<tokio::signal::unix::Signal>,
    int: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn new() -> Self {
        use tokio::signal::unix::{SignalKind, signal};
        Self {
            term: signal(SignalKind::terminate()).ok(),
            int: signal(SignalKind::interrupt()).ok(),
        }
    }

    /// Resolves on the next SIGTERM or SIGINT.
    async fn recv(&mut self) {
        match (&mut self.term, &mut self.int) {
            (Some(term), Some(int)) => {
                tokio::select! {
                    _ = term.recv() => {},
                    _ = int.recv() => {},
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
}
