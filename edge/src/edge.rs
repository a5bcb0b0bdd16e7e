//! [`Edge`]: the state one edge process shares between its connections and the
//! delivery loop, and its statistics.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use dashmap::DashMap;
use fanout_core::gauge_mirror::GaugeMirror;
use fanout_core::graphql::Schema;
use fanout_core::interest::InterestSink;
use fanout_core::security::JwtVerifier;
use fanout_core::telemetry;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::close::CloseReason;
use crate::config::EdgeConfig;
use crate::limits::ConnectionGates;
use crate::outbound::Outbound;
use crate::shape_index::ShapeIndex;

/// One edge: its WebSocket connections, their subscriptions and the local shape index.
pub struct Edge {
    pub(crate) config: EdgeConfig,
    pub(crate) schema: Arc<Schema>,
    pub(crate) verifier: JwtVerifier,
    pub(crate) interest: Arc<dyn InterestSink>,
    pub(crate) index: ShapeIndex,
    /// Cancelled when the edge shuts down: every connection still open closes with 1001
    /// ([`Edge::close_connections`]).
    pub(crate) closing: CancellationToken,
    /// Set when the drain starts: upgrades are refused, connections close with 1012.
    pub(crate) draining: AtomicBool,
    /// The role's drain request (the admin `/drain`), when it has one: upgrades are
    /// refused from the moment it fires, before the drain task runs.
    pub(crate) drain_requested: OnceLock<CancellationToken>,
    /// The outbound handle of every open connection, so the drain can close them.
    pub(crate) open: DashMap<u64, Outbound>,
    /// Every connection task, so shutdown can wait for them.
    pub(crate) tracker: TaskTracker,
    /// Per-IP and per-tenant connection counters.
    pub(crate) gates: ConnectionGates,
    connections: AtomicUsize,
    subscriptions: AtomicUsize,
    /// Publishes the connection, subscription and shape gauges in order.
    gauges: GaugeMirror,
    next_connection: AtomicU64,
}

impl std::fmt::Debug for Edge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Edge")
            .field("edge_id", &self.config.edge_id)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

/// A snapshot of an edge's load.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EdgeStats {
    /// Open WebSocket connections.
    pub connections: usize,
    /// Active subscriptions over all connections.
    pub subscriptions: usize,
    /// Distinct shapes with at least one local subscriber.
    pub shapes: usize,
}

impl Edge {
    /// An edge serving `schema`, authenticating with `verifier` and reporting shapes
    /// to `interest`.
    pub fn new(
        config: EdgeConfig,
        schema: Arc<Schema>,
        verifier: JwtVerifier,
        interest: Arc<dyn InterestSink>,
    ) -> Arc<Self> {
        metrics::gauge!(telemetry::EDGE_DRAINING).set(0.0);
        metrics::counter!(telemetry::EDGE_DRAIN_CLOSES).absolute(0);
        Arc::new(Self {
            config,
            schema,
            verifier,
            interest,
            index: ShapeIndex::default(),
            closing: CancellationToken::new(),
            draining: AtomicBool::new(false),
            drain_requested: OnceLock::new(),
            open: DashMap::new(),
            tracker: TaskTracker::new(),
            gates: ConnectionGates::default(),
            connections: AtomicUsize::new(0),
            subscriptions: AtomicUsize::new(0),
            gauges: GaugeMirror::default(),
            next_connection: AtomicU64::new(1),
        })
    }

    /// The edge's configuration.
    pub fn config(&self) -> &EdgeConfig {
        &self.config
    }

    /// Current load; the same numbers are exported as gauges.
    pub fn stats(&self) -> EdgeStats {
        EdgeStats {
            connections: self.connections.load(Ordering::Relaxed),
            subscriptions: self.subscriptions.load(Ordering::Relaxed),
            shapes: self.index.shapes(),
        }
    }

    /// Counts a connection, and lists its `outbound` for the drain, until the guard is
    /// dropped.
    pub(crate) fn connection_opened(self: &Arc<Self>, outbound: &Outbound) -> ConnectionGuard {
        self.connections.fetch_add(1, Ordering::Relaxed);
        self.publish_connections();
        let key = self.next_connection.fetch_add(1, Ordering::Relaxed);
        self.open.insert(key, outbound.clone());
        ConnectionGuard {
            edge: self.clone(),
            key,
        }
    }

    /// Shutdown: closes every open connection with 1001, and (through `closing`) any
    /// that registers after this call. Connections are told one by one, through their
    /// own close signal, instead of each watching one shared token: a shared token is a
    /// lock that every connection's task would take each time it runs.
    pub(crate) fn close_connections(&self) {
        self.closing.cancel();
        for entry in &self.open {
            entry.value().close(CloseReason::GoingAway);
        }
    }

    pub(crate) fn subscription_added(&self) {
        self.subscriptions.fetch_add(1, Ordering::Relaxed);
        self.publish_subscriptions();
    }

    pub(crate) fn subscription_removed(&self) {
        self.subscriptions.fetch_sub(1, Ordering::Relaxed);
        self.publish_subscriptions();
    }

    fn publish_subscriptions(&self) {
        self.gauges.publish(|| {
            let n = self.subscriptions.load(Ordering::Relaxed);
            metrics::gauge!(telemetry::EDGE_SUBSCRIPTIONS).set(n as f64);
            metrics::gauge!(telemetry::EDGE_SHAPES).set(self.index.shapes() as f64);
        });
    }

    fn publish_connections(&self) {
        self.gauges.publish(|| {
            let n = self.connections.load(Ordering::Relaxed);
            metrics::gauge!(telemetry::EDGE_CONNECTIONS).set(n as f64);
        });
    }
}

/// Decrements the connection count when a connection ends, however it ends.
pub(crate) struct ConnectionGuard {
    edge: Arc<Edge>,
    key: u64,
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.edge.open.remove(&self.key);
        self.edge.connections.fetch_sub(1, Ordering::Relaxed);
        self.edge.publish_connections();
    }
}
