//! Fuzzing with proptest: random and mutated subscription documents go to
//! `graphql::prepare`, random and mutated SDL to `Schema::parse`, random and mutated CEL
//! to `Filter::compile`, and random JSON events through compiled filters. Nothing may
//! panic; every input is either accepted or refused with errors.
//!
//! Each property runs a bounded number of cases so the file stays within seconds in
//! debug builds; `PROPTEST_CASES` raises it for a longer local run.

use fanout_core::filter::{Filter, FilterScope};
use fanout_core::graphql::{Schema, SubscribeRequest, prepare};
use fanout_core::security::SecurityContext;
use proptest::prelude::*;
use proptest::test_runner::Config;
use serde_json::{Map, Value, json};

const SDL: &str = r#"
interface Node { id: ID! }
type Item { sku: String!, qty: Int! }
type Order implements Node { id: ID!, status: String, total: Float, items: [Item!]!, owner: User }
type User implements Node { id: ID!, name: String }
union Thing = Order | User
type Query { ok: Boolean }
type Subscription {
  order(id: ID!, verbose: Boolean = false): Order
    @channel(key: "orders.{id}")
    @auth(roles: ["customer"])
    @filter(expr: "event.status != 'draft' && (args.verbose || event.total > 1.0)")
  thing(room: String!): Thing @channel(key: "things.{room}", userIndependent: true)
  node(id: ID!): Node @channel(key: "nodes.{id}")
}
"#;

/// Valid documents that mutations start from.
const SEEDS: &[&str] = &[
    r#"subscription { order(id: "42") { id status total items { sku qty } } }"#,
    r#"subscription S($id: ID!, $v: Boolean) { o: order(id: $id, verbose: $v) { ...F owner { name } } } fragment F on Order { id __typename }"#,
    r#"subscription { thing(room: "r") { __typename ... on Order { id } ... on User { name } } }"#,
    r#"subscription { node(id: "1") { id ... on Order { status @include(if: true) total @skip(if: false) } } }"#,
    r#"query { ok }"#,
];

/// Pieces of GraphQL that random documents are built from and mutations insert.
const TOKENS: &[&str] = &[
    "subscription",
    "query",
    "mutation",
    "fragment",
    "on",
    "{",
    "}",
    "(",
    ")",
    "[",
    "]",
    ":",
    "$",
    "$id",
    "!",
    "=",
    "@",
    "...",
    "|",
    "&",
    ",",
    "\"",
    "\"\"\"",
    "#",
    "\n",
    " ",
    "order",
    "thing",
    "node",
    "id",
    "status",
    "items",
    "sku",
    "qty",
    "owner",
    "name",
    "__typename",
    "__schema",
    "Order",
    "User",
    "Node",
    "Thing",
    "ID",
    "String",
    "Int",
    "@skip(if: true)",
    "@include(if: $v)",
    "@channel",
    "@filter(expr: \"x\")",
    "true",
    "null",
    "1",
    "-1",
    "1e999",
    "0x",
    "\"42\"",
    "\\u0000",
    "\u{0}",
    "é",
    "\u{10FFFF}",
    "type",
    "interface",
    "union",
    "schema",
    "directive",
    "extend",
    "implements",
    "input",
    "enum",
    "scalar",
    "repeatable",
    "FIELD_DEFINITION",
];

fn config(cases: u32) -> Config {
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

/// One edit of a document.
#[derive(Debug, Clone)]
enum Edit {
    Insert(usize, &'static str),
    Delete(usize, usize),
    Duplicate(usize, usize),
    Replace(usize, char),
    Truncate(usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), proptest::sample::select(TOKENS)).prop_map(|(i, t)| Edit::Insert(i, t)),
        (any::<usize>(), 0usize..12).prop_map(|(i, n)| Edit::Delete(i, n)),
        (any::<usize>(), 0usize..40).prop_map(|(i, n)| Edit::Duplicate(i, n)),
        (any::<usize>(), any::<char>()).prop_map(|(i, c)| Edit::Replace(i, c)),
        any::<usize>().prop_map(Edit::Truncate),
    ]
}

/// The char boundary at or before `i % (len + 1)`.
fn boundary(s: &str, i: usize) -> usize {
    let mut at = i % (s.len() + 1);
    while !s.is_char_boundary(at) {
        at -= 1;
    }
    at
}

fn apply(text: &str, edits: &[Edit]) -> String {
    let mut s = text.to_owned();
    for e in edits {
        match e {
            Edit::Insert(i, t) => {
                let at = boundary(&s, *i);
                s.insert_str(at, t);
            }
            Edit::Delete(i, n) => {
                let from = boundary(&s, *i);
                let to = boundary(&s, from.saturating_add(*n).min(s.len()));
                if to > from {
                    s.replace_range(from..to, "");
                }
            }
            Edit::Duplicate(i, n) => {
                let from = boundary(&s, *i);
                let to = boundary(&s, from.saturating_add(*n).min(s.len()));
                if to > from {
                    let piece = s[from..to].to_owned();
                    s.insert_str(to, &piece);
                }
            }
            Edit::Replace(i, c) => {
                let at = boundary(&s, *i);
                if let Some(old) = s[at..].chars().next() {
                    s.replace_range(at..at + old.len_utf8(), &c.to_string());
                }
            }
            Edit::Truncate(i) => {
                let at = boundary(&s, *i);
                s.truncate(at);
            }
        }
    }
    s
}

