//! The background tasks of an edge, the same in `fanout-edge` and `fanout standalone`:
//! its delivery loop and, when client tokens are verified, the JWT key reload.

use std::sync::Arc;
use std::time::Duration;

use fanout_core::bus::Bus;
use fanout_core::security::JwtVerifier;
use fanout_edge::Edge;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::key_reload;

/// Spawns `edge`'s delivery loop on `bus` and, when `verifier` has keys, their reload
/// every `reload_every` (and on SIGHUP); both run until `shutdown`.
pub fn spawn(
    edge: &Arc<Edge>,
    bus: Arc<dyn Bus>,
    verifier: JwtVerifier,
    reload_every: Option<Duration>,
    tracker: &TaskTracker,
    shutdown: &CancellationToken,
) {
    if verifier.is_configured() {
        tracker.spawn(key_reload::run(verifier, reload_every, shutdown.clone()));
    }
    let edge = edge.clone();
    let stop = shutdown.clone();
    tracker.spawn(async move {
        if let Err(e) = edge.run_deliveries(bus, stop).await {
            tracing::error!(error = %e, "edge delivery loop stopped");
        }
    });
}
