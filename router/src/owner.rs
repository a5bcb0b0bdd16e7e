//! Partition owners: one task per partition assigns per-channel offsets in arrival order
//! and hands each event to dispatch, so events of a channel leave in publish order.
//!
//! When the partition is idle (nothing queued, its state unlocked) the publishing task
//! stamps the event itself and runs its dispatch up to the first wait, which for an
//! event without Python resolvers on the in-memory bus is the whole dispatch: no hop to
//! the owner task and back. Whatever is left of a dispatch that has to wait runs on a
//! task of its own, holding the partition's state, so it finishes even if the publisher
//! goes away and later events of the partition still wait for it.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use bytes::Bytes;
use fanout_proto::v1::PublishReply;
use futures_util::FutureExt;
use tokio::sync::{Mutex, OwnedMutexGuard, mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::dispatch::Dispatcher;
use crate::{Error, Result};

/// An event accepted by the publish API, before its owner stamped it.
#[derive(Debug)]
pub struct Accepted {
    /// Channel.
    pub channel: String,
    /// Raw JSON bytes.
    pub payload: Bytes,
    /// The payload parsed once.
    pub value: Arc<serde_json::Value>,
    /// Tenant, empty when none.
    pub tenant: String,
    /// Headers for resolvers.
    pub headers: HashMap<String, String>,
    /// Idempotency key, empty when none.
    pub idempotency_key: String,
    /// Unix microseconds at acceptance.
    pub published_at_us: u64,
}

/// An event after its owner assigned `offset` in `epoch`.
#[derive(Debug)]
pub struct Stamped {
    /// The event.
    pub event: Accepted,
    /// Per-channel offset.
    pub offset: u64,
    /// Owner epoch.
    pub epoch: u64,
}

struct Job {
    event: Accepted,
    reply: oneshot::Sender<PublishReply>,
}

/// Handle to the owner task of one partition.
#[derive(Clone)]
pub struct PartitionOwner {
    tx: mpsc::Sender<Job>,
    state: Arc<Mutex<OwnerState>>,
    dispatcher: Arc<Dispatcher>,
    /// Runs what is left of dispatches that had to wait, so shutdown waits for them.
    tracker: TaskTracker,
}

impl std::fmt::Debug for PartitionOwner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartitionOwner").finish_non_exhaustive()
    }
}

impl PartitionOwner {
    /// Starts the owner task of `partition`.
    pub fn spawn(
        partition: u32,
        epoch: u64,
        queue: usize,
        idempotency_window: usize,
        dispatcher: Arc<Dispatcher>,
        tracker: &TaskTracker,
        shutdown: CancellationToken,
    ) -> Self {
        let (tx, rx) = mpsc::channel(queue.max(1));
        let state = Arc::new(Mutex::new(OwnerState {
            partition,
            epoch,
            offsets: HashMap::new(),
            recent: HashMap::new(),
            recent_order: VecDeque::new(),
            idempotency_window,
        }));
        tracker.spawn(run(state.clone(), rx, dispatcher.clone(), shutdown));
        Self {
            tx,
            state,
            dispatcher,
            tracker: tracker.clone(),
        }
    }

    /// Starts a new epoch: offsets of every channel start over, and clients that
    /// resume from the old epoch are told that resume is impossible.
    pub async fn new_epoch(&self, epoch: u64) -> Result<()> {
        // Under the state's lock, not through the queue: a publish that skips the queue
        // (see `submit_idle`) must never be stamped with the old epoch after this returns.
        let mut state = self.state.lock().await;
        state.epoch = epoch;
        state.offsets.clear();
        state.recent.clear();
        state.recent_order.clear();
        Ok(())
    }

    /// Hands `event` to the owner and waits for its offset.
    pub async fn submit(&self, event: Accepted) -> Result<PublishReply> {
        let event = match self.submit_idle(event) {
            Ok(reply) => return Ok(reply),
            Err(event) => *event,
        };
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Job { event, reply })
            .await
            .map_err(|_| Error::Unavailable("partition owner stopped".into()))?;
        rx.await
            .map_err(|_| Error::Unavailable("partition owner stopped".into()))
    }

    /// Stamps and dispatches `event` in the caller's task when the partition is idle;
    /// gives the event back when it is not (something queued for the owner task, or a
    /// dispatch in progress), or when the owner task has stopped.
    fn submit_idle(&self, event: Accepted) -> std::result::Result<PublishReply, Box<Accepted>> {
        let Ok(mut state) = self.state.clone().try_lock_owned() else {
            return Err(Box::new(event));
        };
        // Checked under the lock: a job queued for the owner task goes first.
        if self.tx.is_closed() || self.tx.capacity() != self.tx.max_capacity() {
            return Err(Box::new(event));
        }
        let (reply, stamped) = match state.stamp(event) {
            Stamp::Remembered(reply) => return Ok(reply),
            Stamp::New(reply, stamped) => (reply, stamped),
        };
        let mut dispatch = Box::pin(dispatch_holding(state, self.dispatcher.clone(), stamped));
        // Polled once here; if it must wait, the rest runs on its own task, which keeps
        // the partition's state until it is done.
        if dispatch.as_mut().now_or_never().is_none() {
            self.tracker.spawn(dispatch);
        }
        Ok(reply)
    }
}

/// Dispatches `stamped` and only then releases the partition's state.
async fn dispatch_holding(
    state: OwnedMutexGuard<OwnerState>,
    dispatcher: Arc<Dispatcher>,
    stamped: Stamped,
) {
    dispatcher.dispatch(stamped).await;
    drop(state);
}

/// What the owner makes of an accepted event.
enum Stamp {
    /// A repeat of a remembered idempotency key: its first reply.
    Remembered(PublishReply),
    /// A new offset, and the event to dispatch.
    New(PublishReply, Stamped),
}

