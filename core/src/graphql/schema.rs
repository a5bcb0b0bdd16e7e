//! Loading the SDL schema and reading Fanout's directives off `Subscription` fields.
//!
//! The SDL is parsed and validated by apollo-compiler. Fanout's directives are built in:
//! the definitions below are added unless the SDL declares a directive of the same name
//! itself. Every problem is reported, apollo's and ours, each with a file location.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;

use apollo_compiler::ast::{self, OperationType};
use apollo_compiler::parser::SourceSpan;
use apollo_compiler::schema::{ExtendedType, FieldDefinition};
use apollo_compiler::validation::{DiagnosticList, Valid};

use super::ChannelKey;
use crate::filter::Filter;

/// Definitions of the built-in directives, one a line, keyed by name.
const BUILT_IN_DIRECTIVES: [(&str, &str); 3] = [
    (
        "channel",
        "directive @channel(key: String!, userIndependent: Boolean = false) on FIELD_DEFINITION",
    ),
    (
        "auth",
        "directive @auth(roles: [String!], scopes: [String!]) on FIELD_DEFINITION",
    ),
    (
        "filter",
        "directive @filter(expr: String!) on FIELD_DEFINITION",
    ),
];

/// Query root type added when the SDL has neither `type Query` nor a `schema` definition.
const PLACEHOLDER_QUERY: &str =
    "\"Added by Fanout: the schema declares no query type.\" type Query { _fanout: Boolean }";

/// Source name of the added directive definitions, as apollo-compiler records it.
const BUILT_IN_SOURCE: &str = "<fanout built-in directives>";

/// `@auth(roles:, scopes:)`: a subscriber needs at least one of `roles` (when non-empty)
/// and every one of `scopes`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthRule {
    /// Roles of which the subscriber needs at least one; empty means any.
    pub roles: Vec<String>,
    /// Scopes the subscriber needs all of.
    pub scopes: Vec<String>,
}

/// One root field of the `Subscription` type with its Fanout directives.
#[derive(Debug, Clone)]
pub struct SubscriptionField {
    /// Field name, for example `orderUpdated`.
    pub name: String,
    /// `@channel(key:)`.
    pub channel: ChannelKey,
    /// `@auth`, when present.
    pub auth: Option<AuthRule>,
    /// `@filter(expr:)`, compiled, when present: evaluated per event and shape before
    /// the resolver runs (see [`crate::dispatch::EventGate`]).
    pub filter: Option<Filter>,
    /// `@channel(userIndependent: true)`: the payload does not depend on who subscribes,
    /// so the subject and custom claims are left out of the shape and of the resolver's
    /// context.
    pub user_independent: bool,
    /// 1-based line of the field definition in the SDL file.
    pub line: usize,
}

/// One problem found while loading a schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaDiagnostic {
    /// File the schema came from.
    pub file: String,
    /// 1-based line, 0 when unknown.
    pub line: usize,
    /// 1-based column, 0 when unknown.
    pub column: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for SchemaDiagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.column, self.message
        )
    }
}

/// Every problem found while loading a schema (never just the first).
#[derive(Debug, Clone, thiserror::Error)]
#[error("invalid schema ({} problem(s)): {}", .0.len(), .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct SchemaErrors(pub Vec<SchemaDiagnostic>);

/// A validated schema with its subscription fields.
#[derive(Clone)]
pub struct Schema {
    pub(crate) fields: BTreeMap<String, Arc<SubscriptionField>>,
    inner: Arc<Inner>,
}

/// What prepare and projection need of the validated schema.
struct Inner {
    /// The apollo-compiler schema, validated.
    valid: Valid<apollo_compiler::Schema>,
    /// Name of the subscription root type.
    subscription_type: String,
    /// Concrete object types of every interface and union, in schema order.
    possible_types: HashMap<String, Vec<String>>,
}

impl fmt::Debug for Schema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Schema")
            .field("subscription_type", &self.inner.subscription_type)
            .field("fields", &self.fields)
            .finish_non_exhaustive()
    }
}

