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
