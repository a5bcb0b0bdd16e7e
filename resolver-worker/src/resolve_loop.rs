//! The worker loop: takes resolve tasks from the `fanout.resolve` queue group, runs the
//! Python resolvers once per shape, renders each shape's payload once and sends one
//! delivery per edge.
//!
//! Before any Python runs, each task's shapes go through the same
//! [`EventGate`] as the router's inline path (tenant isolation and `@filter`): the router
//! already dropped the shapes that may not see the event, and the worker checks again
//! so that it never resolves for a shape that may not, whoever sent the task.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use fanout_core::bus::Bus;
use fanout_core::dispatch::{DeliveryBatch, DeliveryPolicy, EventGate, passthrough};
use fanout_core::graphql::{GraphQLError, Schema};
use fanout_core::render::{EventMeta, next_payload};
use fanout_core::shape::{Shape, ShapeId};
use fanout_core::{subject, telemetry};
use fanout_proto::v1::{ResolveTask, ShapeSpec};
use futures_util::StreamExt;
use prost::Message;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use crate::{EventInput, PythonRuntime, ResolveCall, ResolveOutcome};

/// Shapes remembered per worker before the cache starts over.
const SHAPE_CACHE_LIMIT: usize = 100_000;

/// A resolver worker bound to a bus.
pub struct Worker {
    runtime: PythonRuntime,
    schema: Arc<Schema>,
    bus: Arc<dyn Bus>,
    policy: DeliveryPolicy,
    shapes: Mutex<HashMap<ShapeId, Arc<Shape>>>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker").finish_non_exhaustive()
    }
}

impl Worker {
    /// A worker running `runtime`'s resolvers for `schema`, on `bus`, delivering under
    /// `policy` (which must match the routers').
    pub fn new(
        runtime: PythonRuntime,
        schema: Arc<Schema>,
        bus: Arc<dyn Bus>,
        policy: DeliveryPolicy,
    ) -> Arc<Self> {
        Arc::new(Self {
            runtime,
            schema,
            bus,
            policy,
            shapes: Mutex::new(HashMap::new()),
        })
    }

