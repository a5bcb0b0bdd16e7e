//! The bundled example (`examples/orders`), embedded so that an installed `fanout
//! standalone` serves it from any directory.

/// The example schema.
pub const SCHEMA: &str = include_str!("../../examples/orders/schema.graphql");
/// The example resolvers.
pub const RESOLVERS: &str = include_str!("../../examples/orders/resolvers.py");
/// Name shown in diagnostics for the embedded schema.
pub const SCHEMA_NAME: &str = "examples/orders/schema.graphql";
