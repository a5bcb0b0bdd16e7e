//! Dispatch of stamped events: shapes without a Python resolver are resolved here; an
//! event with any Python-resolved shape goes whole to the resolver workers, so each
//! event takes exactly one path.

use std::collections::HashSet;
use std::sync::Arc;

use fanout_core::bus::Bus;
use fanout_core::dispatch::{DeliveryBatch, passthrough};
use fanout_core::render::EventMeta;
use fanout_core::{subject, telemetry};
use fanout_proto::v1::{Event, ResolveTask, ShapeTarget};
use prost::Message;

use crate::index::ChannelIndex;
use crate::owner::Stamped;

/// Sends each stamped event towards the edges that want it.
pub struct Dispatcher {
    router_id: String,
    index: Arc<ChannelIndex>,
    bus: Arc<dyn Bus>,
    python_fields: HashSet<String>,
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher")
            .field("router_id", &self.router_id)
            .finish()
    }
}

impl Dispatcher {
    /// A dispatcher over `index` that publishes on `bus`.
    pub fn new(
        router_id: String,
        index: Arc<ChannelIndex>,
        bus: Arc<dyn Bus>,
        python_fields: HashSet<String>,
    ) -> Self {
        Self {
            router_id,
            index,
            bus,
            python_fields,
        }
    }

    /// Dispatches one event. Bus failures are logged; the event is lost for the edges
    /// it could not reach (core mode is at-most-once).
    pub async fn dispatch(&self, stamped: Stamped) {
        let targets = self.index.snapshot(&stamped.event.channel);
        if targets.is_empty() {
            return;
        }
        let needs_python = targets
            .iter()
            .any(|t| self.python_fields.contains(t.shape.field()));
        if needs_python {
            self.to_workers(stamped, targets).await;
        } else {
            self.inline(stamped, targets).await;
        }
    }

    async fn inline(&self, stamped: Stamped, targets: Vec<crate::index::ShapeInterest>) {
        let meta = EventMeta {
            channel: &stamped.event.channel,
            offset: stamped.offset,
            epoch: stamped.epoch,
        };
        let mut batch = DeliveryBatch::new(meta, &self.router_id, stamped.event.published_at_us);
        for target in &targets {
            let payload = passthrough(&target.shape, &stamped.event.value, meta);
            batch.add(target.shape.id, &payload, &target.edges);
        }
        for (edge, delivery) in batch.into_deliveries() {
            let bytes = delivery.encode_to_vec();
            match self.bus.publish(&subject::edge(&edge), bytes.into()).await {
                Ok(()) => metrics::counter!(telemetry::DELIVERIES_SENT).increment(1),
                Err(e) => tracing::warn!(%edge, error = %e, "delivery not sent"),
            }
        }
    }

    async fn to_workers(&self, stamped: Stamped, targets: Vec<crate::index::ShapeInterest>) {
        let event = stamped.event;
        let task = ResolveTask {
            event: Some(Event {
                channel: event.channel,
                payload: event.payload,
                tenant: event.tenant,
                headers: event.headers,
                offset: stamped.offset,
                epoch: stamped.epoch,
                published_at_us: event.published_at_us,
            }),
            shapes: targets
                .into_iter()
                .map(|t| ShapeTarget {
                    spec: Some(t.shape.spec()),
                    edges: t.edges,
                })
                .collect(),
            edge_seq: Default::default(),
            router: self.router_id.clone(),
        };
        if let Err(e) = self
            .bus
            .publish(subject::RESOLVE, task.encode_to_vec().into())
            .await
        {
            tracing::warn!(error = %e, "resolve task not sent");
        }
    }
}