    /// Serves resolve tasks until `shutdown` fires. Tasks are handled one at a time, in
    /// arrival order.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) -> fanout_core::Result<()> {
        let mut tasks = self
            .bus
            .queue_subscribe(subject::RESOLVE, subject::RESOLVE_GROUP)
            .await?;
        loop {
            let msg = tokio::select! {
                msg = tasks.next() => match msg { Some(m) => m, None => break },
                () = shutdown.cancelled() => break,
            };
            let traceparent = msg
                .header(fanout_core::trace::TRACEPARENT)
                .map(str::to_owned);
            match ResolveTask::decode(msg.payload) {
                Ok(task) => self.handle(task, traceparent.as_deref()).await,
                Err(e) => tracing::warn!(error = %e, "malformed resolve task dropped"),
            }
        }
        Ok(())
    }

    fn shape(&self, spec: &ShapeSpec) -> Option<Arc<Shape>> {
        let id = ShapeId::from_slice(&spec.id)?;
        if let Ok(cache) = self.shapes.lock()
            && let Some(shape) = cache.get(&id)
        {
            return Some(shape.clone());
        }
        match Shape::from_spec(&self.schema, spec) {
            Ok(shape) => {
                if let Ok(mut cache) = self.shapes.lock() {
                    if cache.len() >= SHAPE_CACHE_LIMIT {
                        cache.clear();
                    }
                    cache.insert(id, shape.clone());
                }
                Some(shape)
            }
            Err(errors) => {
                tracing::warn!(shape = %id, ?errors, "shape could not be rebuilt; skipped");
                None
            }
        }
    }

    /// Resolves one task and publishes its deliveries, in a `resolve` span that is a
    /// child of `traceparent` (the router's dispatch span).
    pub async fn handle(&self, task: ResolveTask, traceparent: Option<&str>) {
        let (channel, offset) = task
            .event
            .as_ref()
            .map_or(("", 0), |e| (e.channel.as_str(), e.offset));
        let span = tracing::debug_span!(
            target: fanout_core::trace::SPAN_TARGET,
            "resolve",
            otel.kind = "consumer",
            channel,
            offset,
            shapes = task.shapes.len(),
            python_calls = tracing::field::Empty,
        );
        fanout_core::trace::set_parent(&span, traceparent);
        metrics::counter!(telemetry::WORKER_TASKS).increment(1);
        let in_flight = metrics::gauge!(telemetry::WORKER_TASKS_IN_FLIGHT);
        in_flight.increment(1.0);
        self.resolve(task, traceparent).instrument(span).await;
        in_flight.decrement(1.0);
    }

    async fn resolve(&self, task: ResolveTask, parent: Option<&str>) {
        let Some(event) = task.event else {
            tracing::warn!("resolve task without event dropped");
            return;
        };
        let value: serde_json::Value = match serde_json::from_slice(&event.payload) {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(error = %e, "resolve task with non-JSON event dropped");
                return;
            }
        };
        let targets: Vec<(Arc<Shape>, Vec<String>)> = {
            let gate = EventGate::new(self.policy, &value, &event.tenant);
            if !gate.admits_event() {
                return;
            }
            task.shapes
                .into_iter()
                .filter_map(|t| {
                    let shape = self.shape(t.spec.as_ref()?)?;
                    gate.admits(&shape).then_some((shape, t.edges))
                })
                .collect()
        };
        let python: Vec<usize> = targets
            .iter()
            .enumerate()
            .filter(|(_, (s, _))| self.runtime.has_resolver(s.field()))
            .map(|(i, _)| i)
            .collect();
        tracing::Span::current().record("python_calls", python.len());
        let calls = python
            .iter()
            .map(|&i| ResolveCall {
                field: targets[i].0.field().to_owned(),
                args: targets[i].0.prepared.args.clone(),
                security: targets[i].0.security.clone(),
            })
            .collect();
        let meta = EventMeta {
            channel: &event.channel,
            offset: event.offset,
            epoch: event.epoch,
        };
        let input = Arc::new(EventInput {
            channel: event.channel.clone(),
            payload: value.clone(),
            tenant: (!event.tenant.is_empty()).then(|| event.tenant.clone()),
            headers: event.headers.clone().into_iter().collect(),
            offset: event.offset,
            epoch: event.epoch,
        });
        let mut outcomes: HashMap<usize, ResolveOutcome> = python
            .iter()
            .copied()
            .zip(self.runtime.resolve_batch(input, calls).await)
            .collect();
        let mut batch = DeliveryBatch::new(meta, &task.router, event.published_at_us);
        // Every edge the router numbered gets a delivery, empty if every shape skipped
        // the event, so that the edge's reorder buffer need not wait for it.
        for edge in task.edge_seq.keys() {
            batch.touch(edge);
        }
        for (i, (shape, edges)) in targets.iter().enumerate() {
            let payload = match outcomes.remove(&i) {
                None | Some(ResolveOutcome::NoResolver) => passthrough(shape, &value, meta),
                Some(ResolveOutcome::Skip) => continue,
                Some(ResolveOutcome::Value(v)) => {
                    next_payload(&shape.prepared.plan.project(&v), meta)
                }
                Some(ResolveOutcome::Error(message)) => next_payload(
                    &shape.prepared.plan.project_field_error(
                        GraphQLError::new(message).with_code("RESOLVER_ERROR"),
                    ),
                    meta,
                ),
                Some(ResolveOutcome::Timeout) => next_payload(
                    &shape.prepared.plan.project_field_error(
                        GraphQLError::new("resolver timed out").with_code("RESOLVER_TIMEOUT"),
                    ),
                    meta,
                ),
            };
            batch.add(shape.id, &payload, edges);
        }
        let deliveries = batch
            .into_sequenced(|edge| task.edge_seq.get(edge).copied().unwrap_or(0))
            .filter(|(_, d)| d.seq != 0 || !d.items.is_empty());
        let traceparent = fanout_core::trace::outgoing(&tracing::Span::current(), parent);
        tracing::debug!(
            trace_id = fanout_core::trace::trace_id(&traceparent),
            channel = %event.channel,
            offset = event.offset,
            "resolved"
        );
        for (edge, delivery) in deliveries {
            match self
                .bus
                .publish_with_headers(
                    &subject::edge(&edge),
                    &[(fanout_core::trace::TRACEPARENT, &traceparent)],
                    delivery.encode_to_vec().into(),
                )
                .await
            {
                Ok(()) => metrics::counter!(telemetry::DELIVERIES_SENT).increment(1),
                Err(e) => tracing::warn!(%edge, error = %e, "delivery not sent"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use fanout_core::bus::{BusSubscription, MemoryBus};
    use fanout_core::graphql::{SubscribeRequest, prepare};
    use fanout_core::security::SecurityContext;
    use fanout_proto::v1::{Delivery, Event, ShapeTarget};

    use super::*;
    use crate::PythonConfig;

    const SDL: &str = r#"
type Row { owner: String, label: String }
type Subscription {
  mine: Row @channel(key: "rows") @filter(expr: "event.owner == claims.sub")
}
"#;

    const RESOLVERS: &str = r#"
import fanout

@fanout.resolver("mine")
def mine(event, args, ctx):
    return {"owner": event["owner"], "label": "for " + ctx.subject}
"#;

    fn shape(schema: &Schema, sub: &str, tenant: &str) -> Shape {
        let request = SubscribeRequest {
            query: "subscription { mine { owner label } }".into(),
            ..Default::default()
        };
        let prepared = prepare(schema, &request).expect("valid subscription");
        let security = SecurityContext {
            subject: Some(sub.into()),
            tenant: Some(tenant.into()),
            ..Default::default()
        };
        Shape::new(prepared, request, &security)
    }

    fn task(shapes: &[&Shape], owner: &str, tenant: &str) -> ResolveTask {
        ResolveTask {
            event: Some(Event {
                channel: "rows".into(),
                payload: format!(r#"{{"owner":"{owner}"}}"#).into_bytes().into(),
                tenant: tenant.into(),
                offset: 1,
                epoch: 1,
                ..Default::default()
            }),
            shapes: shapes
                .iter()
                .map(|s| ShapeTarget {
                    spec: Some(s.spec()),
                    edges: vec!["e".into()],
                })
                .collect(),
            router: "r".into(),
            ..Default::default()
        }
    }

    async fn next(sub: &mut BusSubscription) -> Option<Delivery> {
        let msg = tokio::time::timeout(Duration::from_millis(300), sub.next())
            .await
            .ok()
            .flatten()?;
        Delivery::decode(msg.payload).ok()
    }

    #[tokio::test]
    async fn the_worker_applies_filters_and_tenants_before_python() {
        let dir = std::env::temp_dir().join(format!("fanout-rl-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let file = dir.join("resolvers.py");
        std::fs::write(&file, RESOLVERS).expect("write");
        let runtime = PythonRuntime::start(PythonConfig::new(&file)).expect("runtime");
        let schema = Arc::new(Schema::parse(SDL, "t.graphql").expect("schema"));
        let bus = MemoryBus::new();
        let mut edge = bus.subscribe(&subject::edge("e")).await.expect("sub");
        let worker = Worker::new(
            runtime,
            schema.clone(),
            Arc::new(bus),
            DeliveryPolicy::multi_tenant(true),
        );
        let alice = shape(&schema, "alice", "t1");
        let bob = shape(&schema, "bob", "t1");
        let alice_t2 = shape(&schema, "alice", "t2");

        // Even when a task names shapes that may not see the event, only alice's of t1
        // is resolved and delivered.
        worker
            .handle(task(&[&alice, &bob, &alice_t2], "alice", "t1"), None)
            .await;
        let d = next(&mut edge).await.expect("a delivery");
        assert_eq!(d.items.len(), 1, "{d:?}");
        assert_eq!(d.items[0].shape_id.to_vec(), alice.id.0.to_vec());
        let payload: serde_json::Value = serde_json::from_slice(&d.items[0].payload).expect("json");
        assert_eq!(payload["data"]["mine"]["label"], "for alice");

        // No tenant in multi-tenant mode: nothing at all.
        worker
            .handle(task(&[&alice, &bob], "alice", ""), None)
            .await;
        assert!(next(&mut edge).await.is_none());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
