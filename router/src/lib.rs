//! `fanout-router`: the publish API, partition ownership, the channel index and dispatch.
//!
//! A tour of the modules:
//! - [`cluster`]: partition ownership by rendezvous hashing over the router members,
//!   and the bus ingress of forwarded publishes (cluster mode).
//! - [`config`]: [`RouterConfig`] with its defaults.
//! - [`validate`]: checks of publish requests (channel names, JSON payloads, sizes).
//! - [`index`]: the channel index, channel → shapes → edges; it is the
//!   [`fanout_core::interest::InterestSink`] that edges report to.
//! - [`owner`]: partition owners: one task per partition stamps offsets in order and
//!   hands each event to dispatch.
//! - [`dispatch`]: resolves shapes without a Python resolver inline and sends the rest
//!   to resolver workers over the bus.
//! - [`router`]: [`Router`], which ties the above together.
//! - [`interest_server`]: the `fanout.v1.Interest` gRPC service edges stream their
//!   interest to (cluster mode).
//! - [`grpc`]: the `fanout.v1.Publisher` gRPC service, with reflection and health.
//! - [`publisher_auth`]: publisher bearer tokens and channel-prefix grants.
//! - [`rate`]: publish rate limits per publisher.
//! - [`tls`]: TLS termination of the gRPC listener.
//! - [`error`]: the crate's error type.

pub mod cluster;
pub mod config;
pub mod dispatch;
pub mod error;
pub mod grpc;
pub mod index;
pub mod interest_server;
pub mod owner;
pub mod publisher_auth;
pub mod rate;
pub mod router;
pub mod tls;
pub mod validate;

pub use config::RouterConfig;
pub use error::{Error, Result};
pub use router::Router;
