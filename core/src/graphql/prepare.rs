//! Validating one subscribe request and preparing it for delivery.
//!
//! Steps, each reporting GraphQL errors with `extensions.code`:
//! 1. parse the document (`GRAPHQL_PARSE_FAILED`) and check its depth and field count
//!    (`QUERY_TOO_COMPLEX`, [`super::limits`]);
//! 2. validate it against the schema (`GRAPHQL_VALIDATION_FAILED`);
//! 3. pick the operation (`BAD_USER_INPUT` for a missing or unknown name) and refuse
//!    queries and mutations (`OPERATION_NOT_SUPPORTED`);
//! 4. coerce the variables (`BAD_USER_INPUT`);
//! 5. compute the root field's arguments and render its channel (`BAD_USER_INPUT`);
//! 6. print the operation canonically and compile the selection plan.

use std::collections::BTreeSet;
use std::sync::Arc;

use apollo_compiler::ast::{self, OperationType, Type, Value as GqlValue};
use apollo_compiler::executable::{ExecutableDocument, Field, Operation, Selection, SelectionSet};
use apollo_compiler::parser::SourceMap;
use apollo_compiler::response::{JsonMap, JsonValue};
use apollo_compiler::schema::ExtendedType;
use apollo_compiler::validation::DiagnosticList;
use apollo_compiler::{Node, request};
use serde::Deserialize;
use serde_json::{Map, Number, Value};

use super::selection::Compiler;
use super::{GraphQLError, Location, QueryLimits, Schema, SelectionPlan, SubscriptionField};

/// `extensions.code` of a document that does not parse.
pub const PARSE_FAILED: &str = "GRAPHQL_PARSE_FAILED";
/// `extensions.code` of a document that is not valid against the schema.
pub const VALIDATION_FAILED: &str = "GRAPHQL_VALIDATION_FAILED";
/// `extensions.code` of a query or mutation sent over the subscription socket.
pub const OPERATION_NOT_SUPPORTED: &str = "OPERATION_NOT_SUPPORTED";
/// `extensions.code` of bad variables, arguments or operation names.
pub const BAD_USER_INPUT: &str = "BAD_USER_INPUT";

/// Source name of client documents in diagnostics.
const DOCUMENT_SOURCE: &str = "subscription.graphql";

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
    prepare_with_limits(schema, request, &QueryLimits::default())
}

/// [`prepare`] with explicit complexity limits, checked right after parsing and before
/// validation (`QUERY_TOO_COMPLEX`, see [`super::limits`]).
pub fn prepare_with_limits(
    schema: &Schema,
    request: &SubscribeRequest,
    limits: &QueryLimits,
) -> Result<Prepared, Vec<GraphQLError>> {
    let ast = ast::Document::parse(request.query.as_str(), DOCUMENT_SOURCE)
        .map_err(|e| diagnostics(&e.errors, PARSE_FAILED))?;
    super::limits::check(&ast, limits).map_err(|e| vec![e])?;
    let document = ast
        .to_executable_validate(schema.apollo())
        .map_err(|e| diagnostics(&e.errors, VALIDATION_FAILED))?;
    let sources = &document.sources;

    let operation =
        select_operation(&document, request.operation_name.as_deref()).map_err(|e| vec![e])?;
    if operation.operation_type != OperationType::Subscription {
        let mut error = GraphQLError::new(format!(
            "only subscription operations are supported over this socket; got a {}",
            operation.operation_type.name()
        ))
        .with_code(OPERATION_NOT_SUPPORTED);
        error
            .locations
            .extend(location(operation.location(), sources));
        return Err(vec![error]);
    }

    let variables = coerce_variables(schema, operation, request.variables.as_ref(), sources)?;

    let compiler = Compiler {
        schema,
        document: &document,
        variables: &variables,
    };
    let root_type = operation.selection_set.ty.as_str();
    let mut groups = Vec::new();
    compiler.collect(
        root_type,
        &operation.selection_set,
        &mut groups,
        &mut Vec::new(),
    );
    let [(response_key, fields)] = groups.as_slice() else {
        let mut error = GraphQLError::new(format!(
            "a subscription must select exactly one root field; this one selects {}",
            groups.len()
        ))
        .with_code(VALIDATION_FAILED);
        error
            .locations
            .extend(location(operation.location(), sources));
        return Err(vec![error]);
    };
    let Some(first) = fields.first() else {
        return Err(vec![
            GraphQLError::new("no root field selected").with_code(VALIDATION_FAILED),
        ]);
    };
    let field_location = location(first.location(), sources);
    let at = |error: GraphQLError| {
        let mut error = error;
        error.locations.extend(field_location);
        vec![error]
    };
    let Some(field) = schema.subscription_field(first.name.as_str()) else {
        return Err(at(GraphQLError::new(format!(
            "`{}` cannot be subscribed to: it is not a subscription field",
            first.name
        ))
        .with_code(VALIDATION_FAILED)));
    };

    let args = field_arguments(schema, first, &variables)
        .map_err(|message| at(GraphQLError::new(message).with_code(BAD_USER_INPUT)))?;
    let channel = field
        .channel
        .render(&args)
        .map_err(|e| at(GraphQLError::new(e.to_string()).with_code(BAD_USER_INPUT)))?;

    let plan = SelectionPlan::new(
        root_type,
        field_location,
        compiler.field(response_key, fields),
    );

    Ok(Prepared {
        field: Arc::clone(field),
        response_key: (*response_key).to_owned(),
        args,
        channel,
        plan: Arc::new(plan),
        canonical: canonical(&document, operation),
        variables,
    })
}

