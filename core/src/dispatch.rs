//! Turning one event's per-shape payloads into one [`Delivery`] per edge.
//!
//! Used by the router (shapes resolved inline) and by resolver workers alike, so that
//! both paths put the same bytes on the bus.

use std::collections::HashMap;

use bytes::Bytes;
use fanout_proto::v1::{Delivery, ShapePayload};
use serde_json::Value;

use crate::render::{EventMeta, next_payload};
use crate::shape::{Shape, ShapeId};

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
