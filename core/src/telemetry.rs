//! Metric names, built in one place. Every series is documented in the README.
//!
//! Per-tenant series carry a `tenant` label; [`tenant_label`] caps how many distinct
//! tenants get their own label (`--tenant-metrics-limit`), so a deployment with many
//! tenants does not blow up Prometheus.

mod tenant;

pub use tenant::{
    OTHER_TENANTS, TenantMetricsArgs, set_tenant_label_limit, tenant_label, tenant_labels_on,
};

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
/// Counter: connections, upgrades and subscribes refused by a limit, labelled by limit
/// (`origin`, `connections_per_ip`, `connections_per_tenant`, `subscribe_rate`).
pub const EDGE_LIMIT_REFUSALS: &str = "fanout_edge_limit_refusals_total";
/// Counter: publishes refused before validation, labelled by reason
/// (`unauthenticated`, `permission_denied`, `rate_limited`).
pub const ROUTER_PUBLISH_REFUSALS: &str = "fanout_router_publish_refusals_total";
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
/// Counter: `@filter` evaluations that failed (missing key, type error, non-boolean
/// result), labelled by field; the event is not delivered to that shape.
pub const FILTER_ERRORS: &str = "fanout_filter_errors_total";
/// Counter: events that reached no subscriber, labelled by reason: `no_tenant` (an
/// event without a tenant in multi-tenant mode), `no_interest` (no subscriber on its
/// channel), `filtered` (tenant isolation or `@filter` admitted no shape).
pub const EVENTS_DROPPED: &str = "fanout_events_dropped_total";
/// Counter: events (one per event and edge) released to local subscribers at an edge.
pub const EDGE_EVENTS_DELIVERED: &str = "fanout_edge_events_delivered_total";
/// Counter: `next` frames not queued at an edge, labelled by reason (`slow_consumer`:
/// the connection's queue was full and it is being closed with 4503; `closed`: the
/// connection was already closing).
pub const EDGE_FRAMES_DROPPED: &str = "fanout_edge_frames_dropped_total";
/// Histogram: seconds from the router accepting a publish to the edge queueing its
/// frames (wall clocks of two hosts: includes their skew).
pub const PUBLISH_TO_DELIVER_SECONDS: &str = "fanout_publish_to_deliver_seconds";
/// Gauge: frames waiting in the deepest outbound queue the last delivery reached.
pub const EDGE_OUTBOUND_QUEUE_MAX: &str = "fanout_edge_outbound_queue_max_frames";
/// Gauge: resolve tasks a worker is working on.
pub const WORKER_TASKS_IN_FLIGHT: &str = "fanout_worker_tasks_in_flight";
/// Counter: resolve tasks a worker took from the queue.
pub const WORKER_TASKS: &str = "fanout_worker_tasks_total";
/// Gauge: resolver batches waiting for the Python thread.
pub const RESOLVER_QUEUE_DEPTH: &str = "fanout_resolver_queue_depth";
/// Gauge: acknowledged connections per tenant (label `tenant`, capped: see
/// [`tenant_label`]).
pub const EDGE_TENANT_CONNECTIONS: &str = "fanout_edge_tenant_connections";
/// Counter: `next` frames queued per subscriber tenant (label `tenant`, capped).
pub const EDGE_TENANT_FRAMES: &str = "fanout_edge_tenant_frames_total";
/// Counter: events accepted per publishing tenant (label `tenant`, capped).
pub const ROUTER_TENANT_EVENTS_PUBLISHED: &str = "fanout_router_tenant_events_published_total";

/// Counter: delivery sequence numbers skipped at an edge after the reorder window.
pub const EDGE_DELIVERY_GAPS: &str = "fanout_edge_delivery_gaps_total";
/// Counter: deliveries that arrived at an edge after their gap was skipped (dropped).
pub const EDGE_LATE_DELIVERIES: &str = "fanout_edge_late_deliveries_total";

/// Gauge: 1 while the edge drains (from SIGTERM or `/drain` until it exits), else 0.
pub const EDGE_DRAINING: &str = "fanout_edge_draining";
/// Counter: connections the drain closed with 1012 (Service Restart).
pub const EDGE_DRAIN_CLOSES: &str = "fanout_edge_drain_closes_total";

/// Gauge: 1 while the process's `/readyz` answers 200, else 0, labelled by `role`
/// (`edge`, `router`, `worker`, `standalone`).
pub const READY: &str = "fanout_ready";

/// Every series name above, for checks (dashboards, docs) that must only name real
/// series.
pub const ALL: &[&str] = &[
    EDGE_CONNECTIONS,
    EDGE_SUBSCRIPTIONS,
    EDGE_SHAPES,
    EDGE_FRAMES_SENT,
    EDGE_SLOW_CONSUMER_CLOSES,
    EDGE_PROTOCOL_ERRORS,
    EDGE_LIMIT_REFUSALS,
    ROUTER_PUBLISH_REFUSALS,
    ROUTER_EVENTS_PUBLISHED,
    ROUTER_INTEREST_ENTRIES,
    ROUTER_CHANNELS,
    DELIVERIES_SENT,
    RESOLVER_CALLS,
    RESOLVER_ERRORS,
    RESOLVER_SECONDS,
    FILTER_ERRORS,
    EVENTS_DROPPED,
    EDGE_EVENTS_DELIVERED,
    EDGE_FRAMES_DROPPED,
    PUBLISH_TO_DELIVER_SECONDS,
    EDGE_OUTBOUND_QUEUE_MAX,
    WORKER_TASKS_IN_FLIGHT,
    WORKER_TASKS,
    RESOLVER_QUEUE_DEPTH,
    EDGE_TENANT_CONNECTIONS,
    EDGE_TENANT_FRAMES,
    ROUTER_TENANT_EVENTS_PUBLISHED,
    EDGE_DELIVERY_GAPS,
    EDGE_LATE_DELIVERIES,
    EDGE_DRAINING,
    EDGE_DRAIN_CLOSES,
    READY,
];

/// Makes the unlabelled series visible at zero from the start, so that `/metrics`
/// lists them before the first event (dashboards and alerts see 0, not "no data").
pub fn zero_unlabelled_series() {
    for gauge in [
        EDGE_CONNECTIONS,
        EDGE_SUBSCRIPTIONS,
        EDGE_SHAPES,
        ROUTER_INTEREST_ENTRIES,
        ROUTER_CHANNELS,
        EDGE_OUTBOUND_QUEUE_MAX,
        WORKER_TASKS_IN_FLIGHT,
        RESOLVER_QUEUE_DEPTH,
    ] {
        metrics::gauge!(gauge).set(0.0);
    }
    for counter in [
        EDGE_FRAMES_SENT,
        EDGE_SLOW_CONSUMER_CLOSES,
        ROUTER_EVENTS_PUBLISHED,
        DELIVERIES_SENT,
        EDGE_DELIVERY_GAPS,
        EDGE_LATE_DELIVERIES,
        EDGE_EVENTS_DELIVERED,
        WORKER_TASKS,
    ] {
        metrics::counter!(counter).absolute(0);
    }
}
