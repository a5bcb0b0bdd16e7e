//! Partition ownership in cluster mode.
//!
//! Every router computes the same partition → router map by rendezvous hashing over
//! the ready members. For each partition it owns, a router listens on the bus subject
//! `fanout.p.<k>` for publishes forwarded by other routers and answers each with its
//! offset. When the member set changes, partitions move: the new owner starts a new
//! epoch for them; edges re-send the interest that moved (see the edge's
//! `interest_client`).

use std::collections::HashMap;
use std::sync::Arc;

use fanout_core::bus::Bus;
use fanout_core::membership::MemberSet;
use fanout_core::membership::rendezvous::PartitionMap;
use fanout_core::subject;
use fanout_proto::v1::ForwardedPublish;
use futures_util::StreamExt;
use prost::Message;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::Router;

/// How long a router waits after taking over a partition before it accepts publishes
/// for it (edges re-send moved interest within this time).
pub const TAKEOVER_SETTLE: std::time::Duration = std::time::Duration::from_millis(750);

/// Follows `members` and keeps `router`'s owned partitions and their bus ingress in
/// line with the partition map, until `shutdown`.
pub async fn run_ownership(
    router: Arc<Router>,
    bus: Arc<dyn Bus>,
    mut members: watch::Receiver<MemberSet>,
    tracker: TaskTracker,
    shutdown: CancellationToken,
) {
    let id = router.config().router_id.clone();
    let partitions = router.config().partitions;
    let mut ingress: HashMap<u32, CancellationToken> = HashMap::new();
    let mut first_round = true;
    loop {
        let set = members.borrow_and_update().clone();
        let map = PartitionMap::new(partitions, &set);
        let mut gained = 0;
        let mut lost = 0;
        for p in 0..partitions {
            let mine = map.owner(p) == Some(id.as_str());
            match (mine, ingress.contains_key(&p)) {
                (true, false) => {
                    let stop = shutdown.child_token();
                    match bus
                        .queue_subscribe(&subject::partition(p), subject::PARTITION_GROUP)
                        .await
                    {
                        Ok(sub) => {
                            tracker.spawn(serve_partition(
                                router.clone(),
                                bus.clone(),
                                p,
                                sub,
                                stop.clone(),
                            ));
                            ingress.insert(p, stop.clone());
                            if first_round {
                                if let Err(e) = router.set_owned(p, true).await {
                                    tracing::warn!(partition = p, error = %e, "cannot take partition");
                                }
                            } else {
                                // A partition taken over from another router: give edges
                                // time to re-send the interest that moved before accepting
                                // publishes, so acknowledged events are not dispatched to
                                // an index that is still empty. Publishers meanwhile get
                                // UNAVAILABLE and retry.
                                let router = router.clone();
                                tracker.spawn(async move {
                                    tokio::select! {
                                        () = stop.cancelled() => {}
                                        () = tokio::time::sleep(TAKEOVER_SETTLE) => {
                                            if let Err(e) = router.set_owned(p, true).await {
                                                tracing::warn!(partition = p, error = %e, "cannot take partition");
                                            }
                                        }
                                    }
                                });
                            }
                            gained += 1;
                        }
                        Err(e) => {
                            tracing::warn!(partition = p, error = %e, "cannot listen for partition; will retry on the next change")
                        }
                    }
                }
                (false, true) => {
                    if let Some(stop) = ingress.remove(&p) {
                        stop.cancel();
                    }
                    let _ = router.set_owned(p, false).await;
                    lost += 1;
                }
                _ => {}
            }
        }
        if gained + lost > 0 {
            tracing::info!(
                router = %id,
                members = set.len(),
                owned = ingress.len(),
                gained,
                lost,
                "partition ownership changed"
            );
        }
        first_round = false;
        tokio::select! {
            () = shutdown.cancelled() => break,
            changed = members.changed() => if changed.is_err() { break },
        }
    }
    for stop in ingress.values() {
        stop.cancel();
    }
}

async fn serve_partition(
    router: Arc<Router>,
    bus: Arc<dyn Bus>,
    partition: u32,
    mut requests: fanout_core::bus::BusSubscription,
    stop: CancellationToken,
) {
    loop {
        let msg = tokio::select! {
            () = stop.cancelled() => break,
            msg = requests.next() => match msg { Some(m) => m, None => break },
        };
        let Some(reply_to) = msg.reply.clone() else {
            tracing::debug!(partition, "forwarded publish without reply subject ignored");
            continue;
        };
        let answer = match ForwardedPublish::decode(msg.payload) {
            Ok(forwarded) => router.accept_forwarded(partition, forwarded).await,
            Err(_) => fanout_proto::v1::ForwardedReply {
                result: Some(fanout_proto::v1::forwarded_reply::Result::Invalid(
                    "malformed forwarded publish".into(),
                )),
            },
        };
        if let Err(e) = bus.publish(&reply_to, answer.encode_to_vec().into()).await {
            tracing::warn!(partition, error = %e, "reply to a forwarded publish not sent");
        }
    }
}
