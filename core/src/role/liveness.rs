//! Router liveness over the bus.
//!
//! Every router publishes a heartbeat on `fanout.routers.alive` twice a second. Every
//! role filters the configured member set down to the routers heard from recently, so
//! when a router dies its partitions move to the others within about two seconds, in
//! every process alike — with static membership too.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::bus::Bus;
use crate::membership::{MemberSet, Members};
use crate::subject;

/// How often a router says it is alive.
pub const HEARTBEAT_EVERY: Duration = Duration::from_millis(500);
/// How long after its last heartbeat a router counts as gone.
pub const DEAD_AFTER: Duration = Duration::from_millis(1800);

/// Publishes heartbeats of router `id` until `shutdown`.
pub async fn heartbeat(bus: Arc<dyn Bus>, id: String, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(HEARTBEAT_EVERY);
    let payload = Bytes::from(id.into_bytes());
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            _ = tick.tick() => {
                if let Err(e) = bus.publish(subject::ROUTERS_ALIVE, payload.clone()).await {
                    tracing::debug!(error = %e, "heartbeat not sent");
                }
            }
        }
    }
}

/// The configured members, filtered by heartbeats: a receiver of the live set.
pub async fn live_members(
    bus: Arc<dyn Bus>,
    members: Members,
    tracker: &TaskTracker,
    shutdown: CancellationToken,
) -> crate::Result<watch::Receiver<MemberSet>> {
    let mut beats = bus.subscribe(subject::ROUTERS_ALIVE).await?;
    let (tx, rx) = watch::channel(MemberSet::default());
    tracker.spawn(async move {
        let configured = members.subscribe();
        let mut seen: HashMap<String, Instant> = HashMap::new();
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        // Listen for a full heartbeat period before the first verdict, so that a process
        // starts with every running router in view instead of the first one it hears
        // (which would move partitions twice during a cluster's start).
        let warm_until = Instant::now() + DEAD_AFTER;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                beat = beats.next() => match beat {
                    Some(msg) => {
                        if let Ok(id) = std::str::from_utf8(&msg.payload) {
                            seen.insert(id.to_owned(), Instant::now());
                        }
                    }
                    None => break,
                },
                _ = tick.tick() => {
                    let now = Instant::now();
                    if now < warm_until {
                        continue;
                    }
                    seen.retain(|_, at| now.duration_since(*at) < DEAD_AFTER * 4);
                    let live = MemberSet::new(
                        configured
                            .borrow()
                            .iter()
                            .filter(|m| seen.get(&m.id).is_some_and(|at| now.duration_since(*at) < DEAD_AFTER))
                            .cloned(),
                    );
                    tx.send_if_modified(|current| {
                        if *current == live {
                            false
                        } else {
                            tracing::info!(routers = ?live.ids().collect::<Vec<_>>(), "live routers changed");
                            *current = live;
                            true
                        }
                    });
                }
            }
        }
        drop(members);
    });
    Ok(rx)
}
