//! [`Router`]: validates publishes, routes them to partition owners, holds the index.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use fanout_core::bus::Bus;
use fanout_core::partition::partition_of;
use fanout_core::telemetry;
use fanout_proto::v1::{PublishReply, PublishRequest};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::dispatch::Dispatcher;
use crate::index::ChannelIndex;
use crate::owner::{Accepted, PartitionOwner};
use crate::{Result, RouterConfig, validate};

/// A router that owns every partition (standalone mode).
#[derive(Debug)]
pub struct Router {
    config: RouterConfig,
    index: Arc<ChannelIndex>,
    owners: Vec<PartitionOwner>,
    epoch: u64,
}

impl Router {
    /// Starts the partition owners on `tracker`; they stop when `shutdown` fires.
    pub fn start(
        config: RouterConfig,
        bus: Arc<dyn Bus>,
        tracker: &TaskTracker,
        shutdown: CancellationToken,
    ) -> Arc<Self> {
        let index = Arc::new(ChannelIndex::new());
        let epoch = now_us() / 1000;
        let dispatcher = Arc::new(Dispatcher::new(
            config.router_id.clone(),
            index.clone(),
            bus,
            config.python_fields.clone(),
        ));
        let owners = (0..config.partitions.max(1))
            .map(|p| {
                PartitionOwner::spawn(
                    p,
                    epoch,
                    config.partition_queue,
                    config.idempotency_window,
                    dispatcher.clone(),
                    tracker,
                    shutdown.clone(),
                )
            })
            .collect();
        Arc::new(Self {
            config,
            index,
            owners,
            epoch,
        })
    }

    /// The channel index (the interest sink edges report to).
    pub fn index(&self) -> Arc<ChannelIndex> {
        self.index.clone()
    }

    /// Epoch of this router's partitions.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Validates and publishes one event; returns its offset once assigned.
    pub async fn publish(&self, request: PublishRequest) -> Result<PublishReply> {
        validate::channel(&request.channel)?;
        let value = validate::payload(&request.payload, self.config.max_payload_bytes)?;
        let partition = partition_of(&request.channel, self.config.partitions);
        let owner = self
            .owners
            .get(partition as usize)
            .ok_or_else(|| crate::Error::Unavailable("no owner for partition".into()))?;
        let reply = owner
            .submit(Accepted {
                channel: request.channel,
                payload: request.payload,
                value: Arc::new(value),
                tenant: request.tenant,
                headers: request.headers,
                idempotency_key: request.idempotency_key,
                published_at_us: now_us(),
            })
            .await?;
        metrics::counter!(telemetry::ROUTER_EVENTS_PUBLISHED).increment(1);
        Ok(reply)
    }
}

/// Unix time in microseconds.
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}
