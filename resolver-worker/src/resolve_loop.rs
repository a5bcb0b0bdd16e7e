//! The worker loop: takes resolve tasks from the `fanout.resolve` queue group, runs the
//! Python resolvers once per shape, renders each shape's payload once and sends one
//! delivery per edge.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use fanout_core::bus::Bus;
use fanout_core::dispatch::{DeliveryBatch, passthrough};
use fanout_core::graphql::{GraphQLError, Schema};
use fanout_core::render::{EventMeta, next_payload};
use fanout_core::shape::{Shape, ShapeId};
use fanout_core::{subject, telemetry};
use fanout_proto::v1::{ResolveTask, ShapeSpec};
use futures_util::StreamExt;
use prost::Message;
use tokio_util::sync::CancellationToken;

use crate::{EventInput, PythonRuntime, ResolveCall, ResolveOutcome};

/// Shapes remembered per worker before the cache starts over.
const SHAPE_CACHE_LIMIT: usize = 100_000;

/// A resolver worker bound to a bus.
pub struct Worker {
    runtime: PythonRuntime,
    schema: Arc<Schema>,
    bus: Arc<dyn Bus>,
    shapes: Mutex<HashMap<ShapeId, Arc<Shape>>>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker").finish_non_exhaustive()
    }
}

impl Worker {
    /// A worker running `runtime`'s resolvers for `schema`, on `bus`.
    pub fn new(runtime: PythonRuntime, schema: Arc<Schema>, bus: Arc<dyn Bus>) -> Arc<Self> {
        Arc::new(Self {
            runtime,
            schema,
            bus,
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
            match ResolveTask::decode(msg.payload) {
                Ok(task) => self.handle(task).await,
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

    /// Resolves one task and publishes its deliveries.
    pub async fn handle(&self, task: ResolveTask) {
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
        let targets: Vec<(Arc<Shape>, Vec<String>)> = task
            .shapes
            .into_iter()
            .filter_map(|t| {
                let shape = self.shape(t.spec.as_ref()?)?;
                Some((shape, t.edges))
            })
            .collect();
        let python: Vec<usize> = targets
            .iter()
            .enumerate()
            .filter(|(_, (s, _))| self.runtime.has_resolver(s.field()))
            .map(|(i, _)| i)
            .collect();
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
        for (edge, delivery) in batch.into_deliveries() {
            match self
                .bus
                .publish(&subject::edge(&edge), delivery.encode_to_vec().into())
                .await
            {
                Ok(()) => metrics::counter!(telemetry::DELIVERIES_SENT).increment(1),
                Err(e) => tracing::warn!(%edge, error = %e, "delivery not sent"),
            }
        }
    }
}
