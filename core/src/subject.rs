//! Every bus subject Fanout uses, built in one place.

/// Router ingress for partition `k`.
pub fn partition(k: u32) -> String {
    format!("fanout.p.{k}")
}

/// Queue subject of resolver workers.
pub const RESOLVE: &str = "fanout.resolve";

/// Queue group of resolver workers.
pub const RESOLVE_GROUP: &str = "fanout-workers";

/// Deliveries for one edge.
pub fn edge(edge_id: &str) -> String {
    format!("fanout.edge.{edge_id}")
}

/// Router heartbeats (payload: the router id), see `role::liveness`.
pub const ROUTERS_ALIVE: &str = "fanout.routers.alive";

/// Queue group of the routers listening on a partition subject, so that one owner
/// takes each forwarded publish even while two routers briefly both think they own it.
pub const PARTITION_GROUP: &str = "fanout-owners";
