//! Validating one subscribe request and preparing it for delivery.
//!
//! TODO(helper): implement with apollo-compiler; keep the public API below.

use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Map, Value};

use super::{GraphQLError, Schema, SelectionPlan, SubscriptionField};

/// The `payload` of a `subscribe` message.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscribeRequest {
    /// The GraphQL document.
    pub query: String,
    /// Which operation of the document to run.
    #[serde(default)]
    pub operation_name: Option<String>,
    /// Variable values.
    #[serde(default)]
    pub variables: Option<Map<String, Value>>,
    /// Client extensions (ignored for now).
    #[serde(default)]
    pub extensions: Option<Map<String, Value>>,
}

/// A validated subscription, ready to be attached to a channel.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The schema field subscribed to.
    pub field: Arc<SubscriptionField>,
    /// Its response key (alias or name).
    pub response_key: String,
    /// Coerced argument values (variables substituted, defaults applied).
    pub args: Map<String, Value>,
    /// The channel rendered from `@channel(key:)` and `args`.
    pub channel: String,
    /// How to project a resolved value onto the selection set.
    pub plan: Arc<SelectionPlan>,
    /// The document normalized so that equal operations compare equal (used in the
    /// shape id): the selected operation with its fragments, printed canonically.
    pub canonical: String,
    /// Variable values after coercion, used in the shape id.
    pub variables: Map<String, Value>,
}

/// Parses, validates and prepares `request` against `schema`.
///
/// Every error is a GraphQL error with locations where the document has them. Queries
/// and mutations are rejected; a subscription must select exactly one root field.
pub fn prepare(schema: &Schema, request: &SubscribeRequest) -> Result<Prepared, Vec<GraphQLError>> {
    let _ = (schema, request);
    Err(vec![GraphQLError::new("not implemented")])
}
