//! Deliveries: bus messages → `next` frames on local sockets.
//!
//! A [`Delivery`] carries, per shape, the `next` payload rendered once upstream. For
//! each local subscriber the edge only splices the payload behind the subscription's
//! precomputed prefix (DESIGN §7): one buffer per subscriber, no serialization.

use std::sync::Arc;

use fanout_core::bus::Bus;
use fanout_core::shape::ShapeId;
use fanout_core::{subject, telemetry};
use fanout_proto::v1::Delivery;
use futures_util::StreamExt;
use prost::Message as _;
use tokio_util::sync::CancellationToken;

use crate::edge::Edge;
use crate::error::{Error, Result};
use crate::message;
use crate::outbound::Outgoing;

impl Edge {
    /// Subscribes to this edge's delivery subject and hands every [`Delivery`] to
    /// [`Edge::deliver`] until `shutdown`. Undecodable messages are logged and skipped.
    pub async fn run_deliveries(
        self: Arc<Self>,
        bus: Arc<dyn Bus>,
        shutdown: CancellationToken,
    ) -> Result<()> {
        let subject = subject::edge(&self.config.edge_id);
        let mut deliveries = bus.subscribe(&subject).await?;
        loop {
            let msg = tokio::select! {
                biased;
                () = shutdown.cancelled() => return Ok(()),
                msg = deliveries.next() => msg,
            };
            let Some(msg) = msg else {
                return Err(Error::DeliveryStreamEnded { subject });
            };
            match Delivery::decode(msg.payload) {
                Ok(delivery) => self.deliver(&delivery),
                Err(e) => tracing::warn!(%subject, error = %e, "undecodable delivery skipped"),
            }
        }
    }

    /// Queues the delivery's payloads to every local subscriber of their shapes.
    /// Never waits: a connection whose queue is full is closed as a slow consumer.
    pub fn deliver(&self, delivery: &Delivery) {
        let mut frames = 0u64;
        for item in &delivery.items {
            let Some(shape) = ShapeId::from_slice(&item.shape_id) else {
                tracing::warn!(channel = %delivery.channel, "delivery item with a malformed shape id");
                continue;
            };
            let Ok(payload) = std::str::from_utf8(&item.payload) else {
                tracing::warn!(%shape, "delivery payload is not UTF-8; skipped");
                continue;
            };
            self.index.for_each_subscriber(shape, |subscriber| {
                if !subscriber.is_active() {
                    return;
                }
                let frame = message::next_frame(&subscriber.prefix, payload);
                if subscriber.outbound.send(Outgoing::Next {
                    frame,
                    active: subscriber.active.clone(),
                }) {
                    frames += 1;
                }
            });
        }
        if frames > 0 {
            metrics::counter!(telemetry::EDGE_FRAMES_SENT).increment(frames);
        }
    }
}