impl Schema {
    /// Parses and validates `sdl` (read from `file`, used in diagnostics).
    pub fn parse(sdl: &str, file: &str) -> Result<Self, SchemaErrors> {
        let mut diagnostics = Diagnostics {
            file,
            list: Vec::new(),
        };

        let document = match ast::Document::parse(sdl, file) {
            Ok(document) => document,
            Err(with_errors) => {
                diagnostics.extend_apollo(&with_errors.errors);
                with_errors.partial
            }
        };
        let has_query_root = document.definitions.iter().any(|d| match d {
            ast::Definition::SchemaDefinition(_) => true,
            ast::Definition::ObjectTypeDefinition(def) => def.name == "Query",
            ast::Definition::ObjectTypeExtension(def) => def.name == "Query",
            _ => false,
        });
        let declared: Vec<&str> = document
            .definitions
            .iter()
            .filter_map(|d| match d {
                ast::Definition::DirectiveDefinition(def) => Some(def.name.as_str()),
                _ => None,
            })
            .collect();
        let missing: Vec<&str> = BUILT_IN_DIRECTIVES
            .iter()
            .filter(|(name, _)| !declared.contains(name))
            .map(|(_, definition)| *definition)
            .collect();

        let mut built_ins = missing.join("\n");
        if !has_query_root {
            // GraphQL requires a query root type; a subscriptions-only schema need not
            // declare one (queries are refused over the socket anyway).
            built_ins.push('\n');
            built_ins.push_str(PLACEHOLDER_QUERY);
        }
        let mut builder = apollo_compiler::Schema::builder().add_ast(&document);
        if !built_ins.trim().is_empty() {
            builder = builder.parse(built_ins, BUILT_IN_SOURCE);
        }
        let built = match builder.build() {
            Ok(schema) => schema,
            Err(with_errors) => {
                diagnostics.extend_apollo(&with_errors.errors);
                with_errors.partial
            }
        };
        let validated = built.validate().map_err(|with_errors| {
            diagnostics.extend_apollo(&with_errors.errors);
            with_errors.partial
        });
        let checked: &apollo_compiler::Schema = match &validated {
            Ok(valid) => valid,
            Err(partial) => partial,
        };

        let (subscription_type, fields) = read_subscription_fields(checked, &mut diagnostics);
        check_misplaced_directives(checked, &subscription_type, &mut diagnostics);

        match validated {
            Ok(valid) if diagnostics.list.is_empty() => {
                let possible_types = possible_types(&valid);
                Ok(Self {
                    fields,
                    inner: Arc::new(Inner {
                        valid,
                        subscription_type: subscription_type.unwrap_or_default(),
                        possible_types,
                    }),
                })
            }
            _ => {
                let mut list = diagnostics.list;
                list.sort_by_key(|d| (d.line, d.column));
                Err(SchemaErrors(list))
            }
        }
    }

    /// The subscription field called `name`.
    pub fn subscription_field(&self, name: &str) -> Option<&Arc<SubscriptionField>> {
        self.fields.get(name)
    }

    /// Every subscription field, by name.
    pub fn subscription_fields(&self) -> impl Iterator<Item = &Arc<SubscriptionField>> {
        self.fields.values()
    }

    /// Name of the subscription root type (usually `Subscription`).
    pub fn subscription_type(&self) -> &str {
        &self.inner.subscription_type
    }

    /// The validated apollo-compiler schema.
    pub(crate) fn apollo(&self) -> &Valid<apollo_compiler::Schema> {
        &self.inner.valid
    }

    /// Concrete object types an interface or union can resolve to.
    pub(crate) fn possible_types(&self, abstract_type: &str) -> &[String] {
        self.inner
            .possible_types
            .get(abstract_type)
            .map_or(&[], Vec::as_slice)
    }
}

/// Collects diagnostics with their locations.
struct Diagnostics<'a> {
    file: &'a str,
    list: Vec<SchemaDiagnostic>,
}

impl Diagnostics<'_> {
    fn extend_apollo(&mut self, errors: &DiagnosticList) {
        for diagnostic in errors.iter() {
            let json = diagnostic.to_json();
            let (line, column) = json
                .locations
                .first()
                .map_or((0, 0), |l| (l.line, l.column));
            self.list.push(SchemaDiagnostic {
                file: self.file.to_owned(),
                line,
                column,
                message: json.message,
            });
        }
    }

    fn push(&mut self, schema: &apollo_compiler::Schema, at: Option<SourceSpan>, message: String) {
        let (line, column) = at
            .and_then(|span| span.line_column(&schema.sources))
            .map_or((0, 0), |l| (l.line, l.column));
        self.list.push(SchemaDiagnostic {
            file: self.file.to_owned(),
            line,
            column,
            message,
        });
    }
}

/// Reads `@channel`, `@auth` and `@filter` off every root field of the subscription type.
fn read_subscription_fields(
    schema: &apollo_compiler::Schema,
    diagnostics: &mut Diagnostics<'_>,
) -> (Option<String>, BTreeMap<String, Arc<SubscriptionField>>) {
    let mut fields = BTreeMap::new();
    let Some(root) = schema.root_operation(OperationType::Subscription) else {
        diagnostics.push(
            schema,
            None,
            "the schema has no subscription root type (declare `type Subscription`)".into(),
        );
        return (None, fields);
    };
    let Some(object) = schema.get_object(root) else {
        // apollo-compiler reports a root type that is missing or not an object.
        return (Some(root.to_string()), fields);
    };
    for (name, field) in &object.fields {
        if let Some(read) = read_field(schema, root.as_str(), field, diagnostics) {
            fields.insert(name.to_string(), Arc::new(read));
        }
    }
    (Some(root.to_string()), fields)
}

