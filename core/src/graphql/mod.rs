//! GraphQL: schema loading, subscription validation and result projection.
//!
//! - [`schema`]: loads SDL, adds the built-in directives, reads `@channel`, `@auth`,
//!   `@filter` off `Subscription` fields ([`Schema`], [`SubscriptionField`]).
//! - [`channel_key`]: `@channel(key: "orders.{id}")` templates ([`ChannelKey`]).
//! - [`limits`]: query depth and field-count limits ([`QueryLimits`]), checked
//!   before validation.
//! - [`prepare`]: parses and validates one subscribe request against the schema and
//!   produces a [`Prepared`] subscription (field, arguments, channel, selection plan).
//! - [`projection`]: projects a resolved JSON value onto the selection set
//!   ([`SelectionPlan`]) following the GraphQL spec.
//! - `selection` (private): compiles a selection set into a [`SelectionPlan`]
//!   (CollectFields, fragment expansion, field merging, `@skip`/`@include`).
//! - [`error`]: GraphQL errors as sent to clients ([`GraphQLError`]).

pub mod channel_key;
pub mod error;
pub mod limits;
pub mod prepare;
pub mod projection;
pub mod schema;
mod selection;
#[cfg(test)]
mod test_schema;

pub use channel_key::{ChannelKey, ChannelKeyError};
pub use error::{GraphQLError, Location, PathSegment};
pub use limits::QueryLimits;
pub use prepare::{Prepared, SubscribeRequest, prepare, prepare_with_limits};
pub use projection::{Projected, SelectionPlan};
pub use schema::{AuthRule, Schema, SchemaDiagnostic, SchemaErrors, SubscriptionField};
