//! Partition owners: one task per partition assigns per-channel offsets in arrival order
//! and hands each event to dispatch, so events of a channel leave in publish order.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use bytes::Bytes;
use fanout_proto::v1::PublishReply;
use tokio::sync::{mpsc, oneshot};
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

enum Job {
    Publish {
        event: Accepted,
        reply: oneshot::Sender<PublishReply>,
    },
    /// This router (again) owns the partition: offsets restart under a new epoch.
    NewEpoch(u64),
}

/// Handle to the owner task of one partition.
#[derive(Debug, Clone)]
pub struct PartitionOwner {
    tx: mpsc::Sender<Job>,
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
        let state = OwnerState {
            partition,
            epoch,
            offsets: HashMap::new(),
            recent: HashMap::new(),
            recent_order: VecDeque::new(),
            idempotency_window,
        };
        tracker.spawn(run(state, rx, dispatcher, shutdown));
        Self { tx }
    }

    /// Starts a new epoch: offsets of every channel start over, and clients that
    /// resume from the old epoch are told that resume is impossible.
    pub async fn new_epoch(&self, epoch: u64) -> Result<()> {
        self.tx
            .send(Job::NewEpoch(epoch))
            .await
            .map_err(|_| Error::Unavailable("partition owner stopped".into()))
    }

    /// Hands `event` to the owner and waits for its offset.
    pub async fn submit(&self, event: Accepted) -> Result<PublishReply> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Job::Publish { event, reply })
            .await
            .map_err(|_| Error::Unavailable("partition owner stopped".into()))?;
        rx.await
            .map_err(|_| Error::Unavailable("partition owner stopped".into()))
    }
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
    mut state: OwnerState,
    mut rx: mpsc::Receiver<Job>,
    dispatcher: Arc<Dispatcher>,
    shutdown: CancellationToken,
) {
    loop {
        let job = tokio::select! {
            job = rx.recv() => match job { Some(job) => job, None => break },
            () = shutdown.cancelled() => break,
        };
        let (event, reply_tx) = match job {
            Job::Publish { event, reply } => (event, reply),
            Job::NewEpoch(epoch) => {
                state.epoch = epoch;
                state.offsets.clear();
                state.recent.clear();
                state.recent_order.clear();
                continue;
            }
        };
        if let Some(reply) = state.remembered(&event) {
            let _ = reply_tx.send(reply);
            continue;
        }
        let offset = {
            let next = state.offsets.entry(event.channel.clone()).or_insert(0);
            *next += 1;
            *next
        };
        let reply = PublishReply {
            offset,
            epoch: state.epoch,
            partition: state.partition,
        };
        state.remember(&event, &reply);
        // The publisher learns its offset before dispatch finishes; dispatch of this
        // partition stays sequential, which keeps per-channel order.
        let _ = reply_tx.send(reply);
        dispatcher
            .dispatch(Stamped {
                event,
                offset,
                epoch: state.epoch,
            })
            .await;
    }
}
