//! Loading the SDL schema and reading Fanout's directives off `Subscription` fields.
//!
//! TODO(helper): implement with apollo-compiler; keep the public API below.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::ChannelKey;

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
    /// `@filter(expr:)` source, when present (evaluated by the security layer).
    pub filter: Option<String>,
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

impl std::fmt::Display for SchemaDiagnostic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}:{}: {}", self.file, self.line, self.column, self.message)
    }
}

/// Every problem found while loading a schema (never just the first).
#[derive(Debug, Clone, thiserror::Error)]
#[error("invalid schema ({} problem(s)): {}", .0.len(), .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct SchemaErrors(pub Vec<SchemaDiagnostic>);

/// A validated schema with its subscription fields.
#[derive(Debug, Clone)]
pub struct Schema {
    pub(crate) fields: BTreeMap<String, Arc<SubscriptionField>>,
}

impl Schema {
    /// Parses and validates `sdl` (read from `file`, used in diagnostics).
    pub fn parse(sdl: &str, file: &str) -> Result<Self, SchemaErrors> {
        let _ = (sdl, file);
        Err(SchemaErrors(vec![]))
    }

    /// The subscription field called `name`.
    pub fn subscription_field(&self, name: &str) -> Option<&Arc<SubscriptionField>> {
        self.fields.get(name)
    }

    /// Every subscription field, by name.
    pub fn subscription_fields(&self) -> impl Iterator<Item = &Arc<SubscriptionField>> {
        self.fields.values()
    }
}
