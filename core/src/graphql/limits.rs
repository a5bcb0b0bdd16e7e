//! Complexity limits of a subscription document: field nesting depth and field count.
//!
//! Checked on the parsed document *before* validation, so a hostile document costs at
//! most a bounded walk. Fragment spreads are followed (a fragment used twice counts
//! twice), so a "fragment bomb" is measured by what it expands to; the walk stops as soon
//! as a limit is exceeded, and a spread that is already being expanded (a cycle, which
//! validation would reject anyway) is not followed again.

use std::collections::HashMap;

use apollo_compiler::ast::{self, Definition, Selection};

use super::GraphQLError;

/// `extensions.code` of a document over a complexity limit.
pub const QUERY_TOO_COMPLEX: &str = "QUERY_TOO_COMPLEX";

/// Name of the depth limit in errors (`extensions.limit`), as in the config key.
pub const DEPTH_LIMIT: &str = "max_query_depth";
/// Name of the field-count limit in errors (`extensions.limit`), as in the config key.
pub const FIELDS_LIMIT: &str = "max_query_fields";

/// Complexity limits applied to every operation of a subscribe request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryLimits {
    /// Deepest field nesting; the root field is depth 1. Default 15.
    pub max_depth: usize,
    /// Most field selections after fragment expansion. Default 200.
    pub max_fields: usize,
}

impl Default for QueryLimits {
    fn default() -> Self {
        Self {
            max_depth: 15,
            max_fields: 200,
        }
    }
}

/// Which limit a document exceeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Exceeded {
    Depth,
    Fields,
}

/// Checks every operation of `document` against `limits`.
pub fn check(document: &ast::Document, limits: &QueryLimits) -> Result<(), GraphQLError> {
    let fragments: HashMap<&str, &ast::FragmentDefinition> = document
        .definitions
        .iter()
        .filter_map(|d| match d {
            Definition::FragmentDefinition(f) => Some((f.name.as_str(), &**f)),
            _ => None,
        })
        .collect();
    for definition in &document.definitions {
        let Definition::OperationDefinition(operation) = definition else {
            continue;
        };
        let mut walk = Walk {
            fragments: &fragments,
            limits,
            fields: 0,
            expanding: Vec::new(),
        };
        if let Err(exceeded) = walk.selections(&operation.selection_set, 1) {
            return Err(error(exceeded, limits));
        }
    }
    Ok(())
}

fn error(exceeded: Exceeded, limits: &QueryLimits) -> GraphQLError {
    let (what, name, max) = match exceeded {
        Exceeded::Depth => ("nests fields deeper than", DEPTH_LIMIT, limits.max_depth),
        Exceeded::Fields => ("selects more fields than", FIELDS_LIMIT, limits.max_fields),
    };
    let mut error = GraphQLError::new(format!(
        "query too complex: the operation {what} the limit {name} = {max}"
    ))
    .with_code(QUERY_TOO_COMPLEX);
    let extensions = error.extensions.get_or_insert_with(Default::default);
    extensions.insert("limit".into(), name.into());
    extensions.insert("max".into(), max.into());
    error
}

struct Walk<'d> {
    fragments: &'d HashMap<&'d str, &'d ast::FragmentDefinition>,
    limits: &'d QueryLimits,
    fields: usize,
    /// Fragments being expanded on the current path (cycle guard).
    expanding: Vec<&'d str>,
}

impl<'d> Walk<'d> {
    /// Walks `selections` whose fields are at `depth`.
    fn selections(&mut self, selections: &'d [Selection], depth: usize) -> Result<(), Exceeded> {
        for selection in selections {
            match selection {
                Selection::Field(field) => {
                    if depth > self.limits.max_depth {
                        return Err(Exceeded::Depth);
                    }
                    self.fields += 1;
                    if self.fields > self.limits.max_fields {
                        return Err(Exceeded::Fields);
                    }
                    self.selections(&field.selection_set, depth + 1)?;
                }
                Selection::InlineFragment(inline) => {
                    self.selections(&inline.selection_set, depth)?;
                }
                Selection::FragmentSpread(spread) => {
                    let name = spread.fragment_name.as_str();
                    if self.expanding.contains(&name) {
                        continue;
                    }
                    let Some(fragment) = self.fragments.get(name) else {
                        continue;
                    };
                    self.expanding.push(name);
                    let walked = self.selections(&fragment.selection_set, depth);
                    self.expanding.pop();
                    walked?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(query: &str, max_depth: usize, max_fields: usize) -> Result<(), GraphQLError> {
        let document = ast::Document::parse(query, "q.graphql").expect("parses");
        check(
            &document,
            &QueryLimits {
                max_depth,
                max_fields,
            },
        )
    }

    fn limit_of(e: &GraphQLError) -> String {
        let ext = e.extensions.as_ref().expect("extensions");
        assert_eq!(ext["code"], QUERY_TOO_COMPLEX);
        ext["limit"].as_str().unwrap_or_default().to_owned()
    }

    #[test]
    fn depth_counts_nested_fields_through_fragments() {
        let q = "subscription { a { b { c } } }";
        assert!(run(q, 3, 100).is_ok());
        assert_eq!(
            limit_of(&run(q, 2, 100).expect_err("too deep")),
            DEPTH_LIMIT
        );

        let q = "subscription { a { ...F } } fragment F on T { b { ... on T { c { d } } } }";
        assert!(run(q, 4, 100).is_ok());
        let e = run(q, 3, 100).expect_err("too deep");
        assert_eq!(
            e.message,
            "query too complex: the operation nests fields deeper than the limit max_query_depth = 3"
        );
    }

    #[test]
    fn fields_are_counted_after_fragment_expansion() {
        let q = "subscription { a { ...B ...B } } \
                 fragment B on T { ...C ...C } fragment C on T { ...D ...D } \
                 fragment D on T { x y z }";
        // 1 + 2 * 2 * 2 * 3 = 25 fields once expanded.
        assert!(run(q, 10, 25).is_ok());
        assert_eq!(
            limit_of(&run(q, 10, 24).expect_err("too many")),
            FIELDS_LIMIT
        );
    }

    #[test]
    fn an_exponential_fragment_bomb_stops_at_the_limit() {
        let mut q = String::from("subscription { a { ...F0 } }\n");
        for i in 0..40 {
            q.push_str(&format!(
                "fragment F{i} on T {{ ...F{} ...F{} }}\n",
                i + 1,
                i + 1
            ));
        }
        q.push_str("fragment F40 on T { x }\n");
        let e = run(&q, 100, 200).expect_err("2^40 fields");
        assert_eq!(limit_of(&e), FIELDS_LIMIT);
    }

    #[test]
    fn fragment_cycles_and_unknown_fragments_do_not_loop() {
        let q = "subscription { a { ...A } } fragment A on T { x ...B } fragment B on T { ...A ...Nope }";
        assert!(run(q, 10, 10).is_ok());
    }
}
