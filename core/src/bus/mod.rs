//! The `Bus` that joins Fanout roles: subjects carrying protobuf bytes.
//!
//! In standalone mode every role runs in one process on [`MemoryBus`]; in cluster mode
//! the same roles run on NATS. The roles' code is the same in both; only the bus differs.

mod memory;
mod nats;

pub use memory::MemoryBus;
pub use nats::NatsBus;

use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;

use crate::Result;

/// Header that carries W3C trace context between roles.
pub const TRACEPARENT: &str = "traceparent";

/// One message received from the bus.
#[derive(Debug, Clone)]
pub struct BusMessage {
    /// Subject it was published on.
    pub subject: String,
    /// Protobuf-encoded body.
    pub payload: Bytes,
    /// Headers (e.g. [`TRACEPARENT`]); empty when the publisher sent none.
    pub headers: Vec<(String, String)>,
    /// Where to send the answer when this message is a [`Bus::request`].
    pub reply: Option<String>,
}

impl BusMessage {
    /// A message with no headers and no reply subject.
    pub fn new(subject: impl Into<String>, payload: Bytes) -> Self {
        Self {
            subject: subject.into(),
            payload,
            headers: Vec::new(),
            reply: None,
        }
    }

    /// Value of the first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A live subscription; dropping it unsubscribes.
pub type BusSubscription = Pin<Box<dyn Stream<Item = BusMessage> + Send>>;

/// Publish/subscribe transport between roles.
#[async_trait::async_trait]
pub trait Bus: Send + Sync + 'static {
    /// Publishes `payload` on `subject`. Waits while the transport applies backpressure.
    async fn publish(&self, subject: &str, payload: Bytes) -> Result<()>;

    /// Publishes with headers (e.g. [`TRACEPARENT`]). A bus that cannot carry headers
    /// drops them and publishes the payload.
    async fn publish_with_headers(
        &self,
        subject: &str,
        headers: &[(&str, &str)],
        payload: Bytes,
    ) -> Result<()> {
        let _ = headers;
        self.publish(subject, payload).await
    }

    /// Sends `payload` to one subscriber of `subject` and waits up to `timeout` for its
    /// answer, which the responder publishes on the [`BusMessage::reply`] subject.
    ///
    /// Fails with [`Error::NoResponders`](crate::Error::NoResponders) when nobody
    /// listens on `subject` and [`Error::RequestTimedOut`](crate::Error::RequestTimedOut)
    /// when no answer came in time.
    async fn request(&self, subject: &str, payload: Bytes, timeout: Duration) -> Result<Bytes>;

    /// Subscribes to `subject`; every subscriber gets every message.
    async fn subscribe(&self, subject: &str) -> Result<BusSubscription>;

    /// Subscribes to `subject` in queue group `group`: each message goes to one member.
    async fn queue_subscribe(&self, subject: &str, group: &str) -> Result<BusSubscription>;

    /// Whether the bus is currently connected (for `/readyz`).
    fn is_connected(&self) -> bool;
}
