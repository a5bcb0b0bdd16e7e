//! Configuration of an edge, with documented defaults.

use std::time::Duration;

/// Settings of one edge process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdgeConfig {
    /// Identity of this edge on the bus (`fanout.edge.<edge_id>`) and towards routers.
    pub edge_id: String,
    /// HTTP path of the WebSocket endpoint. Default `/graphql`.
    pub path: String,
    /// How long a client may take to send `connection_init`. Default 3 s.
    pub init_timeout: Duration,
    /// Interval of server `ping` messages after `connection_ack`. Default 15 s;
    /// [`Duration::ZERO`] disables keepalive.
    pub ping_interval: Duration,
    /// How long the server waits for a `pong` after its `ping`. Default 10 s.
    pub pong_timeout: Duration,
    /// Largest message a client may send, in bytes. Default 64 KiB.
    pub max_message_bytes: usize,
    /// Frames queued per connection before it is closed as a slow consumer. Default 1024.
    pub outbound_queue: usize,
    /// Active subscriptions one connection may hold. Default 100.
    pub max_subscriptions_per_connection: usize,
    /// How long deliveries wait for a missing earlier one before the gap is skipped
    /// (DESIGN §6). Default 1 s.
    pub reorder_window: Duration,
    /// Connection, rate, query-complexity and Origin limits (see [`crate::limits`]).
    pub limits: crate::limits::EdgeLimits,
    /// The window a drain spreads its 1012 closes over (see [`crate::drain`]). Default
    /// 10 s; [`Duration::ZERO`] closes every connection at once.
    pub drain_window: Duration,
}

/// Default of [`EdgeConfig::drain_window`].
pub const DEFAULT_DRAIN_WINDOW: Duration = Duration::from_secs(10);

impl Default for EdgeConfig {
    fn default() -> Self {
        Self {
            edge_id: "edge-0".to_owned(),
            path: "/graphql".to_owned(),
            init_timeout: Duration::from_secs(3),
            ping_interval: Duration::from_secs(15),
            pong_timeout: Duration::from_secs(10),
            max_message_bytes: 64 * 1024,
            outbound_queue: 1024,
            max_subscriptions_per_connection: 100,
            reorder_window: Duration::from_secs(1),
            limits: crate::limits::EdgeLimits::default(),
            drain_window: DEFAULT_DRAIN_WINDOW,
        }
    }
}
