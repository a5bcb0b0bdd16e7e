//! Interest: which shapes an edge wants on which channels.
//!
//! The edge is the source of truth. It reports a shape when its first local subscriber
//! arrives and withdraws it when the last one leaves. In standalone mode the router's
//! channel index implements [`InterestSink`] directly; in cluster mode a gRPC `Interest`
//! stream per router carries the same calls.

use std::sync::Arc;

use crate::shape::{Shape, ShapeId};

/// Receives an edge's interest changes. Calls must not block.
pub trait InterestSink: Send + Sync + 'static {
    /// `edge` now has at least one subscriber of `shape`.
    fn add(&self, edge: &str, shape: Arc<Shape>);

    /// `edge` has no subscriber of `shape` on `channel` any more.
    fn remove(&self, edge: &str, channel: &str, shape: ShapeId);

    /// `edge` went away: forget all of its interest.
    fn drop_edge(&self, edge: &str);
}