fn read_field(
    schema: &apollo_compiler::Schema,
    root: &str,
    field: &FieldDefinition,
    diagnostics: &mut Diagnostics<'_>,
) -> Option<SubscriptionField> {
    let name = field.name.as_str();
    let at = field.name.location();
    let line = at
        .and_then(|span| span.line_column(&schema.sources))
        .map_or(0, |l| l.line);

    let mut channel = None;
    let mut user_independent = false;
    match field.directives.get("channel") {
        None => diagnostics.push(
            schema,
            at,
            format!("subscription field `{root}.{name}` needs `@channel(key: \"...\")`"),
        ),
        Some(directive) => {
            match directive
                .specified_argument_by_name("key")
                .and_then(|v| v.as_str())
            {
                None => diagnostics.push(
                    schema,
                    directive.location(),
                    format!("`@channel` on `{root}.{name}` needs a string `key`"),
                ),
                Some(key) => {
                    let arguments: Vec<&str> =
                        field.arguments.iter().map(|a| a.name.as_str()).collect();
                    match ChannelKey::parse(key, &arguments) {
                        Ok(parsed) => channel = Some(parsed),
                        Err(e) => diagnostics.push(
                            schema,
                            directive.location(),
                            format!("`@channel` on `{root}.{name}`: {e}"),
                        ),
                    }
                }
            }
            if let Ok(value) = directive.argument_by_name("userIndependent", schema) {
                match value.as_ref() {
                    ast::Value::Boolean(b) => user_independent = *b,
                    ast::Value::Null => {}
                    _ => diagnostics.push(
                        schema,
                        directive.location(),
                        format!(
                            "`@channel(userIndependent:)` on `{root}.{name}` must be a boolean"
                        ),
                    ),
                }
            }
        }
    }

    let auth = field.directives.get("auth").and_then(|directive| {
        let mut list = |argument: &str| -> Option<Vec<String>> {
            let Some(value) = directive.specified_argument_by_name(argument) else {
                return Some(Vec::new());
            };
            match string_list(value) {
                Some(list) => Some(list),
                None => {
                    diagnostics.push(
                        schema,
                        value.location().or(directive.location()),
                        format!(
                            "`@auth({argument}:)` on `{root}.{name}` must be a list of strings"
                        ),
                    );
                    None
                }
            }
        };
        let roles = list("roles");
        let scopes = list("scopes");
        Some(AuthRule {
            roles: roles?,
            scopes: scopes?,
        })
    });

    let filter = field.directives.get("filter").and_then(|directive| {
        let Some(expr) = directive
            .specified_argument_by_name("expr")
            .and_then(|v| v.as_str())
        else {
            diagnostics.push(
                schema,
                directive.location(),
                format!("`@filter` on `{root}.{name}` needs a string `expr`"),
            );
            return None;
        };
        match Filter::compile(expr) {
            Ok(filter) => Some(filter),
            Err(e) => {
                diagnostics.push(
                    schema,
                    directive.location(),
                    format!("`@filter` on `{root}.{name}`: {e}"),
                );
                None
            }
        }
    });

    Some(SubscriptionField {
        name: name.to_owned(),
        channel: channel?,
        auth,
        filter,
        user_independent,
        line,
    })
}

/// A `[String!]` directive argument; a single string counts as a list of one (GraphQL
/// input coercion).
fn string_list(value: &ast::Value) -> Option<Vec<String>> {
    match value {
        ast::Value::Null => Some(Vec::new()),
        ast::Value::String(s) => Some(vec![s.clone()]),
        ast::Value::List(items) => items
            .iter()
            .map(|item| item.as_str().map(str::to_owned))
            .collect(),
        _ => None,
    }
}

/// Fanout's directives only take effect on subscription root fields: anywhere else they
/// would be silently ignored, which for `@auth` means an unprotected field.
fn check_misplaced_directives(
    schema: &apollo_compiler::Schema,
    subscription_type: &Option<String>,
    diagnostics: &mut Diagnostics<'_>,
) {
    for (type_name, ty) in &schema.types {
        if subscription_type.as_deref() == Some(type_name.as_str()) {
            continue;
        }
        let fields = match ty {
            ExtendedType::Object(object) => &object.fields,
            ExtendedType::Interface(interface) => &interface.fields,
            _ => continue,
        };
        for (field_name, field) in fields {
            for (directive, _) in BUILT_IN_DIRECTIVES {
                if let Some(applied) = field.directives.get(directive) {
                    diagnostics.push(
                        schema,
                        applied.location(),
                        format!(
                            "`@{directive}` on `{type_name}.{field_name}` has no effect: it is \
                             only supported on fields of the subscription root type"
                        ),
                    );
                }
            }
        }
    }
}

/// Concrete object types of every interface and union.
fn possible_types(schema: &apollo_compiler::Schema) -> HashMap<String, Vec<String>> {
    let mut map: HashMap<String, Vec<String>> = HashMap::new();
    for (name, ty) in &schema.types {
        match ty {
            ExtendedType::Union(union) => {
                map.entry(name.to_string())
                    .or_default()
                    .extend(union.members.iter().map(|m| m.name.to_string()));
            }
            ExtendedType::Object(object) => {
                for interface in &object.implements_interfaces {
                    map.entry(interface.name.to_string())
                        .or_default()
                        .push(name.to_string());
                }
            }
            _ => {}
        }
    }
    map
}

#[cfg(test)]
#[path = "schema_tests.rs"]
mod tests;
