//! The `tenant` label of per-tenant series, with a cap on distinct values.
//!
//! Each distinct label value is a Prometheus series; with thousands of tenants that
//! would overwhelm the server. The first `--tenant-metrics-limit` tenants a process sees
//! keep their own label, later ones share [`OTHER_TENANTS`]; a limit of 0 turns the
//! per-tenant series off.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use dashmap::DashSet;

/// Label value shared by the tenants beyond the limit.
pub const OTHER_TENANTS: &str = "_other";

/// Default of `--tenant-metrics-limit`.
pub const DEFAULT_TENANT_LABELS: usize = 100;

static LIMIT: AtomicUsize = AtomicUsize::new(DEFAULT_TENANT_LABELS);
static SEEN_COUNT: AtomicUsize = AtomicUsize::new(0);

fn seen() -> &'static DashSet<String> {
    static SEEN: OnceLock<DashSet<String>> = OnceLock::new();
    SEEN.get_or_init(DashSet::new)
}

/// The `--tenant-metrics-limit` flag of the edge, the router and `fanout standalone`.
#[derive(Debug, Clone, clap::Args)]
pub struct TenantMetricsArgs {
    /// Distinct tenants that get their own `tenant` label on per-tenant metrics; later
    /// ones are counted as `_other`; 0 turns per-tenant metrics off.
    #[arg(
        long,
        env = "FANOUT_TENANT_METRICS_LIMIT",
        value_name = "N",
        default_value_t = DEFAULT_TENANT_LABELS
    )]
    pub tenant_metrics_limit: usize,
}

impl TenantMetricsArgs {
    /// Applies the limit to this process.
    pub fn apply(&self) {
        set_tenant_label_limit(self.tenant_metrics_limit);
    }
}

/// Sets how many distinct tenants get their own label (0: no per-tenant series).
pub fn set_tenant_label_limit(limit: usize) {
    LIMIT.store(limit, Ordering::Relaxed);
}

/// Whether per-tenant series are on (a limit above 0): a cheap check before looking a
/// tenant up on a hot path.
pub fn tenant_labels_on() -> bool {
    LIMIT.load(Ordering::Relaxed) > 0
}

/// The `tenant` label value for `tenant`, or `None` when per-tenant series are off.
pub fn tenant_label(tenant: &str) -> Option<String> {
    let limit = LIMIT.load(Ordering::Relaxed);
    if limit == 0 {
        return None;
    }
    let seen = seen();
    if seen.contains(tenant) {
        return Some(tenant.to_owned());
    }
    // Reserve a slot first, so concurrent callers never exceed the limit.
    let taken = SEEN_COUNT.fetch_add(1, Ordering::Relaxed);
    if taken < limit {
        if !seen.insert(tenant.to_owned()) {
            SEEN_COUNT.fetch_sub(1, Ordering::Relaxed);
        }
        Some(tenant.to_owned())
    } else {
        SEEN_COUNT.fetch_sub(1, Ordering::Relaxed);
        Some(OTHER_TENANTS.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenants_beyond_the_limit_share_one_label() {
        set_tenant_label_limit(2);
        assert_eq!(tenant_label("a").as_deref(), Some("a"));
        assert_eq!(tenant_label("b").as_deref(), Some("b"));
        assert_eq!(tenant_label("a").as_deref(), Some("a"));
        assert_eq!(tenant_label("c").as_deref(), Some(OTHER_TENANTS));
        set_tenant_label_limit(0);
        assert_eq!(tenant_label("a"), None);
        set_tenant_label_limit(DEFAULT_TENANT_LABELS);
    }
}
