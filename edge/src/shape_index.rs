//! The local shape index: shape id → this edge's subscribers of that shape, grouped by
//! connection.
//!
//! A sharded map ([`DashMap`]); no guard is held across an `.await` (nothing here is
//! async). Interest calls happen under the shape's shard guard so that the router
//! sees `add` and `remove` of one shape in the order they happened on this edge.

use std::collections::{HashMap, hash_map};
use std::sync::Arc;

use dashmap::DashMap;
use dashmap::mapref::entry::Entry;
use fanout_core::interest::InterestSink;
use fanout_core::shape::{Shape, ShapeId};

use crate::next_target::{NextTarget, NextTargets};
use crate::outbound::Outbound;

/// One local subscriber of a shape, as added to the index.
#[derive(Debug, Clone)]
pub struct Subscriber {
    /// The subscriber's connection.
    pub outbound: Outbound,
    /// The frames' prefix; deactivated when the subscription ends, so that frames
    /// already queued are dropped. It also names the subscription in the index.
    pub target: Arc<NextTarget>,
}

/// One connection's subscribers of a shape: the connection and the subscriptions that
/// get a frame of each event. Kept small: an event walks one per connection.
#[derive(Debug)]
pub struct ConnectionSubscribers {
    /// The connection.
    pub outbound: Outbound,
    /// The subscriptions, in the order they were added; replaced on every change.
    targets: NextTargets,
}

impl ConnectionSubscribers {
    /// The subscriptions that get a frame of each event.
    pub fn targets(&self) -> &NextTargets {
        &self.targets
    }
}

#[derive(Debug)]
struct ShapeEntry {
    shape: Arc<Shape>,
    /// Subscribers grouped by connection ([`Outbound::connection_id`]): an event is one
    /// queue item per connection.
    connections: HashMap<usize, ConnectionSubscribers>,
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
        subscriber: Subscriber,
        interest: &dyn InterestSink,
        edge_id: &str,
    ) {
        let Subscriber { outbound, target } = subscriber;
        let connection = outbound.connection_id();
        match self.shapes.entry(shape.id) {
            Entry::Occupied(mut entry) => match entry.get_mut().connections.entry(connection) {
                hash_map::Entry::Occupied(mut group) => {
                    let group = group.get_mut();
                    group.targets = group.targets.with(target);
                }
                hash_map::Entry::Vacant(group) => {
                    group.insert(ConnectionSubscribers {
                        outbound,
                        targets: NextTargets::One(target),
                    });
                }
            },
            Entry::Vacant(entry) => {
                interest.add(edge_id, shape.clone());
                let mut connections = HashMap::new();
                let targets = NextTargets::One(target);
                connections.insert(connection, ConnectionSubscribers { outbound, targets });
                entry.insert(ShapeEntry { shape, connections });
            }
        }
    }

    /// Removes `subscriber` and deactivates its target; withdraws the shape from
    /// `interest` when it was the last. Returns whether the subscriber was present.
    pub fn remove(
        &self,
        shape: ShapeId,
        subscriber: &Subscriber,
        interest: &dyn InterestSink,
        edge_id: &str,
    ) -> bool {
        subscriber.target.deactivate();
        let Entry::Occupied(mut entry) = self.shapes.entry(shape) else {
            return false;
        };
        let connection = subscriber.outbound.connection_id();
        let hash_map::Entry::Occupied(mut group) = entry.get_mut().connections.entry(connection)
        else {
            return false;
        };
        let Some(rest) = group.get().targets.without(&subscriber.target) else {
            return false;
        };
        match rest {
            Some(targets) => group.get_mut().targets = targets,
            None => {
                group.remove();
            }
        }
        if entry.get().connections.is_empty() {
            interest.remove(edge_id, entry.get().shape.channel(), shape);
            entry.remove();
        }
        true
    }

    /// Calls `f` for every connection with subscribers of `shape`; returns how many
    /// there were. `f` must not block or touch this index.
    pub fn for_each_connection(
        &self,
        shape: ShapeId,
        mut f: impl FnMut(&ConnectionSubscribers),
    ) -> usize {
        let Some(entry) = self.shapes.get(&shape) else {
            return 0;
        };
        for group in entry.connections.values() {
            f(group);
        }
        entry.connections.len()
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
