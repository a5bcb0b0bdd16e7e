//! `fanout-core`: what two or more Fanout roles share.
//!
//! A tour of the modules:
//! - [`graphql`]: the schema with its built-in directives (`@channel`, `@auth`, `@filter`),
//!   validation of subscription documents, and projection of resolved values onto a
//!   selection set.
//! - [`security`]: the security context of a connection and JWT verification.
//! - [`shape`]: shapes (DESIGN §4): what makes two subscriptions share one resolver call
//!   and one serialized payload.
//! - [`dispatch`]: groups per-shape payloads of one event into one delivery per edge.
//! - [`render`]: turns a projected value into the JSON payload of a `next` message.
//! - [`bus`]: the [`bus::Bus`] trait that joins roles, with the in-memory implementation.
//! - [`subject`]: every bus subject name, built in one place.
//! - [`interest`]: how an edge tells routers which shapes it wants on which channels.
//! - [`partition`]: channel → partition hashing (`fnv1a32`).
//! - [`telemetry`]: metric names, built in one place.
//! - [`error`]: the crate's error type.

pub mod bus;
pub mod dispatch;
pub mod error;
pub mod graphql;
pub mod interest;
pub mod partition;
pub mod render;
pub mod security;
pub mod shape;
pub mod subject;
pub mod telemetry;

pub use error::{Error, Result};
