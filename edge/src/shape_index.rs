//! The local shape index: shape id → this edge's subscribers of that shape.
//!
//! A sharded map ([`DashMap`]); no guard is held across an `.await` (nothing here is
//! async). Interest calls happen under the shape's shard guard so that the router
//! sees `add` and `remove` of one shape in the order they happened on this edge.

use std::collections::HashMap;
use std::sync::Arc;

use dashmap::DashMap;
use dashmap::mapref::entry::Entry;
use fanout_core::interest::InterestSink;
use fanout_core::shape::{Shape, ShapeId};

use crate::next_target::NextTarget;
use crate::outbound::Outbound;

/// Edge-wide unique key of one subscription.
pub type SubscriptionKey = u64;

/// One local subscriber of a shape.
#[derive(Debug)]
pub struct Subscriber {
    /// The subscriber's connection.
    pub outbound: Outbound,
    /// The frames' prefix; deactivated when the subscription ends, so that frames
    /// already queued are dropped.
    pub target: Arc<NextTarget>,
}

impl Subscriber {
    /// Whether the subscription still wants frames.
    pub fn is_active(&self) -> bool {
        self.target.is_active()
    }
}

#[derive(Debug)]
struct ShapeEntry {
    shape: Arc<Shape>,
    subscribers: HashMap<SubscriptionKey, Subscriber>,
}

/// Local shape → subscribers.
#[derive(Debug, Default)]
pub struct ShapeIndex {
    shapes: DashMap<ShapeId, ShapeEntry>,
}

impl ShapeIndex {
    /// Adds a subscriber of `shape`; reports the shape to `interest` when it is the
    /// shape's first local subscriber.
    pub fn insert(
        &self,
        shape: Arc<Shape>,
        key: SubscriptionKey,
        subscriber: Subscriber,
        interest: &dyn InterestSink,
        edge_id: &str,
    ) {
        match self.shapes.entry(shape.id) {
            Entry::Occupied(mut entry) => {
                entry.get_mut().subscribers.insert(key, subscriber);
            }
            Entry::Vacant(entry) => {
                interest.add(edge_id, shape.clone());
                let mut subscribers = HashMap::new();
                subscribers.insert(key, subscriber);
                entry.insert(ShapeEntry { shape, subscribers });
            }
        }
    }

    /// Removes a subscriber; withdraws the shape from `interest` when it was the last.
    /// Returns whether the subscriber was present.
    pub fn remove(
        &self,
        shape: ShapeId,
        key: SubscriptionKey,
        interest: &dyn InterestSink,
        edge_id: &str,
    ) -> bool {
        let Entry::Occupied(mut entry) = self.shapes.entry(shape) else {
            return false;
        };
        let removed = entry.get_mut().subscribers.remove(&key);
        if let Some(subscriber) = &removed {
            subscriber.target.deactivate();
        }
        if entry.get().subscribers.is_empty() {
            interest.remove(edge_id, entry.get().shape.channel(), shape);
            entry.remove();
        }
        removed.is_some()
    }

    /// Calls `f` for every subscriber of `shape`; returns how many there were.
    /// `f` must not block or touch this index.
    pub fn for_each_subscriber(&self, shape: ShapeId, mut f: impl FnMut(&Subscriber)) -> usize {
        let Some(entry) = self.shapes.get(&shape) else {
            return 0;
        };
        for subscriber in entry.subscribers.values() {
            f(subscriber);
        }
        entry.subscribers.len()
    }

    /// The tenant of `shape`'s security context, when it has one (per-tenant metrics).
    pub fn tenant_of(&self, shape: ShapeId) -> Option<String> {
        self.shapes
            .get(&shape)
            .and_then(|entry| entry.shape.security.tenant.clone())
    }

    /// Number of distinct shapes with at least one local subscriber.
    pub fn shapes(&self) -> usize {
        self.shapes.len()
    }
}
