//! [`Router`]: validates publishes, routes them to partition owners, holds the index.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fanout_core::bus::Bus;
use fanout_core::dispatch::DeliveryPolicy;
use fanout_core::partition::partition_of;
use fanout_core::telemetry;
use fanout_proto::v1::{
    ForwardedPublish, ForwardedReply, PublishReply, PublishRequest, forwarded_reply,
};
use prost::Message;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::dispatch::Dispatcher;
use crate::index::ChannelIndex;
use crate::owner::{Accepted, PartitionOwner};
use crate::{Result, RouterConfig, validate};

/// How long a router waits for the partition owner to take a forwarded publish. A live
/// owner answers in milliseconds; this bounds a publish caught by an owner's death, so
/// that the publisher can retry (to the new owner) well within the cluster's 5 s
/// failover, instead of waiting that long for the dead one.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(2);

/// A router: in standalone mode it owns every partition; in cluster mode
/// [`crate::cluster`] tells it which partitions it owns and it forwards the rest.
pub struct Router {
    config: RouterConfig,
    index: Arc<ChannelIndex>,
    owners: Vec<PartitionOwner>,
    owned: Vec<AtomicBool>,
    bus: Arc<dyn Bus>,
    epoch: u64,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Router")
            .field("router_id", &self.config.router_id)
            .field("owned", &self.owned_partitions().len())
            .finish_non_exhaustive()
    }
}

impl Router {
    /// Starts a router that owns every partition (standalone mode). The partition
    /// owners run on `tracker` and stop when `shutdown` fires.
    pub fn start(
        config: RouterConfig,
        bus: Arc<dyn Bus>,
        tracker: &TaskTracker,
        shutdown: CancellationToken,
    ) -> Arc<Self> {
        Self::build(config, bus, tracker, shutdown, true)
    }

    /// Starts a router that owns no partition until [`Router::set_owned`] says so
    /// (cluster mode).
    pub fn start_cluster(
        config: RouterConfig,
        bus: Arc<dyn Bus>,
        tracker: &TaskTracker,
        shutdown: CancellationToken,
    ) -> Arc<Self> {
        Self::build(config, bus, tracker, shutdown, false)
    }

