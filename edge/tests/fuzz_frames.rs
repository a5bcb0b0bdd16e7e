//! Fuzzing with proptest: random and mutated `graphql-transport-ws` frames go to the
//! client-message parser ([`ClientMessage::parse`]); whatever parses as `subscribe` goes
//! on to validation against a schema, and `ping` payloads are echoed through [`pong`].
//! Nothing may panic; an invalid frame is an [`InvalidMessage`] with a fixed reason
//! that never echoes client input.

use fanout_core::graphql::{Schema, prepare};
use fanout_edge::message::{ClientMessage, InvalidMessage, pong};
use proptest::prelude::*;
use proptest::test_runner::Config;
use serde_json::{Value, json};

const SDL: &str = r#"
type Tick { n: Int!, label: String }
type Subscription {
  tick(room: String!): Tick @channel(key: "tick.{room}") @filter(expr: "event.n > 0")
}
"#;

/// Well-formed frames that mutations start from.
const SEEDS: &[&str] = &[
    r#"{"type":"connection_init","payload":{"token":"abc"}}"#,
    r#"{"type":"connection_init"}"#,
    r#"{"type":"ping","payload":{"x":[1,2,{"y":null}]}}"#,
    r#"{"type":"pong"}"#,
    r#"{"id":"1","type":"subscribe","payload":{"query":"subscription { tick(room: \"r\") { n label } }"}}"#,
    r#"{"id":"2","type":"subscribe","payload":{"query":"subscription S($r: String!) { tick(room: $r) { n } }","variables":{"r":"x"},"operationName":"S","extensions":{}}}"#,
    r#"{"id":"1","type":"complete"}"#,
    r#"{"type":"next","id":"1","payload":{}}"#,
];

const PIECES: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ":",
    ",",
    "\"",
    "\\",
    "\\u0000",
    "\\ud800",
    "null",
    "true",
    "1e400",
    "-0",
    "\"type\"",
    "\"id\"",
    "\"payload\"",
    "\"subscribe\"",
    "\"ping\"",
    "\"query\"",
    "\"variables\"",
    "\"\"",
    " ",
    "\n",
    "\u{0}",
    "é",
    "\u{FEFF}",
];

fn config(cases: u32) -> Config {
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

fn boundary(s: &str, i: usize) -> usize {
    let mut at = i % (s.len() + 1);
    while !s.is_char_boundary(at) {
        at -= 1;
    }
    at
}

/// A seed with up to eight random insertions, deletions and replacements.
fn mutated_frame() -> impl Strategy<Value = String> {
    let edit = (
        0u8..3,
        any::<usize>(),
        proptest::sample::select(PIECES),
        0usize..10,
    );
    (
        proptest::sample::select(SEEDS),
        proptest::collection::vec(edit, 0..8),
    )
        .prop_map(|(seed, edits)| {
            let mut s = seed.to_owned();
            for (kind, i, piece, n) in edits {
                let at = boundary(&s, i);
                match kind {
                    0 => s.insert_str(at, piece),
                    1 => {
                        let to = boundary(&s, at.saturating_add(n).min(s.len()));
                        if to > at {
                            s.replace_range(at..to, "");
                        }
                    }
                    _ => {
                        let to = boundary(&s, at.saturating_add(n).min(s.len()));
                        s.replace_range(at..to.max(at), piece);
                    }
                }
            }
            s
        })
}

/// Structurally valid JSON objects with random members of the right and wrong types.
fn json_frame() -> impl Strategy<Value = String> {
    let member = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        proptest::sample::select(
            &[
                "subscribe",
                "ping",
                "pong",
                "complete",
                "connection_init",
                "next",
                "error",
                ""
            ][..]
        )
        .prop_map(|s| json!(s)),
        "\\PC{0,12}".prop_map(Value::String),
        Just(json!({"query": "subscription { tick(room: \"r\") { n } }"})),
        Just(json!({"query": 5})),
        Just(json!([])),
        Just(json!({})),
    ];
    proptest::collection::btree_map(
        proptest::sample::select(&["type", "id", "payload", "extra"][..]),
        member,
        0..4,
    )
    .prop_map(|m| {
        let object: serde_json::Map<String, Value> =
            m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        Value::Object(object).to_string()
    })
}

fn check(schema: &Schema, text: &str) -> Result<(), TestCaseError> {
    match ClientMessage::parse(text) {
        Ok(ClientMessage::Subscribe { id, payload }) => {
            prop_assert!(!id.is_empty(), "a subscribe id is never empty");
            let _ = prepare(schema, &payload);
        }
        Ok(ClientMessage::Ping { payload }) => {
            let echoed: Value = serde_json::from_str(&pong(payload.as_ref()))
                .map_err(|e| TestCaseError::fail(format!("pong is not JSON: {e}")))?;
            prop_assert_eq!(&echoed["type"], "pong");
        }
        Ok(_) => {}
        Err(InvalidMessage(reason)) => {
            prop_assert!(!reason.is_empty());
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(1024))]

    #[test]
    fn parser_never_panics_on_mutated_frames(text in mutated_frame()) {
        let schema = Schema::parse(SDL, "fuzz.graphql").expect("schema");
        check(&schema, &text)?;
    }

    #[test]
    fn parser_never_panics_on_json_frames(text in json_frame()) {
        let schema = Schema::parse(SDL, "fuzz.graphql").expect("schema");
        check(&schema, &text)?;
    }

    #[test]
    fn parser_never_panics_on_arbitrary_text(text in "\\PC{0,256}") {
        let schema = Schema::parse(SDL, "fuzz.graphql").expect("schema");
        check(&schema, &text)?;
    }
}