/// Converts apollo diagnostics into GraphQL errors with `code`.
fn diagnostics(list: &DiagnosticList, code: &str) -> Vec<GraphQLError> {
    let mut errors: Vec<GraphQLError> = Vec::with_capacity(list.len());
    for error in list.iter().map(|diagnostic| {
        let json = diagnostic.to_json();
        let mut error = GraphQLError::new(json.message).with_code(code);
        error.locations = json
            .locations
            .iter()
            .map(|l| Location {
                line: l.line,
                column: l.column,
            })
            .collect();
        error
    }) {
        // The parser can report the same problem twice at the same place.
        if !errors.contains(&error) {
            errors.push(error);
        }
    }
    errors
}

fn location(
    span: Option<apollo_compiler::parser::SourceSpan>,
    sources: &SourceMap,
) -> Option<Location> {
    let lc = span?.line_column(sources)?;
    Some(Location {
        line: lc.line,
        column: lc.column,
    })
}

/// GetOperation: by name, or the only operation of the document.
fn select_operation<'d>(
    document: &'d ExecutableDocument,
    name: Option<&str>,
) -> Result<&'d Node<Operation>, GraphQLError> {
    let operations = &document.operations;
    match name.filter(|n| !n.is_empty()) {
        Some(name) => operations.named.get(name).ok_or_else(|| {
            GraphQLError::new(format!("the document has no operation named `{name}`"))
                .with_code(BAD_USER_INPUT)
        }),
        None => {
            let mut all = operations.iter();
            match (all.next(), all.next()) {
                (Some(only), None) => Ok(only),
                (None, _) => Err(GraphQLError::new("the document contains no operation")
                    .with_code(BAD_USER_INPUT)),
                (Some(_), Some(_)) => Err(GraphQLError::new(
                    "the document contains several operations; `operationName` must say which to run",
                )
                .with_code(BAD_USER_INPUT)),
            }
        }
    }
}

/// CoerceVariableValues, with apollo-compiler.
fn coerce_variables(
    schema: &Schema,
    operation: &Operation,
    values: Option<&Map<String, Value>>,
    sources: &SourceMap,
) -> Result<Map<String, Value>, Vec<GraphQLError>> {
    let mut raw = JsonMap::new();
    for (name, value) in values.into_iter().flatten() {
        raw.insert(name.as_str(), JsonValue::from(value.clone()));
    }
    let coerced =
        request::coerce_variable_values(schema.apollo(), operation, &raw).map_err(|e| {
            let mut error = GraphQLError::new(e.message().to_string()).with_code(BAD_USER_INPUT);
            error.locations.extend(location(e.location(), sources));
            vec![error]
        })?;
    Ok(coerced
        .iter()
        .map(|(name, value)| (name.as_str().to_owned(), from_apollo_json(value)))
        .collect())
}

fn from_apollo_json(value: &JsonValue) -> Value {
    match value {
        JsonValue::Null => Value::Null,
        JsonValue::Bool(b) => Value::Bool(*b),
        JsonValue::Number(n) => Value::Number(n.clone()),
        JsonValue::String(s) => Value::String(s.as_str().to_owned()),
        JsonValue::Array(items) => Value::Array(items.iter().map(from_apollo_json).collect()),
        JsonValue::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.as_str().to_owned(), from_apollo_json(v)))
                .collect(),
        ),
    }
}

/// CoerceArgumentValues for the root field: literals, variables, defaults.
fn field_arguments(
    schema: &Schema,
    field: &Field,
    variables: &Map<String, Value>,
) -> Result<Map<String, Value>, String> {
    let mut args = Map::new();
    for definition in &field.definition.arguments {
        let name = definition.name.as_str();
        let given = field.arguments.iter().find(|a| a.name == definition.name);
        let value = match given.map(|a| a.value.as_ref()) {
            Some(GqlValue::Variable(var)) => variables.get(var.as_str()).cloned(),
            Some(literal) => Some(literal_value(schema, &definition.ty, literal, variables)),
            None => None,
        };
        let value = value.or_else(|| {
            definition
                .default_value
                .as_ref()
                .map(|default| literal_value(schema, &definition.ty, default, variables))
        });
        match value {
            Some(Value::Null) if definition.ty.is_non_null() => {
                return Err(format!(
                    "argument `{name}` of `{}` must not be null",
                    field.name
                ));
            }
            Some(value) => {
                args.insert(name.to_owned(), normalize_id(&definition.ty, value));
            }
            None if definition.ty.is_non_null() => {
                return Err(format!("argument `{name}` of `{}` is required", field.name));
            }
            None => {}
        }
    }
    Ok(args)
}

