//! `fanout-core`: what two or more Fanout roles share.
//!
//! A tour of the modules:
//! - [`admin`]: `/healthz`, `/readyz`, `/startupz`, `/drain` and `/metrics` for every role.
//! - [`graphql`]: the schema with its built-in directives (`@channel`, `@auth`, `@filter`),
//!   validation of subscription documents, and projection of resolved values onto a
//!   selection set.
//! - [`filter`]: `@filter` row filters in CEL, compiled at schema load and evaluated
//!   per event and shape.
//! - [`security`]: the security context of a connection and JWT verification.
//! - [`shape`]: shapes (DESIGN §4): what makes two subscriptions share one resolver call
//!   and one serialized payload.
//! - [`dispatch`]: decides which shapes may receive an event (tenant isolation,
//!   filters) and groups per-shape payloads of one event into one delivery per edge.
//! - [`role`]: what every role binary shares: logging, the YAML config file, cluster
//!   flags, router liveness, readiness and signals.
//! - [`render`]: turns a projected value into the JSON payload of a `next` message.
//! - [`bus`]: the [`bus::Bus`] trait that joins roles, with the in-memory and NATS
//!   implementations.
//! - [`subject`]: every bus subject name, built in one place.
//! - [`interest`]: how an edge tells routers which shapes it wants on which channels.
//! - [`listen`]: TCP listeners with a backlog deep enough for reconnect storms.
//! - [`partition`]: channel → partition hashing (`fnv1a32`).
//! - [`membership`]: which routers are in the cluster (static list or Kubernetes
//!   EndpointSlices) and which owns each partition (rendezvous hashing).
//! - [`rate`]: token buckets for subscribe and publish rate limits.
//! - [`trace`]: W3C `traceparent` propagation from publish to edge, and the per-event
//!   spans.
//! - [`otel`]: OpenTelemetry span export over OTLP when an endpoint is configured.
//! - [`telemetry`]: metric names, built in one place.
//! - [`gauge_mirror`]: gauges that mirror shared state without publishing stale values.
//! - [`error`]: the crate's error type.

pub mod admin;
pub mod bus;
pub mod dispatch;
pub mod error;
pub mod filter;
pub mod gauge_mirror;
pub mod graphql;
pub mod interest;
pub mod listen;
pub mod membership;
pub mod otel;
pub mod partition;
pub mod rate;
pub mod render;
pub mod role;
pub mod security;
pub mod shape;
pub mod subject;
pub mod telemetry;
pub mod trace;

pub use error::{Error, Result};
