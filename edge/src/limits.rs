//! Connection and subscribe limits of an edge: what they are ([`EdgeLimits`]) and the
//! counters that enforce the per-IP and per-tenant connection caps ([`ConnectionGates`]).
//!
//! | limit | checked | a client over it gets |
//! |---|---|---|
//! | connections per IP | at the HTTP upgrade | HTTP 429, no upgrade |
//! | connections per tenant | at `connection_init`, after authentication | close 4430 |
//! | subscribe rate per connection | at each `subscribe` | `error` with code `RATE_LIMITED` |
//! | query depth / field count | at each `subscribe`, before validation | `error` with code `QUERY_TOO_COMPLEX` |
//! | Origin | at the HTTP upgrade | HTTP 403, no upgrade ([`crate::origin`]) |

use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Arc;

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use dashmap::DashMap;
use dashmap::mapref::entry::Entry;
use fanout_core::graphql::{GraphQLError, QueryLimits};
use fanout_core::rate::{Rate, TokenBucket};
use fanout_core::security::SecurityContext;
use fanout_core::telemetry;
use tokio::time::Instant;

use crate::close::CloseReason;
use crate::edge::Edge;
use crate::origin::OriginPolicy;

/// `extensions.code` of a `subscribe` refused by the subscribe rate limit.
pub const RATE_LIMITED: &str = "RATE_LIMITED";

/// Limits of one edge. `0` means unlimited for the connection caps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdgeLimits {
    /// Query depth and field-count limits of subscribe documents.
    pub query: QueryLimits,
    /// Open connections per client IP (the TCP peer address); 0 = unlimited. Default 0.
    pub max_connections_per_ip: usize,
    /// Acknowledged connections per tenant (connections without a tenant are not
    /// counted); 0 = unlimited. Default 0.
    pub max_connections_per_tenant: usize,
    /// `subscribe` messages per connection; `None` = unlimited. Default 20/s with a
    /// burst of 100.
    pub subscribe_rate: Option<Rate>,
    /// Which `Origin` headers may open a WebSocket. Default: any.
    pub origins: OriginPolicy,
}

impl Default for EdgeLimits {
    fn default() -> Self {
        Self {
            query: QueryLimits::default(),
            max_connections_per_ip: 0,
            max_connections_per_tenant: 0,
            subscribe_rate: Some(Rate {
                per_second: 20,
                burst: 100,
            }),
            origins: OriginPolicy::default(),
        }
    }
}

/// Counts open connections by key, refusing a key over its cap.
#[derive(Debug)]
pub struct Counter<K: Eq + Hash> {
    open: DashMap<K, usize>,
}

impl<K: Eq + Hash + Clone> Counter<K> {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            open: DashMap::new(),
        })
    }

    /// Takes a slot for `key` unless `max` are already taken (`max == 0`: no cap).
    pub fn acquire(self: &Arc<Self>, key: K, max: usize) -> Option<Slot<K>> {
        match self.open.entry(key.clone()) {
            Entry::Occupied(mut e) => {
                if max != 0 && *e.get() >= max {
                    return None;
                }
                *e.get_mut() += 1;
            }
            Entry::Vacant(e) => {
                e.insert(1);
            }
        }
        Some(Slot {
            counter: self.clone(),
            key: Some(key),
            gauge: None,
        })
    }

    /// Slots taken for `key`.
    pub fn count(&self, key: &K) -> usize {
        self.open.get(key).map_or(0, |n| *n)
    }

    fn release(&self, key: K) {
        if let Entry::Occupied(mut e) = self.open.entry(key) {
            if *e.get() <= 1 {
                e.remove();
            } else {
                *e.get_mut() -= 1;
            }
        }
    }
}

/// One taken slot of a [`Counter`], given back on drop.
#[derive(Debug)]
pub struct Slot<K: Eq + Hash + Clone> {
    counter: Arc<Counter<K>>,
    key: Option<K>,
    /// A gauge counting this slot while it is held (per-tenant connections).
    gauge: Option<metrics::Gauge>,
}

impl<K: Eq + Hash + Clone> Slot<K> {
    /// Counts this slot in `gauge` until it is dropped.
    fn counted_in(mut self, gauge: metrics::Gauge) -> Self {
        gauge.increment(1.0);
        self.gauge = Some(gauge);
        self
    }
}

impl<K: Eq + Hash + Clone> Drop for Slot<K> {
    fn drop(&mut self) {
        if let Some(gauge) = self.gauge.take() {
            gauge.decrement(1.0);
        }
        if let Some(key) = self.key.take() {
            self.counter.release(key);
        }
    }
}

/// The per-IP and per-tenant connection counters of an edge.
#[derive(Debug)]
pub struct ConnectionGates {
    /// Open connections by peer IP.
    pub by_ip: Arc<Counter<IpAddr>>,
    /// Acknowledged connections by tenant.
    pub by_tenant: Arc<Counter<String>>,
}

impl Default for ConnectionGates {
    fn default() -> Self {
        Self {
            by_ip: Counter::new(),
            by_tenant: Counter::new(),
        }
    }
}

