//! Projecting a resolved JSON value onto a selection set.
//!
//! TODO(helper): implement; keep the public API below.

use super::GraphQLError;

/// A compiled selection set for one subscription root field: aliases, fragments resolved
/// against the schema, `@skip`/`@include` already decided from the variables.
#[derive(Debug, Clone, Default)]
pub struct SelectionPlan {}

/// The result of projecting one value.
#[derive(Debug, Clone, PartialEq)]
pub struct Projected {
    /// Serialized `data` object (`{"<responseKey>": ...}`), or `null` when a non-null
    /// violation propagated to the root. Fields appear in selection order.
    pub data: String,
    /// Field errors (non-null violations, type mismatches) with paths.
    pub errors: Vec<GraphQLError>,
}

impl SelectionPlan {
    /// Projects `value` (the root field's resolved value) onto the selection set.
    pub fn project(&self, value: &serde_json::Value) -> Projected {
        let _ = value;
        Projected {
            data: "null".into(),
            errors: vec![],
        }
    }

    /// The response for a root field whose resolver failed with `error`: the field is
    /// null (propagated if it is non-null) and `error` carries the root path.
    pub fn project_field_error(&self, error: GraphQLError) -> Projected {
        Projected {
            data: "null".into(),
            errors: vec![error],
        }
    }
}