fn mutated(seeds: &'static [&'static str]) -> impl Strategy<Value = String> {
    (
        proptest::sample::select(seeds),
        proptest::collection::vec(edit(), 0..8),
    )
        .prop_map(|(seed, edits)| apply(seed, &edits))
}

fn token_soup() -> impl Strategy<Value = String> {
    proptest::collection::vec(proptest::sample::select(TOKENS), 0..40).prop_map(|t| t.join(" "))
}

/// Arbitrary JSON up to a small depth.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        "[a-z0-9 ]{0,8}".prop_map(Value::String),
        proptest::sample::select(&["draft", "paid", "42", "r"][..]).prop_map(|s| json!(s)),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map(
                proptest::sample::select(
                    &[
                        "id", "status", "total", "items", "owner", "n", "sku", "x", "tenant"
                    ][..]
                ),
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())),
        ]
    })
}

fn schema() -> Schema {
    Schema::parse(SDL, "fuzz.graphql").expect("the fuzz schema is valid")
}

fn variables() -> impl Strategy<Value = Option<Map<String, Value>>> {
    proptest::option::of(
        proptest::collection::btree_map(
            proptest::sample::select(&["id", "v", "room", "x"][..]),
            json_value(),
            0..4,
        )
        .prop_map(|m| m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()),
    )
}

proptest! {
    #![proptest_config(config(384))]

    #[test]
    fn prepare_never_panics_on_mutated_documents(
        query in mutated(SEEDS),
        variables in variables(),
        operation_name in proptest::option::of(proptest::sample::select(&["S", "", "Nope"][..])),
    ) {
        let schema = schema();
        let request = SubscribeRequest {
            query,
            operation_name: operation_name.map(str::to_owned),
            variables,
            extensions: None,
        };
        let _ = prepare(&schema, &request);
    }

    #[test]
    fn prepare_never_panics_on_token_soup(query in token_soup()) {
        let schema = schema();
        let request = SubscribeRequest { query, ..Default::default() };
        let _ = prepare(&schema, &request);
    }

    #[test]
    fn prepare_never_panics_on_arbitrary_text(query in "\\PC{0,200}") {
        let schema = schema();
        let request = SubscribeRequest { query, ..Default::default() };
        let _ = prepare(&schema, &request);
    }
}

proptest! {
    #![proptest_config(config(160))]

    #[test]
    fn schema_parse_never_panics_on_mutated_sdl(sdl in mutated(&[SDL])) {
        if let Err(errors) = Schema::parse(&sdl, "fuzz.graphql") {
            prop_assert!(!errors.0.is_empty(), "a refused schema has at least one diagnostic");
        }
    }

    #[test]
    fn schema_parse_never_panics_on_token_soup(sdl in token_soup()) {
        let _ = Schema::parse(&sdl, "fuzz.graphql");
    }
}

const FILTERS: &[&str] = &[
    "event.status != 'draft' && event.total > 1.0",
    "event.items.exists(i, i.qty > 1) || size(event.items) == 0",
    "'paid' in event.tags || event.owner.id == claims.sub",
    "event.n / event.x == 1 || event.n % 2 == 0",
    "has(event.x) ? event.x.matches('^[a-z]+$') : event.n >= 0u",
    "event.items.map(i, i.sku).filter(s, s.startsWith('A')).size() > 0",
    "int(event.total) == event.n && string(event.n) == args.id",
    "event[args.id] == claims.tenant",
];

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn filters_never_panic_on_random_events(
        expr in proptest::sample::select(FILTERS),
        event in json_value(),
        id in "[a-z0-9]{0,4}",
    ) {
        let filter = Filter::compile(expr).expect("the fuzz filters compile");
        let mut args = Map::new();
        args.insert("id".into(), Value::String(id));
        let claims = SecurityContext {
            subject: Some("u1".into()),
            tenant: Some("t1".into()),
            roles: vec!["customer".into()],
            ..SecurityContext::default()
        };
        let scope = FilterScope::new(&event);
        if let Err(e) = filter.evaluate(&scope, &args, &claims) {
            prop_assert_ne!(e.metric_label(), "panicked", "{} on {}: {}", expr, event, e);
        }
    }

    #[test]
    fn filter_compile_never_panics_on_mutated_expressions(expr in mutated(FILTERS)) {
        if let Err(e) = Filter::compile(&expr) {
            prop_assert!(!e.to_string().contains("parser failed"), "{expr:?}: {e}");
        }
    }
}
