//! Metric names, built in one place. Every series is documented in the README.

/// Gauge: open WebSocket connections on an edge.
pub const EDGE_CONNECTIONS: &str = "fanout_edge_connections";
/// Gauge: active subscriptions on an edge.
pub const EDGE_SUBSCRIPTIONS: &str = "fanout_edge_subscriptions";
/// Gauge: distinct shapes held by an edge.
pub const EDGE_SHAPES: &str = "fanout_edge_shapes";
/// Counter: `next` frames queued to clients.
pub const EDGE_FRAMES_SENT: &str = "fanout_edge_frames_total";
/// Counter: connections closed because their outbound queue overflowed.
pub const EDGE_SLOW_CONSUMER_CLOSES: &str = "fanout_edge_slow_consumer_closes_total";
/// Counter: protocol violations, labelled by close code.
pub const EDGE_PROTOCOL_ERRORS: &str = "fanout_edge_protocol_errors_total";
/// Counter: events accepted by the publish API.
pub const ROUTER_EVENTS_PUBLISHED: &str = "fanout_router_events_published_total";
/// Gauge: (channel, shape, edge) interest entries held by routers.
pub const ROUTER_INTEREST_ENTRIES: &str = "fanout_router_interest_entries";
/// Gauge: channels with at least one interested shape.
pub const ROUTER_CHANNELS: &str = "fanout_router_channels";
/// Counter: deliveries (one per event and edge) sent to edges.
pub const DELIVERIES_SENT: &str = "fanout_deliveries_total";
/// Counter: resolver calls, labelled by field.
pub const RESOLVER_CALLS: &str = "fanout_resolver_calls_total";
/// Counter: resolver calls that raised or timed out, labelled by field and kind.
pub const RESOLVER_ERRORS: &str = "fanout_resolver_errors_total";
/// Histogram: resolver call latency in seconds.
pub const RESOLVER_SECONDS: &str = "fanout_resolver_seconds";
