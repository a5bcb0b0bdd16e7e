//! Deliveries: bus messages → `next` frames on local sockets.
//!
//! A [`Delivery`] carries, per shape, the `next` payload rendered once upstream. Each
//! connection with subscribers of the shape gets one queue item: the payload (shared,
//! not copied) and its subscriptions' precomputed prefixes (DESIGN §7); the
//! connection's writer splices them into its write buffer: no serialization, no buffer
//! per frame.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fanout_core::bus::{Bus, BusMessage};
use fanout_core::shape::ShapeId;
use fanout_core::{subject, telemetry, trace};
use fanout_proto::v1::Delivery;
use futures_util::{FutureExt, StreamExt};
use prost::Message as _;
use tokio_util::sync::CancellationToken;

use crate::close::CloseReason;
use crate::edge::Edge;
use crate::error::{Error, Result};
use crate::outbound::{Outgoing, PendingWakes};
use crate::reorder::{Reorder, ReorderStats};

/// Deliveries one router's stream may hold back before a gap is skipped early.
const REORDER_MAX_PENDING: usize = 4096;
/// Bus messages taken per wake-up of the delivery loop when more are already waiting.
const MAX_BATCH: usize = 64;

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
        let mut traces = PendingTraces::default();
        let mut wakes = PendingWakes::default();
        loop {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => return Ok(()),
                msg = deliveries.next() => {
                    let Some(msg) = msg else {
                        return Err(Error::DeliveryStreamEnded { subject });
                    };
                    accept(&subject, msg, &mut reorder, &mut traces, &mut ready);
                    // Take what else has arrived, so that under load a connection's
                    // frames of several events leave in one write.
                    for _ in 1..MAX_BATCH {
                        match deliveries.next().now_or_never() {
                            Some(Some(msg)) => {
                                accept(&subject, msg, &mut reorder, &mut traces, &mut ready);
                            }
                            Some(None) => return Err(Error::DeliveryStreamEnded { subject }),
                            None => break,
                        }
                    }
                }
                _ = tick.tick(), if reorder.has_gap() => reorder.expire(Instant::now(), &mut ready),
            }
            for delivery in ready.drain(..) {
                let span = tracing::debug_span!(
                    target: trace::SPAN_TARGET,
                    "deliver",
                    otel.kind = "consumer",
                    channel = %delivery.channel,
                    offset = delivery.offset,
                    seq = delivery.seq,
                    frames = tracing::field::Empty,
                );
                trace::set_parent(&span, traces.take(&delivery).as_deref());
                let frames = span.in_scope(|| self.deliver_batched(&delivery, &mut wakes));
                span.record("frames", frames);
                // Each event's frames leave as soon as it is fanned out: a connection's
                // frames of one event (several subscriptions) go out in one write, and
                // frames of later events join them while the writer is still busy.
                wakes.wake_all();
            }
            traces.bound(REORDER_MAX_PENDING);
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

    /// Queues the delivery's payloads to every local subscriber of their shapes and
    /// returns how many frames were queued. Never waits: a connection whose queue is
    /// full is closed as a slow consumer.
    pub fn deliver(&self, delivery: &Delivery) -> u64 {
        self.deliver_batched(delivery, &mut PendingWakes::default())
    }

    /// [`Edge::deliver`], leaving the writers to wake in `wakes` (see
    /// [`crate::outbound::Outbound::send_batched`]).
    pub fn deliver_batched(&self, delivery: &Delivery, wakes: &mut PendingWakes) -> u64 {
        let mut stats = DeliverStats::default();
        for item in &delivery.items {
            let Some(shape) = ShapeId::from_slice(&item.shape_id) else {
                tracing::warn!(channel = %delivery.channel, "delivery item with a malformed shape id");
                continue;
            };
            if std::str::from_utf8(&item.payload).is_err() {
                tracing::warn!(%shape, "delivery payload is not UTF-8; skipped");
                continue;
            }
            // The decoded message's own bytes, not a copy; every subscriber's frame
            // shares them.
            let payload = &item.payload;
            let before = stats.frames;
            self.index.for_each_connection(shape, |subscribers| {
                let targets = subscribers.targets();
                let frames = targets.len() as u64;
                let next = Outgoing::Next {
                    targets: targets.clone(),
                    payload: payload.clone(),
                };
                let outbound = &subscribers.outbound;
                if outbound.send_batched(next, wakes) {
                    stats.frames += frames;
                    stats.deepest = stats.deepest.max(outbound.queued());
                } else if outbound.reason() == Some(CloseReason::SlowConsumer) {
                    stats.slow_consumer += frames;
                } else {
                    stats.closed += frames;
                }
            });
            let queued = stats.frames - before;
            if queued > 0
                && telemetry::tenant_labels_on()
                && let Some(tenant) = self
                    .index
                    .tenant_of(shape)
                    .and_then(|t| telemetry::tenant_label(&t))
            {
                metrics::counter!(telemetry::EDGE_TENANT_FRAMES, "tenant" => tenant)
                    .increment(queued);
            }
        }
        stats.report(delivery);
        stats.frames
    }
}

