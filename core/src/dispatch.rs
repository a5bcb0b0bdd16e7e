//! Deciding which shapes may receive an event, and turning one event's per-shape
//! payloads into one [`Delivery`] per edge.
//!
//! Used by the router (shapes resolved inline, and before handing an event to resolver
//! workers) and by resolver workers alike, so that both paths make the same security
//! decisions and put the same bytes on the bus.
//!
//! Per event, [`EventGate`] applies, in order:
//! 1. tenant isolation (when [`DeliveryPolicy`] says multi-tenant): an event without a
//!    tenant reaches nobody; otherwise only shapes whose security context has the
//!    event's tenant are considered;
//! 2. the field's `@filter`, evaluated once per shape over `event`, `args` and the
//!    shape's visible `claims`; `false` or an error skips the shape (errors are counted
//!    in `fanout_filter_errors_total{field}`).
//!
//! Both run before any resolver, so Python never sees an event its subscribers may not.

use std::cell::OnceCell;
use std::collections::HashMap;

use bytes::Bytes;
use fanout_proto::v1::{Delivery, ShapePayload};
use serde_json::Value;

use crate::filter::FilterScope;
use crate::render::{EventMeta, next_payload};
use crate::shape::{Shape, ShapeId};
use crate::telemetry;

/// Who may receive events, beyond `@auth` (checked at subscribe time).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeliveryPolicy {
    /// Tenant isolation: an event reaches only shapes of subscribers whose tenant equals
    /// the event's `tenant`; an event without a tenant, and a subscriber without a
    /// tenant claim, get nothing. Off by default.
    pub multi_tenant: bool,
}

impl DeliveryPolicy {
    /// The policy with tenant isolation on or off.
    pub fn multi_tenant(on: bool) -> Self {
        Self { multi_tenant: on }
    }
}

/// The per-event security decisions: tenant isolation, then each shape's `@filter`.
///
/// The event is converted for filters at most once, on the first shape that has one.
/// Not `Sync`: make the decisions, then drop the gate before awaiting.
pub struct EventGate<'a> {
    policy: DeliveryPolicy,
    event: &'a Value,
    tenant: Option<&'a str>,
    scope: OnceCell<FilterScope>,
}

impl std::fmt::Debug for EventGate<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventGate")
            .field("policy", &self.policy)
            .field("tenant", &self.tenant)
            .finish_non_exhaustive()
    }
}

impl<'a> EventGate<'a> {
    /// A gate for `event` (the parsed payload) published with `tenant` (empty: none).
    pub fn new(policy: DeliveryPolicy, event: &'a Value, tenant: &'a str) -> Self {
        Self {
            policy,
            event,
            tenant: (!tenant.is_empty()).then_some(tenant),
            scope: OnceCell::new(),
        }
    }

    /// Whether the event may reach anyone. False, and counted in
    /// `fanout_events_dropped_total{reason="no_tenant"}`, for an event without a
    /// tenant in multi-tenant mode.
    pub fn admits_event(&self) -> bool {
        if self.policy.multi_tenant && self.tenant.is_none() {
            metrics::counter!(telemetry::EVENTS_DROPPED, "reason" => "no_tenant").increment(1);
            return false;
        }
        true
    }

    /// Whether `shape` may receive the event: same tenant (in multi-tenant mode) and
    /// its field's filter, if any, evaluates to `true`.
    pub fn admits(&self, shape: &Shape) -> bool {
        if self.policy.multi_tenant
            && (self.tenant.is_none() || shape.security.tenant.as_deref() != self.tenant)
        {
            return false;
        }
        let Some(filter) = &shape.prepared.field.filter else {
            return true;
        };
        let scope = self.scope.get_or_init(|| FilterScope::new(self.event));
        match filter.evaluate(scope, &shape.prepared.args, &shape.security) {
            Ok(pass) => pass,
            Err(e) => {
                tracing::debug!(field = %shape.field(), shape = %shape.id, kind = e.metric_label(), error = %e, "filter failed; event skipped for this shape");
                metrics::counter!(telemetry::FILTER_ERRORS, "field" => shape.field().to_owned())
                    .increment(1);
                false
            }
        }
    }
}

/// Renders the payload of a shape whose field has no resolver: the event itself is the
/// root field's value, projected onto the selection set.
pub fn passthrough(shape: &Shape, event: &Value, meta: EventMeta<'_>) -> Bytes {
    next_payload(&shape.prepared.plan.project(event), meta)
}

/// Collects per-shape payloads of one event and groups them by edge.
#[derive(Debug)]
pub struct DeliveryBatch {
    template: Delivery,
    per_edge: HashMap<String, Vec<ShapePayload>>,
}

impl DeliveryBatch {
    /// A batch for the event at `meta`.
    pub fn new(meta: EventMeta<'_>, router: &str, published_at_us: u64) -> Self {
        Self {
            template: Delivery {
                channel: meta.channel.to_owned(),
                offset: meta.offset,
                epoch: meta.epoch,
                seq: 0,
                router: router.to_owned(),
                items: Vec::new(),
                published_at_us,
            },
            per_edge: HashMap::new(),
        }
    }

