//! The `Bus` that joins Fanout roles: subjects carrying protobuf bytes.
//!
//! In standalone mode every role runs in one process on [`MemoryBus`]; in cluster mode
//! the same roles run on NATS. The roles' code is the same in both; only the bus differs.

mod memory;

pub use memory::MemoryBus;

use std::pin::Pin;

use bytes::Bytes;
use futures_util::Stream;

use crate::Result;

/// One message received from the bus.
#[derive(Debug, Clone)]
pub struct BusMessage {
    /// Subject it was published on.
    pub subject: String,
    /// Protobuf-encoded body.
    pub payload: Bytes,
}

/// A live subscription; dropping it unsubscribes.
pub type BusSubscription = Pin<Box<dyn Stream<Item = BusMessage> + Send>>;

/// Publish/subscribe transport between roles.
#[async_trait::async_trait]
pub trait Bus: Send + Sync + 'static {
    /// Publishes `payload` on `subject`. Waits while the transport applies backpressure.
    async fn publish(&self, subject: &str, payload: Bytes) -> Result<()>;

    /// Subscribes to `subject`; every subscriber gets every message.
    async fn subscribe(&self, subject: &str) -> Result<BusSubscription>;

    /// Subscribes to `subject` in queue group `group`: each message goes to one member.
    async fn queue_subscribe(&self, subject: &str, group: &str) -> Result<BusSubscription>;

    /// Whether the bus is currently connected (for `/readyz`).
    fn is_connected(&self) -> bool;
}