struct OwnerState {
    partition: u32,
    epoch: u64,
    offsets: HashMap<String, u64>,
    recent: HashMap<(String, String), PublishReply>,
    recent_order: VecDeque<(String, String)>,
    idempotency_window: usize,
}

impl OwnerState {
    /// Assigns the next offset of the event's channel, or answers a repeated
    /// idempotency key with its first reply.
    fn stamp(&mut self, event: Accepted) -> Stamp {
        if let Some(reply) = self.remembered(&event) {
            return Stamp::Remembered(reply);
        }
        let offset = {
            let next = self.offsets.entry(event.channel.clone()).or_insert(0);
            *next += 1;
            *next
        };
        let reply = PublishReply {
            offset,
            epoch: self.epoch,
            partition: self.partition,
        };
        self.remember(&event, &reply);
        let stamped = Stamped {
            event,
            offset,
            epoch: self.epoch,
        };
        Stamp::New(reply, stamped)
    }

    fn remembered(&self, event: &Accepted) -> Option<PublishReply> {
        if event.idempotency_key.is_empty() {
            return None;
        }
        self.recent
            .get(&(event.channel.clone(), event.idempotency_key.clone()))
            .copied()
    }

    fn remember(&mut self, event: &Accepted, reply: &PublishReply) {
        if event.idempotency_key.is_empty() || self.idempotency_window == 0 {
            return;
        }
        let key = (event.channel.clone(), event.idempotency_key.clone());
        self.recent.insert(key.clone(), *reply);
        self.recent_order.push_back(key);
        while self.recent_order.len() > self.idempotency_window {
            if let Some(old) = self.recent_order.pop_front() {
                self.recent.remove(&old);
            }
        }
    }
}

async fn run(
    state: Arc<Mutex<OwnerState>>,
    mut rx: mpsc::Receiver<Job>,
    dispatcher: Arc<Dispatcher>,
    shutdown: CancellationToken,
) {
    loop {
        let job = tokio::select! {
            job = rx.recv() => match job { Some(job) => job, None => break },
            () = shutdown.cancelled() => break,
        };
        let Job {
            event,
            reply: reply_tx,
        } = job;
        let mut state = state.lock().await;
        match state.stamp(event) {
            Stamp::Remembered(reply) => {
                let _ = reply_tx.send(reply);
            }
            Stamp::New(reply, stamped) => {
                // The publisher learns its offset before dispatch finishes; dispatch of
                // this partition stays sequential, which keeps per-channel order.
                let _ = reply_tx.send(reply);
                dispatcher.dispatch(stamped).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use fanout_core::bus::{Bus, MemoryBus};
    use fanout_core::dispatch::DeliveryPolicy;
    use fanout_core::graphql::{Schema, SubscribeRequest, prepare};
    use fanout_core::security::SecurityContext;
    use fanout_core::shape::Shape;
    use fanout_core::subject;
    use fanout_proto::v1::Delivery;
    use futures_util::StreamExt;
    use prost::Message as _;

    use super::*;
    use fanout_core::interest::InterestSink;

    use crate::index::ChannelIndex;

    const SDL: &str =
        "type Row { n: Int }\ntype Subscription { rows: Row @channel(key: \"rows\") }";

    fn event(n: u64) -> Accepted {
        let value = serde_json::json!({ "n": n });
        Accepted {
            channel: "rows".into(),
            payload: value.to_string().into_bytes().into(),
            value: Arc::new(value),
            tenant: String::new(),
            headers: HashMap::new(),
            idempotency_key: String::new(),
            published_at_us: 0,
        }
    }

    /// More events than the edge's bus queue holds, with nobody reading at first: the
    /// first ones are dispatched by the publishing task itself, then a dispatch has to
    /// wait and finishes on its own task while later events queue for the owner task.
    /// Every event arrives, each once, in offset order.
    #[tokio::test]
    async fn idle_and_busy_partitions_keep_every_event_in_order() {
        let schema = Schema::parse(SDL, "t.graphql").expect("schema");
        let request = SubscribeRequest {
            query: "subscription { rows { n } }".into(),
            ..Default::default()
        };
        let prepared = prepare(&schema, &request).expect("valid subscription");
        let shape = Arc::new(Shape::new(prepared, request, &SecurityContext::default()));
        let bus = MemoryBus::new();
        let mut edge = bus.subscribe(&subject::edge("e")).await.expect("sub");
        let index = Arc::new(ChannelIndex::new());
        index.add("e", shape);
        let dispatcher = Arc::new(Dispatcher::new(
            "r".into(),
            index,
            Arc::new(bus) as Arc<dyn Bus>,
            Default::default(),
            DeliveryPolicy::multi_tenant(false),
        ));
        let tracker = TaskTracker::new();
        let owner =
            PartitionOwner::spawn(0, 1, 64, 0, dispatcher, &tracker, CancellationToken::new());
        const EVENTS: u64 = 6000;
        let publisher = tokio::spawn(async move {
            for n in 1..=EVENTS {
                let reply = owner.submit(event(n)).await.expect("published");
                assert_eq!(reply.offset, n);
            }
        });
        // Let the bus queue (4,096) fill before reading.
        tokio::time::sleep(Duration::from_millis(200)).await;
        for want in 1..=EVENTS {
            let msg = tokio::time::timeout(Duration::from_secs(10), edge.next())
                .await
                .expect("delivery in time")
                .expect("bus open");
            let delivery = Delivery::decode(msg.payload).expect("delivery");
            assert_eq!(delivery.offset, want, "out of order or lost");
        }
        publisher.await.expect("publisher");
    }
}