/// Counts a refusal by a limit (`limit` label of `fanout_edge_limit_refusals_total`).
pub(crate) fn count_refusal(limit: &'static str) {
    metrics::counter!(telemetry::EDGE_LIMIT_REFUSALS, "limit" => limit).increment(1);
}

/// Why an upgrade request is refused before upgrading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// HTTP 403: the `Origin` is not allowed.
    Origin,
    /// HTTP 429: the client's IP holds `max_connections_per_ip` connections.
    TooManyFromIp,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Self::Origin => (StatusCode::FORBIDDEN, "Origin not allowed\n").into_response(),
            Self::TooManyFromIp => (
                StatusCode::TOO_MANY_REQUESTS,
                "Too many connections from this address\n",
            )
                .into_response(),
        }
    }
}

/// Decides whether an upgrade request may become a WebSocket, before upgrading: the
/// `Origin` check (403) and the per-IP connection cap (429). On success, the returned
/// slot (if any) must live as long as the connection.
pub(crate) fn admit(
    edge: &Edge,
    headers: &HeaderMap,
    peer: Option<IpAddr>,
) -> Result<Option<Slot<IpAddr>>, Refusal> {
    let limits = &edge.config.limits;
    let origin = headers.get(header::ORIGIN).map(|v| v.as_bytes());
    if !limits.origins.allows(origin) {
        count_refusal("origin");
        tracing::debug!(?peer, "upgrade refused: Origin not allowed");
        return Err(Refusal::Origin);
    }
    let Some(ip) = peer else {
        return Ok(None);
    };
    match edge.gates.by_ip.acquire(ip, limits.max_connections_per_ip) {
        Some(slot) => Ok(Some(slot)),
        None => {
            count_refusal("connections_per_ip");
            tracing::debug!(%ip, "upgrade refused: too many connections from this address");
            Err(Refusal::TooManyFromIp)
        }
    }
}

/// Takes a per-tenant connection slot for `security`'s tenant at `connection_init`
/// (connections without a tenant are not counted). `Err` closes the socket with 4430.
pub(crate) fn acquire_tenant(
    edge: &Edge,
    security: &SecurityContext,
) -> Result<Option<Slot<String>>, CloseReason> {
    let Some(tenant) = &security.tenant else {
        return Ok(None);
    };
    let max = edge.config.limits.max_connections_per_tenant;
    match edge.gates.by_tenant.acquire(tenant.clone(), max) {
        Some(slot) => Ok(Some(match telemetry::tenant_label(tenant) {
            Some(label) => slot.counted_in(metrics::gauge!(
                telemetry::EDGE_TENANT_CONNECTIONS,
                "tenant" => label
            )),
            None => slot,
        })),
        None => {
            count_refusal("connections_per_tenant");
            tracing::debug!(%tenant, max, "connection_init refused: tenant connection limit");
            Err(CloseReason::TenantConnectionLimit)
        }
    }
}

/// The subscribe rate limit of one connection.
#[derive(Debug)]
pub(crate) struct SubscribeRate(Option<TokenBucket>);

impl SubscribeRate {
    pub(crate) fn new(limits: &EdgeLimits) -> Self {
        Self(
            limits
                .subscribe_rate
                .map(|rate| TokenBucket::new(rate, Instant::now().into_std())),
        )
    }

    /// Takes one `subscribe` from the bucket; over the rate, the error to send for it.
    pub(crate) fn check(&mut self) -> Result<(), GraphQLError> {
        let Some(bucket) = &mut self.0 else {
            return Ok(());
        };
        if bucket.try_take(Instant::now().into_std()) {
            return Ok(());
        }
        count_refusal("subscribe_rate");
        let retry_ms = bucket.wait_time().as_millis().max(1);
        let mut error = GraphQLError::new(format!(
            "rate limited: too many subscribe messages on this connection; retry in {retry_ms} ms"
        ))
        .with_code(RATE_LIMITED);
        error
            .extensions
            .get_or_insert_with(Default::default)
            .insert("retryAfterMs".into(), (retry_ms as u64).into());
        Err(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_capped_per_key_and_given_back_on_drop() {
        let gates = ConnectionGates::default();
        let ip: IpAddr = [10, 0, 0, 1].into();
        let other: IpAddr = [10, 0, 0, 2].into();
        let a = gates.by_ip.acquire(ip, 2).expect("first");
        let b = gates.by_ip.acquire(ip, 2).expect("second");
        assert!(gates.by_ip.acquire(ip, 2).is_none());
        assert!(gates.by_ip.acquire(other, 2).is_some());
        drop(a);
        let c = gates.by_ip.acquire(ip, 2).expect("freed");
        drop((b, c));
        assert_eq!(gates.by_ip.count(&ip), 0);
        // 0 means no cap.
        let many: Vec<_> = (0..10)
            .filter_map(|_| gates.by_tenant.acquire("t".to_owned(), 0))
            .collect();
        assert_eq!(many.len(), 10);
    }
}
