//! Router configuration.

use std::collections::HashSet;

/// Configuration of one router.
#[derive(Debug, Clone)]
pub struct RouterConfig {
    /// Identity of this router on the bus (stamped on deliveries).
    pub router_id: String,
    /// Number of partitions of the cluster (fixed for its life).
    pub partitions: u32,
    /// Largest accepted event payload, in bytes.
    pub max_payload_bytes: usize,
    /// Events queued per partition owner before publishers wait.
    pub partition_queue: usize,
    /// How many recent idempotency keys each partition remembers.
    pub idempotency_window: usize,
    /// Subscription fields that have a Python resolver: events on channels with such
    /// shapes go to resolver workers; all others are resolved inline.
    pub python_fields: HashSet<String>,
    /// Tenant isolation: an event reaches only subscribers of its `tenant`; an event
    /// without a tenant reaches nobody. Off by default.
    pub multi_tenant: bool,
}

impl Default for RouterConfig {
    fn default() -> Self {
        Self {
            router_id: "router-0".into(),
            partitions: fanout_core::partition::DEFAULT_PARTITIONS,
            max_payload_bytes: 1024 * 1024,
            partition_queue: 4096,
            idempotency_window: 1024,
            python_fields: HashSet::new(),
            multi_tenant: false,
        }
    }
}