/// Input coercion of a (validated) literal of type `ty`, variables substituted.
fn literal_value(
    schema: &Schema,
    ty: &Type,
    value: &GqlValue,
    variables: &Map<String, Value>,
) -> Value {
    match value {
        GqlValue::Null => Value::Null,
        GqlValue::Variable(var) => variables.get(var.as_str()).cloned().unwrap_or(Value::Null),
        GqlValue::List(items) => {
            let item_ty = if ty.is_list() { ty.item_type() } else { ty };
            Value::Array(
                items
                    .iter()
                    .map(|item| literal_value(schema, item_ty, item, variables))
                    .collect(),
            )
        }
        // A single value where a list is expected is a list of one (input coercion).
        _ if ty.is_list() => Value::Array(vec![literal_value(
            schema,
            ty.item_type(),
            value,
            variables,
        )]),
        GqlValue::Enum(name) => Value::String(name.to_string()),
        GqlValue::String(s) => Value::String(s.clone()),
        GqlValue::Boolean(b) => Value::Bool(*b),
        GqlValue::Int(i) => match ty.inner_named_type().as_str() {
            "ID" => Value::String(i.as_str().to_owned()),
            "Float" => float(i.as_str()),
            _ => i
                .as_str()
                .parse::<i64>()
                .map_or_else(|_| float(i.as_str()), |n| Value::Number(n.into())),
        },
        GqlValue::Float(f) => float(f.as_str()),
        GqlValue::Object(fields) => {
            let mut map = Map::new();
            let definition = match schema.apollo().types.get(ty.inner_named_type()) {
                Some(ExtendedType::InputObject(def)) => Some(def),
                _ => None,
            };
            let Some(definition) = definition else {
                for (name, value) in fields {
                    map.insert(
                        name.to_string(),
                        literal_value(schema, ty, value, variables),
                    );
                }
                return Value::Object(map);
            };
            for (name, field) in &definition.fields {
                let given = fields
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| v.as_ref());
                let value = match given {
                    Some(GqlValue::Variable(var)) => variables.get(var.as_str()).cloned(),
                    Some(literal) => Some(literal_value(schema, &field.ty, literal, variables)),
                    None => None,
                }
                .or_else(|| {
                    field
                        .default_value
                        .as_ref()
                        .map(|d| literal_value(schema, &field.ty, d, variables))
                });
                if let Some(value) = value {
                    map.insert(name.to_string(), value);
                }
            }
            Value::Object(map)
        }
    }
}

fn float(text: &str) -> Value {
    text.parse::<f64>()
        .ok()
        .and_then(Number::from_f64)
        .map_or(Value::Null, Value::Number)
}

/// ID input coercion yields strings, whether the client sent `42` or `"42"`.
fn normalize_id(ty: &Type, value: Value) -> Value {
    if ty.inner_named_type().as_str() != "ID" {
        return value;
    }
    match value {
        Value::Number(n) => Value::String(n.to_string()),
        Value::Array(items) => Value::Array(
            items
                .into_iter()
                .map(|item| normalize_id(ty.item_type(), item))
                .collect(),
        ),
        other => other,
    }
}

/// The operation and the fragments it uses (sorted by name), printed without
/// indentation, so whitespace, comments and unused definitions do not matter.
fn canonical(document: &ExecutableDocument, operation: &Operation) -> String {
    let mut used = BTreeSet::new();
    let mut pending: Vec<&SelectionSet> = vec![&operation.selection_set];
    while let Some(set) = pending.pop() {
        for selection in &set.selections {
            match selection {
                Selection::Field(field) => pending.push(&field.selection_set),
                Selection::InlineFragment(inline) => pending.push(&inline.selection_set),
                Selection::FragmentSpread(spread) => {
                    if !used.insert(spread.fragment_name.as_str()) {
                        continue;
                    }
                    if let Some(fragment) = document.fragments.get(&spread.fragment_name) {
                        pending.push(&fragment.selection_set);
                    }
                }
            }
        }
    }
    let mut out = operation.serialize().no_indent().to_string();
    for name in used {
        if let Some(fragment) = document.fragments.get(name) {
            out.push('\n');
            out.push_str(&fragment.serialize().no_indent().to_string());
        }
    }
    out
}

#[cfg(test)]
#[path = "prepare_tests.rs"]
mod tests;
