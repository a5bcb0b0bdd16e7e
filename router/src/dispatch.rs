//! Dispatch of stamped events. First the security decisions of
//! [`fanout_core::dispatch::EventGate`]: tenant isolation and each shape's `@filter`, so
//! that shapes which may not see the event are dropped before any resolver runs. Then
//! shapes without a Python resolver are resolved here; an event with any admitted
//! Python-resolved shape goes whole (its admitted shapes) to the resolver workers, so
//! each event takes exactly one path.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use dashmap::DashMap;

use fanout_core::bus::Bus;
use fanout_core::dispatch::{DeliveryBatch, DeliveryPolicy, EventGate, passthrough};
use fanout_core::render::EventMeta;
use fanout_core::{subject, telemetry, trace};
use fanout_proto::v1::{Event, ResolveTask, ShapeTarget};
use prost::Message;
use tracing::Instrument as _;

use crate::index::ChannelIndex;
use crate::owner::Stamped;

fn dropped(reason: &'static str) {
    metrics::counter!(telemetry::EVENTS_DROPPED, "reason" => reason).increment(1);
}

/// Sends each stamped event towards the edges that want it.
pub struct Dispatcher {
    router_id: String,
    /// `router_id#start`: names this router incarnation's sequence numbers, so an edge
    /// never mixes them up with those of an earlier run of the same router.
    instance: String,
    /// Next sequence number per edge (DESIGN §6).
    seqs: DashMap<String, AtomicU64>,
    index: Arc<ChannelIndex>,
    bus: Arc<dyn Bus>,
    python_fields: HashSet<String>,
    policy: DeliveryPolicy,
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher")
            .field("router_id", &self.router_id)
            .field("policy", &self.policy)
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
        policy: DeliveryPolicy,
    ) -> Self {
        let started = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_micros())
            .unwrap_or(0);
        Self {
            instance: format!("{router_id}#{started}"),
            seqs: DashMap::new(),
            router_id,
            index,
            bus,
            python_fields,
            policy,
        }
    }

    /// Dispatches one event. Bus failures are logged; the event is lost for the edges
    /// it could not reach (core mode is at-most-once).
    /// The next sequence number for `edge` (starting at 1).
    fn next_seq(&self, edge: &str) -> u64 {
        if let Some(counter) = self.seqs.get(edge) {
            return counter.fetch_add(1, Ordering::Relaxed) + 1;
        }
        self.seqs
            .entry(edge.to_owned())
            .or_insert_with(|| AtomicU64::new(0))
            .fetch_add(1, Ordering::Relaxed)
            + 1
    }

    pub async fn dispatch(&self, stamped: Stamped) {
        let span = tracing::debug_span!(
            target: trace::SPAN_TARGET,
            "dispatch",
            channel = %stamped.event.channel,
            offset = stamped.offset,
            shapes = tracing::field::Empty,
            path = tracing::field::Empty,
        );
        let parent = stamped.event.headers.get(trace::TRACEPARENT).cloned();
        trace::set_parent(&span, parent.as_deref());
        self.route(stamped, parent.as_deref())
            .instrument(span)
            .await;
    }

    async fn route(&self, stamped: Stamped, parent: Option<&str>) {
        let targets = {
            let event = &stamped.event;
            let gate = EventGate::new(self.policy, &event.value, &event.tenant);
            if !gate.admits_event() {
                return;
            }
            let mut targets = self.index.snapshot(&event.channel);
            if targets.is_empty() {
                dropped("no_interest");
                return;
            }
            targets.retain(|t| gate.admits(&t.shape));
            targets
        };
        if targets.is_empty() {
            dropped("filtered");
            return;
        }
        let needs_python = targets
            .iter()
            .any(|t| self.python_fields.contains(t.shape.field()));
        let span = tracing::Span::current();
        span.record("shapes", targets.len());
        let traceparent = trace::outgoing(&span, parent);
        if needs_python {
            span.record("path", "workers");
            self.to_workers(stamped, targets, &traceparent).await;
        } else {
            span.record("path", "inline");
            self.inline(stamped, targets, &traceparent).await;
        }
    }

    /// Resolves an event whose shapes have no Python resolver here: its `resolve` span
    /// is a child of the dispatch span.
    async fn inline(
        &self,
        stamped: Stamped,
        targets: Vec<crate::index::ShapeInterest>,
        parent: &str,
    ) {
        let span = tracing::debug_span!(
            target: trace::SPAN_TARGET,
            "resolve",
            channel = %stamped.event.channel,
            offset = stamped.offset,
            shapes = targets.len(),
            resolver = "none",
        );
        let traceparent = trace::outgoing(&span, Some(parent));
        let entered = span.enter();
        let meta = EventMeta {
            channel: &stamped.event.channel,
            offset: stamped.offset,
            epoch: stamped.epoch,
        };
        let mut batch = DeliveryBatch::new(meta, &self.instance, stamped.event.published_at_us);
        for target in &targets {
            let payload = passthrough(&target.shape, &stamped.event.value, meta);
            batch.add(target.shape.id, &payload, &target.edges);
        }
        tracing::debug!(
            trace_id = trace::trace_id(&traceparent),
            channel = %stamped.event.channel,
            offset = stamped.offset,
            "dispatching inline"
        );
        let deliveries: Vec<_> = batch.into_sequenced(|edge| self.next_seq(edge)).collect();
        drop(entered);
        for (edge, delivery) in deliveries {
            let bytes = delivery.encode_to_vec();
            match self
                .bus
                .publish_with_headers(
                    &subject::edge(&edge),
                    &[(trace::TRACEPARENT, &traceparent)],
                    bytes.into(),
                )
                .await
            {
                Ok(()) => metrics::counter!(telemetry::DELIVERIES_SENT).increment(1),
                Err(e) => tracing::warn!(%edge, error = %e, "delivery not sent"),
            }
        }
    }

    async fn to_workers(
        &self,
        stamped: Stamped,
        targets: Vec<crate::index::ShapeInterest>,
        traceparent: &str,
    ) {
        let event = stamped.event;
        tracing::debug!(
            trace_id = trace::trace_id(traceparent),
            channel = %event.channel,
            offset = stamped.offset,
            "sending to resolver workers"
        );
        let mut edge_seq = std::collections::HashMap::new();
        for target in &targets {
            for edge in &target.edges {
                if !edge_seq.contains_key(edge) {
                    edge_seq.insert(edge.clone(), self.next_seq(edge));
                }
            }
        }
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
            edge_seq,
            router: self.instance.clone(),
        };
        if let Err(e) = self
            .bus
            .publish_with_headers(
                subject::RESOLVE,
                &[(trace::TRACEPARENT, traceparent)],
                task.encode_to_vec().into(),
            )
            .await
        {
            tracing::warn!(error = %e, "resolve task not sent");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::time::Duration;

    use fanout_core::bus::{BusSubscription, MemoryBus};
    use fanout_core::graphql::{Schema, SubscribeRequest, prepare};
    use fanout_core::interest::InterestSink;
    use fanout_core::security::SecurityContext;
    use fanout_core::shape::Shape;
    use fanout_proto::v1::Delivery;
    use futures_util::StreamExt;

    use super::*;
    use crate::owner::Accepted;

    const SDL: &str = r#"
type Row { owner: String, n: Int }
type Subscription {
  mine: Row @channel(key: "rows") @filter(expr: "event.owner == claims.sub")
  plain: Row @channel(key: "rows")
}
"#;

    fn shape(schema: &Schema, query: &str, sub: &str, tenant: &str) -> Arc<Shape> {
        let request = SubscribeRequest {
            query: query.into(),
            ..Default::default()
        };
        let prepared = prepare(schema, &request).expect("valid subscription");
        let security = SecurityContext {
            subject: Some(sub.into()),
            tenant: Some(tenant.into()),
            ..Default::default()
        };
        Arc::new(Shape::new(prepared, request, &security))
    }

    fn stamped(owner: &str, tenant: &str) -> Stamped {
        let value = serde_json::json!({ "owner": owner, "n": 1 });
        Stamped {
            event: Accepted {
                channel: "rows".into(),
                payload: value.to_string().into_bytes().into(),
                value: Arc::new(value),
                tenant: tenant.into(),
                headers: HashMap::new(),
                idempotency_key: String::new(),
                published_at_us: 0,
            },
            offset: 1,
            epoch: 1,
        }
    }

    async fn next(sub: &mut BusSubscription) -> Option<bytes::Bytes> {
        tokio::time::timeout(Duration::from_millis(300), sub.next())
            .await
            .ok()
            .flatten()
            .map(|m| m.payload)
    }

    struct Setup {
        dispatcher: Dispatcher,
        resolve: BusSubscription,
        edge: BusSubscription,
        alice: Arc<Shape>,
        bob: Arc<Shape>,
        plain_t2: Arc<Shape>,
    }

    async fn setup(python: &[&str], policy: DeliveryPolicy) -> Setup {
        let schema = Schema::parse(SDL, "t.graphql").expect("schema");
        let bus = MemoryBus::new();
        let resolve = bus.subscribe(subject::RESOLVE).await.expect("sub");
        let edge = bus.subscribe(&subject::edge("e")).await.expect("sub");
        let index = Arc::new(ChannelIndex::new());
        let alice = shape(&schema, "subscription { mine { n } }", "alice", "t1");
        let bob = shape(&schema, "subscription { mine { n } }", "bob", "t1");
        let plain_t2 = shape(&schema, "subscription { plain { n } }", "carol", "t2");
        for s in [&alice, &bob, &plain_t2] {
            index.add("e", s.clone());
        }
        let dispatcher = Dispatcher::new(
            "r".into(),
            index,
            Arc::new(bus),
            python.iter().map(|s| (*s).to_owned()).collect(),
            policy,
        );
        Setup {
            dispatcher,
            resolve,
            edge,
            alice,
            bob,
            plain_t2,
        }
    }

    fn shape_ids(task: &ResolveTask) -> Vec<Vec<u8>> {
        task.shapes
            .iter()
            .filter_map(|t| t.spec.as_ref().map(|s| s.id.to_vec()))
            .collect()
    }

    #[tokio::test]
    async fn workers_get_only_the_shapes_whose_filter_passes() {
        let mut s = setup(&["mine"], DeliveryPolicy::default()).await;
        s.dispatcher.dispatch(stamped("alice", "")).await;
        let task = ResolveTask::decode(next(&mut s.resolve).await.expect("a task")).expect("task");
        let ids = shape_ids(&task);
        assert!(ids.contains(&s.alice.id.0.to_vec()));
        assert!(!ids.contains(&s.bob.id.0.to_vec()), "bob's filter is false");
        assert!(ids.contains(&s.plain_t2.id.0.to_vec()));
        assert_eq!(ids.len(), 2);
    }

    #[tokio::test]
    async fn an_event_whose_python_shapes_are_all_filtered_goes_inline() {
        let mut s = setup(&["mine"], DeliveryPolicy::default()).await;
        s.dispatcher.dispatch(stamped("nobody", "")).await;
        assert!(next(&mut s.resolve).await.is_none(), "no resolve task");
        let delivery = Delivery::decode(next(&mut s.edge).await.expect("delivery")).expect("d");
        assert_eq!(delivery.items.len(), 1);
        assert_eq!(
            delivery.items[0].shape_id.to_vec(),
            s.plain_t2.id.0.to_vec()
        );
    }

    #[tokio::test]
    async fn multi_tenant_keeps_events_within_their_tenant() {
        let mut s = setup(&[], DeliveryPolicy::multi_tenant(true)).await;
        s.dispatcher.dispatch(stamped("alice", "t2")).await;
        let delivery = Delivery::decode(next(&mut s.edge).await.expect("delivery")).expect("d");
        let ids: Vec<Vec<u8>> = delivery.items.iter().map(|i| i.shape_id.to_vec()).collect();
        assert_eq!(
            ids,
            vec![s.plain_t2.id.0.to_vec()],
            "only tenant t2's shape"
        );

        s.dispatcher.dispatch(stamped("alice", "")).await;
        assert!(next(&mut s.edge).await.is_none(), "no tenant: nobody");

        s.dispatcher.dispatch(stamped("alice", "t1")).await;
        let delivery = Delivery::decode(next(&mut s.edge).await.expect("delivery")).expect("d");
        let ids: Vec<Vec<u8>> = delivery.items.iter().map(|i| i.shape_id.to_vec()).collect();
        assert_eq!(ids, vec![s.alice.id.0.to_vec()], "t1 and alice's filter");
    }
}
