//! The channel index: channel → shapes → edges.
//!
//! Soft state, rebuilt from edges: each edge reports a shape when it gains the first
//! local subscriber and withdraws it when it loses the last one.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use dashmap::DashMap;
use fanout_core::gauge_mirror::GaugeMirror;
use fanout_core::interest::InterestSink;
use fanout_core::shape::{Shape, ShapeId};
use fanout_core::telemetry;

/// One shape on a channel and the edges that want it.
#[derive(Debug, Clone)]
pub struct ShapeInterest {
    /// The shape.
    pub shape: Arc<Shape>,
    /// Edges with at least one subscriber of it.
    pub edges: Vec<String>,
}

#[derive(Default)]
struct ChannelEntry {
    shapes: HashMap<ShapeId, (Arc<Shape>, BTreeSet<String>)>,
}

/// Channel → shapes → edges.
#[derive(Default)]
pub struct ChannelIndex {
    channels: DashMap<String, ChannelEntry>,
    /// Edge → (channel, shape) it has reported, so a vanished edge can be dropped.
    by_edge: DashMap<String, HashSet<(String, ShapeId)>>,
    entries: AtomicI64,
    /// Publishes the gauges in order, so a stale count never stays published.
    gauges: GaugeMirror,
}

impl std::fmt::Debug for ChannelIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelIndex")
            .field("channels", &self.channels.len())
            .field("entries", &self.entries())
            .finish()
    }
}

impl ChannelIndex {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    /// The shapes on `channel` with their edges (a copy: no lock is held afterwards).
    pub fn snapshot(&self, channel: &str) -> Vec<ShapeInterest> {
        self.channels
            .get(channel)
            .map(|entry| {
                entry
                    .shapes
                    .values()
                    .map(|(shape, edges)| ShapeInterest {
                        shape: shape.clone(),
                        edges: edges.iter().cloned().collect(),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Number of (channel, shape, edge) entries.
    pub fn entries(&self) -> i64 {
        self.entries.load(Ordering::Relaxed)
    }

    /// Number of channels with at least one shape.
    pub fn channels(&self) -> usize {
        self.channels.len()
    }

    fn publish_gauges(&self) {
        self.gauges.publish(|| {
            metrics::gauge!(telemetry::ROUTER_INTEREST_ENTRIES).set(self.entries() as f64);
            metrics::gauge!(telemetry::ROUTER_CHANNELS).set(self.channels.len() as f64);
        });
    }

    fn remove_entry(&self, edge: &str, channel: &str, shape: ShapeId) -> bool {
        let mut removed = false;
        if let Some(mut entry) = self.channels.get_mut(channel)
            && let Some((_, edges)) = entry.shapes.get_mut(&shape)
        {
            removed = edges.remove(edge);
            if edges.is_empty() {
                entry.shapes.remove(&shape);
            }
        }
        self.channels
            .remove_if(channel, |_, entry| entry.shapes.is_empty());
        if removed {
            self.entries.fetch_sub(1, Ordering::Relaxed);
        }
        removed
    }
}

impl InterestSink for ChannelIndex {
    fn add(&self, edge: &str, shape: Arc<Shape>) {
        let channel = shape.channel().to_owned();
        let id = shape.id;
        let inserted = {
            let mut entry = self.channels.entry(channel.clone()).or_default();
            let (_, edges) = entry
                .shapes
                .entry(id)
                .or_insert_with(|| (shape, BTreeSet::new()));
            edges.insert(edge.to_owned())
        };
        if inserted {
            self.entries.fetch_add(1, Ordering::Relaxed);
            self.by_edge
                .entry(edge.to_owned())
                .or_default()
                .insert((channel, id));
        }
        self.publish_gauges();
    }

    fn remove(&self, edge: &str, channel: &str, shape: ShapeId) {
        if self.remove_entry(edge, channel, shape) {
            if let Some(mut set) = self.by_edge.get_mut(edge) {
                set.remove(&(channel.to_owned(), shape));
            }
            self.by_edge.remove_if(edge, |_, set| set.is_empty());
        }
        self.publish_gauges();
    }

    fn drop_edge(&self, edge: &str) {
        if let Some((_, set)) = self.by_edge.remove(edge) {
            for (channel, shape) in set {
                self.remove_entry(edge, &channel, shape);
            }
        }
        self.publish_gauges();
    }
}