    /// Adds `payload` of `shape` for each of `edges`.
    pub fn add<'a>(
        &mut self,
        shape: ShapeId,
        payload: &Bytes,
        edges: impl IntoIterator<Item = &'a String>,
    ) {
        let id = Bytes::copy_from_slice(&shape.0);
        for edge in edges {
            self.per_edge
                .entry(edge.clone())
                .or_default()
                .push(ShapePayload {
                    shape_id: id.clone(),
                    payload: payload.clone(),
                });
        }
    }

    /// Makes sure `edge` gets a delivery even if every shape skipped the event (so the
    /// edge can account for the sequence number).
    pub fn touch(&mut self, edge: &str) {
        if !self.per_edge.contains_key(edge) {
            self.per_edge.insert(edge.to_owned(), Vec::new());
        }
    }

    /// One delivery per edge, stamped with the sequence number `seq` gives for that
    /// edge; edges that were only [`Self::touch`]ed get an empty delivery, so the edge
    /// can account for the sequence number and release later ones without waiting.
    pub fn into_sequenced(
        self,
        mut seq: impl FnMut(&str) -> u64,
    ) -> impl Iterator<Item = (String, Delivery)> {
        let template = self.template;
        self.per_edge.into_iter().map(move |(edge, items)| {
            let mut d = template.clone();
            d.items = items;
            d.seq = seq(&edge);
            (edge, d)
        })
    }

    /// One delivery per edge; edges whose deliveries would be empty are left out.
    pub fn into_deliveries(self) -> impl Iterator<Item = (String, Delivery)> {
        let template = self.template;
        self.per_edge
            .into_iter()
            .filter(|(_, items)| !items.is_empty())
            .map(move |(edge, items)| {
                let mut d = template.clone();
                d.items = items;
                (edge, d)
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graphql::{Schema, SubscribeRequest, prepare};
    use crate::security::SecurityContext;
    use serde_json::json;

    const SDL: &str = r#"
type Row { owner: String, n: Int }
type Subscription {
  rows(min: Int!): Row @channel(key: "rows") @filter(expr: "event.n >= args.min && event.owner == claims.sub")
  open: Row @channel(key: "open")
  shared: Row @channel(key: "shared", userIndependent: true) @filter(expr: "event.owner == claims.sub")
}
"#;

    fn shape(schema: &Schema, query: &str, sub: &str, tenant: Option<&str>) -> Shape {
        let request = SubscribeRequest {
            query: query.into(),
            ..Default::default()
        };
        let prepared = prepare(schema, &request).expect("valid subscription");
        let security = SecurityContext {
            subject: Some(sub.into()),
            tenant: tenant.map(str::to_owned),
            ..Default::default()
        };
        Shape::new(prepared, request, &security)
    }

    #[test]
    fn filters_see_event_args_and_visible_claims() {
        let schema = Schema::parse(SDL, "t.graphql").expect("schema");
        let alice = shape(
            &schema,
            "subscription { rows(min: 2) { n } }",
            "alice",
            None,
        );
        let bob = shape(&schema, "subscription { rows(min: 2) { n } }", "bob", None);
        let strict = shape(
            &schema,
            "subscription { rows(min: 9) { n } }",
            "alice",
            None,
        );
        let open = shape(&schema, "subscription { open { n } }", "bob", None);
        let shared = shape(&schema, "subscription { shared { n } }", "alice", None);
        let event = json!({"owner": "alice", "n": 5});
        let gate = EventGate::new(DeliveryPolicy::default(), &event, "");
        assert!(gate.admits_event());
        assert!(gate.admits(&alice));
        assert!(!gate.admits(&bob));
        assert!(!gate.admits(&strict));
        assert!(gate.admits(&open));
        // userIndependent: the subject is not visible, so the filter errors: skipped.
        assert!(!gate.admits(&shared));
        // A missing key is an error: skipped, never delivered.
        let odd = json!({"n": 5});
        let gate = EventGate::new(DeliveryPolicy::default(), &odd, "");
        assert!(!gate.admits(&alice));
        assert!(gate.admits(&open));
    }

    #[test]
    fn tenant_isolation_only_in_multi_tenant_mode() {
        let schema = Schema::parse(SDL, "t.graphql").expect("schema");
        let q = "subscription { open { n } }";
        let t1 = shape(&schema, q, "a", Some("t1"));
        let t2 = shape(&schema, q, "b", Some("t2"));
        let none = shape(&schema, q, "c", None);
        let event = json!({"n": 1});

        let off = EventGate::new(DeliveryPolicy::default(), &event, "t1");
        assert!(off.admits_event());
        assert!(off.admits(&t1) && off.admits(&t2) && off.admits(&none));

        let on = EventGate::new(DeliveryPolicy::multi_tenant(true), &event, "t1");
        assert!(on.admits_event());
        assert!(on.admits(&t1));
        assert!(!on.admits(&t2));
        assert!(!on.admits(&none));

        let untenanted = EventGate::new(DeliveryPolicy::multi_tenant(true), &event, "");
        assert!(!untenanted.admits_event());
        assert!(!untenanted.admits(&t1) && !untenanted.admits(&none));
    }

    #[test]
    fn batch_groups_by_edge_and_drops_empty() {
        let meta = EventMeta {
            channel: "c",
            offset: 1,
            epoch: 2,
        };
        let mut batch = DeliveryBatch::new(meta, "r", 0);
        let edges = vec!["e1".to_owned(), "e2".to_owned()];
        batch.add(ShapeId([1; 16]), &Bytes::from_static(b"{}"), &edges);
        batch.add(ShapeId([2; 16]), &Bytes::from_static(b"{}"), &edges[..1]);
        batch.touch("e3");
        let mut out: Vec<_> = batch.into_deliveries().collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].0, "e1");
        assert_eq!(out[0].1.items.len(), 2);
        assert_eq!(out[1].1.items.len(), 1);
        assert_eq!(out[1].1.offset, 1);
    }
}