    fn build(
        config: RouterConfig,
        bus: Arc<dyn Bus>,
        tracker: &TaskTracker,
        shutdown: CancellationToken,
        own_all: bool,
    ) -> Arc<Self> {
        let index = Arc::new(ChannelIndex::new());
        let epoch = now_us() / 1000;
        let dispatcher = Arc::new(Dispatcher::new(
            config.router_id.clone(),
            index.clone(),
            bus.clone(),
            config.python_fields.clone(),
            DeliveryPolicy::multi_tenant(config.multi_tenant),
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
        let owned = (0..config.partitions.max(1))
            .map(|_| AtomicBool::new(own_all))
            .collect();
        Arc::new(Self {
            config,
            index,
            owners,
            owned,
            bus,
            epoch,
        })
    }

    /// This router's configuration.
    pub fn config(&self) -> &RouterConfig {
        &self.config
    }

    /// Whether this router owns `partition` now.
    pub fn owns(&self, partition: u32) -> bool {
        self.owned
            .get(partition as usize)
            .is_some_and(|o| o.load(Ordering::Acquire))
    }

    /// The partitions this router owns now.
    pub fn owned_partitions(&self) -> Vec<u32> {
        (0..self.owned.len() as u32)
            .filter(|p| self.owns(*p))
            .collect()
    }

    /// Marks `partition` owned or not. Gaining a partition starts a new epoch for it.
    pub async fn set_owned(&self, partition: u32, owned: bool) -> Result<()> {
        let (Some(flag), Some(owner)) = (
            self.owned.get(partition as usize),
            self.owners.get(partition as usize),
        ) else {
            return Ok(());
        };
        if owned && !flag.load(Ordering::Acquire) {
            owner.new_epoch(now_us() / 1000).await?;
        }
        flag.store(owned, Ordering::Release);
        Ok(())
    }

    /// The channel index (the interest sink edges report to).
    pub fn index(&self) -> Arc<ChannelIndex> {
        self.index.clone()
    }

    /// Epoch of this router's partitions.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Validates and publishes one event; returns its offset once assigned. A publish
    /// for a partition owned elsewhere is forwarded to its owner over the bus.
    pub async fn publish(&self, request: PublishRequest) -> Result<PublishReply> {
        validate::channel(&request.channel)?;
        let value = validate::payload(&request.payload, self.config.max_payload_bytes)?;
        let partition = partition_of(&request.channel, self.config.partitions);
        if self.owns(partition) {
            self.submit_local(partition, request, value, now_us()).await
        } else {
            self.forward(partition, request).await
        }
    }

    /// Publishes on a partition this router owns.
    pub async fn submit_local(
        &self,
        partition: u32,
        request: PublishRequest,
        value: serde_json::Value,
        published_at_us: u64,
    ) -> Result<PublishReply> {
        let owner = self
            .owners
            .get(partition as usize)
            .ok_or_else(|| crate::Error::Unavailable("no owner for partition".into()))?;
        let tenant_label = (!request.tenant.is_empty())
            .then(|| telemetry::tenant_label(&request.tenant))
            .flatten();
        let reply = owner
            .submit(Accepted {
                channel: request.channel,
                payload: request.payload,
                value: Arc::new(value),
                tenant: request.tenant,
                headers: request.headers,
                idempotency_key: request.idempotency_key,
                published_at_us,
            })
            .await?;
        metrics::counter!(telemetry::ROUTER_EVENTS_PUBLISHED).increment(1);
        if let Some(tenant) = tenant_label {
            metrics::counter!(telemetry::ROUTER_TENANT_EVENTS_PUBLISHED, "tenant" => tenant)
                .increment(1);
        }
        Ok(reply)
    }

    /// Takes a publish forwarded by another router (already validated there, checked
    /// again here) and answers with the reply to send back.
    pub async fn accept_forwarded(
        &self,
        partition: u32,
        forwarded: ForwardedPublish,
    ) -> ForwardedReply {
        let result = async {
            let request = forwarded.request.ok_or_else(|| {
                crate::Error::InvalidRequest("forwarded publish without request".into())
            })?;
            validate::channel(&request.channel)?;
            let value = validate::payload(&request.payload, self.config.max_payload_bytes)?;
            if partition_of(&request.channel, self.config.partitions) != partition
                || !self.owns(partition)
            {
                return Err(crate::Error::Unavailable("partition moved; retry".into()));
            }
            self.submit_local(partition, request, value, forwarded.published_at_us)
                .await
        }
        .await;
        ForwardedReply {
            result: Some(match result {
                Ok(reply) => forwarded_reply::Result::Ok(reply),
                Err(crate::Error::InvalidRequest(m)) => forwarded_reply::Result::Invalid(m),
                Err(e) => forwarded_reply::Result::Unavailable(e.to_string()),
            }),
        }
    }

    async fn forward(&self, partition: u32, request: PublishRequest) -> Result<PublishReply> {
        let forwarded = ForwardedPublish {
            request: Some(request),
            published_at_us: now_us(),
        };
        let answer = self
            .bus
            .request(
                &fanout_core::subject::partition(partition),
                forwarded.encode_to_vec().into(),
                FORWARD_TIMEOUT,
            )
            .await
            .map_err(|e| {
                crate::Error::Unavailable(format!(
                    "partition {partition} has no reachable owner: {e}"
                ))
            })?;
        let reply = ForwardedReply::decode(answer).map_err(|_| {
            crate::Error::Unavailable("malformed reply from the partition owner".into())
        })?;
        match reply.result {
            Some(forwarded_reply::Result::Ok(r)) => Ok(r),
            Some(forwarded_reply::Result::Invalid(m)) => Err(crate::Error::InvalidRequest(m)),
            Some(forwarded_reply::Result::Unavailable(m)) => Err(crate::Error::Unavailable(m)),
            None => Err(crate::Error::Unavailable(
                "empty reply from the partition owner".into(),
            )),
        }
    }
}

/// Unix time in microseconds.
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}