/// Decodes one bus message and hands it to the reorder buffer; an undecodable one is
/// logged and skipped.
fn accept(
    subject: &str,
    msg: BusMessage,
    reorder: &mut Reorder,
    traces: &mut PendingTraces,
    ready: &mut Vec<Delivery>,
) {
    let traceparent = msg.header(trace::TRACEPARENT).map(str::to_owned);
    match Delivery::decode(msg.payload) {
        Ok(delivery) => {
            tracing::debug!(
                trace_id = traceparent.as_deref().and_then(trace::trace_id),
                channel = %delivery.channel,
                offset = delivery.offset,
                seq = delivery.seq,
                "delivery received"
            );
            if let Some(tp) = traceparent.filter(|_| fanout_core::otel::enabled()) {
                traces.remember(&delivery, tp);
            }
            reorder.push(delivery, Instant::now(), ready);
        }
        Err(e) => tracing::warn!(%subject, error = %e, "undecodable delivery skipped"),
    }
}

/// What one delivery did, reported once per delivery (never per subscriber).
#[derive(Debug, Default)]
struct DeliverStats {
    frames: u64,
    slow_consumer: u64,
    closed: u64,
    deepest: usize,
}

impl DeliverStats {
    fn report(&self, delivery: &Delivery) {
        if self.frames > 0 {
            metrics::counter!(telemetry::EDGE_FRAMES_SENT).increment(self.frames);
            metrics::gauge!(telemetry::EDGE_OUTBOUND_QUEUE_MAX).set(self.deepest as f64);
        }
        if !delivery.items.is_empty() {
            metrics::counter!(telemetry::EDGE_EVENTS_DELIVERED).increment(1);
            if delivery.published_at_us > 0 {
                let now = now_us();
                let seconds = now.saturating_sub(delivery.published_at_us) as f64 / 1e6;
                metrics::histogram!(telemetry::PUBLISH_TO_DELIVER_SECONDS).record(seconds);
            }
        }
        for (reason, n) in [
            ("slow_consumer", self.slow_consumer),
            ("closed", self.closed),
        ] {
            if n > 0 {
                metrics::counter!(telemetry::EDGE_FRAMES_DROPPED, "reason" => reason).increment(n);
            }
        }
    }
}

/// The `traceparent` of deliveries held in the reorder buffer, kept only while spans
/// are exported, so that each `deliver` span joins its own event's trace.
#[derive(Debug, Default)]
struct PendingTraces(HashMap<(String, u64), String>);

impl PendingTraces {
    fn remember(&mut self, delivery: &Delivery, traceparent: String) {
        self.0
            .insert((delivery.router.clone(), delivery.seq), traceparent);
    }

    fn take(&mut self, delivery: &Delivery) -> Option<String> {
        if self.0.is_empty() {
            return None;
        }
        self.0.remove(&(delivery.router.clone(), delivery.seq))
    }

    /// Forgets everything once more than `max` entries linger (deliveries dropped as
    /// late never come out of the buffer).
    fn bound(&mut self, max: usize) {
        if self.0.len() > max {
            self.0.clear();
        }
    }
}

/// Unix time in microseconds.
fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}
