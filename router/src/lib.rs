//! `fanout-router`: the publish API, partition ownership, the channel index and dispatch.
//!
//! A tour of the modules:
//! - [`config`]: [`RouterConfig`] with its defaults.
//! - [`validate`]: checks of publish requests (channel names, JSON payloads, sizes).
//! - [`index`]: the channel index, channel → shapes → edges; it is the
//!   [`fanout_core::interest::InterestSink`] that edges report to.
//! - [`owner`]: partition owners: one task per partition stamps offsets in order and
//!   hands each event to dispatch.
//! - [`dispatch`]: resolves shapes without a Python resolver inline and sends the rest
//!   to resolver workers over the bus.
//! - [`router`]: [`Router`], which ties the above together.
//! - [`grpc`]: the `fanout.v1.Publisher` gRPC service, with reflection and health.
//! - [`error`]: the crate's error type.

pub mod config;
pub mod dispatch;
pub mod error;
pub mod grpc;
pub mod index;
pub mod owner;
pub mod router;
pub mod validate;

pub use config::RouterConfig;
pub use error::{Error, Result};
pub use router::Router;
