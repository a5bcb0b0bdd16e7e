//! GraphQL errors as the spec shapes them in responses.

use serde::{Deserialize, Serialize};

/// A location in a GraphQL document (1-based line and column).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Location {
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
}

/// One segment of a response path: a field's response key or a list index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PathSegment {
    /// A response key (alias or field name).
    Key(String),
    /// A list index.
    Index(usize),
}

/// A GraphQL error, serialized exactly as the spec's response format.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GraphQLError {
    /// Human-readable description; never contains secrets or internals.
    pub message: String,
    /// Where in the document the error is, when known.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub locations: Vec<Location>,
    /// Where in the response the error is, when it happened during execution.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub path: Vec<PathSegment>,
    /// Machine-readable details, for example `{"code": "GRAPHQL_VALIDATION_FAILED"}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extensions: Option<serde_json::Map<String, serde_json::Value>>,
}

impl GraphQLError {
    /// An error with only a message.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            locations: Vec::new(),
            path: Vec::new(),
            extensions: None,
        }
    }

    /// Adds `extensions.code`.
    pub fn with_code(mut self, code: &str) -> Self {
        self.extensions
            .get_or_insert_with(Default::default)
            .insert("code".into(), serde_json::Value::String(code.into()));
        self
    }

    /// Adds a document location.
    pub fn at(mut self, location: Location) -> Self {
        self.locations.push(location);
        self
    }
}
