//! Deliveries: bus messages → `next` frames on local sockets.
//!
//! A [`Delivery`] carries, per shape, the `next` payload rendered once upstream. For
//! each local subscriber the edge only splices the payload behind the subscription's
//! precomputed prefix (DESIGN §7): one buffer per subscriber, no serialization.

use std::sync::Arc;
use std::time::{Duration, Instant};

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
use crate::reorder::{Reorder, ReorderStats};

/// Deliveries one router's stream may hold back before a gap is skipped early.
const REORDER_MAX_PENDING: usize = 4096;

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
        let window = self.config.reorder_window;
        let mut reorder = Reorder::new(window, REORDER_MAX_PENDING);
        let mut tick = tokio::time::interval((window / 4).max(Duration::from_millis(5)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut ready = Vec::new();
        let mut reported = ReorderStats::default();
        loop {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => return Ok(()),
                msg = deliveries.next() => {
                    let Some(msg) = msg else {
                        return Err(Error::DeliveryStreamEnded { subject });
                    };
                    let trace_id = msg
                        .header(fanout_core::trace::TRACEPARENT)
                        .and_then(fanout_core::trace::trace_id)
                        .map(str::to_owned);
                    match Delivery::decode(msg.payload) {
                        Ok(delivery) => {
                            tracing::debug!(
                                trace_id,
                                channel = %delivery.channel,
                                offset = delivery.offset,
                                seq = delivery.seq,
                                "delivery received"
                            );
                            reorder.push(delivery, Instant::now(), &mut ready);
                        }
                        Err(e) => tracing::warn!(%subject, error = %e, "undecodable delivery skipped"),
                    }
                }
                _ = tick.tick(), if reorder.has_gap() => reorder.expire(Instant::now(), &mut ready),
            }
            for delivery in ready.drain(..) {
                self.deliver(&delivery);
            }
            let stats = reorder.stats();
            if stats != reported {
                metrics::counter!(telemetry::EDGE_DELIVERY_GAPS)
                    .increment(stats.skipped - reported.skipped);
                metrics::counter!(telemetry::EDGE_LATE_DELIVERIES)
                    .increment(stats.late - reported.late);
                reported = stats;
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
