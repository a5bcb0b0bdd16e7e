use serde_json::json;

use super::super::test_schema::{prepared, request, schema};
use super::*;

fn fail(query: &str, variables: Value) -> Vec<GraphQLError> {
    errors_of(request(query, variables))
}

fn errors_of(request: SubscribeRequest) -> Vec<GraphQLError> {
    match prepare(&schema(), &request) {
        Ok(p) => panic!("expected errors, prepared {p:?}"),
        Err(errors) => errors,
    }
}

fn code(error: &GraphQLError) -> Option<&str> {
    error.extensions.as_ref()?.get("code")?.as_str()
}

#[test]
fn prepares_a_valid_subscription() {
    let p = prepared(
        "subscription OnOrder($id: ID!) { order: orderUpdated(id: $id) { id status } }",
        json!({"id": "42"}),
    );
    assert_eq!(p.field.name, "orderUpdated");
    assert_eq!(p.response_key, "order");
    assert_eq!(p.channel, "orders.42");
    assert_eq!(Value::Object(p.args.clone()), json!({"id": "42"}));
    assert_eq!(Value::Object(p.variables.clone()), json!({"id": "42"}));
    assert_eq!(
        p.canonical,
        "subscription OnOrder($id: ID!) { order: orderUpdated(id: $id) { id status } }"
    );
}

#[test]
fn canonical_ignores_whitespace_comments_and_unused_definitions() {
    let a = prepared(
        "subscription S { orderUpdated(id: 1) { ...F ...E } } fragment F on Order { id } fragment E on Order { note }",
        json!({}),
    );
    let b = prepared(
        "# a comment\nfragment E on Order {\n  note\n}\n\nsubscription S {\n  orderUpdated(id: 1) {\n    ...F\n    ...E # why not\n  }\n}\nfragment F on Order { id }",
        json!({}),
    );
    assert_eq!(a.canonical, b.canonical);
    assert!(
        a.canonical.contains("fragment E on Order"),
        "{}",
        a.canonical
    );
    let mut request = request(
        "subscription S { orderUpdated(id: 1) { ...F ...E } } subscription T { orderUpdated(id: 1) { id } } \
         fragment F on Order { id } fragment E on Order { note }",
        json!({}),
    );
    request.operation_name = Some("T".into());
    let t = prepare(&schema(), &request).expect("valid");
    assert!(!t.canonical.contains("fragment"), "{}", t.canonical);
}

#[test]
fn parse_error_has_location_and_code() {
    let errors = fail("subscription {\n  orderUpdated(id: 1) { id \n", json!({}));
    assert!(!errors.is_empty());
    for error in &errors {
        assert_eq!(code(error), Some(PARSE_FAILED));
        assert!(!error.locations.is_empty(), "{error:?}");
    }
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].locations[0].line, 2);
}

#[test]
fn validation_errors_have_locations_and_code() {
    let errors = fail(
        "subscription {\n  orderUpdated(id: 1) {\n    id\n    nope\n    alsoNope\n  }\n}",
        json!({}),
    );
    assert_eq!(errors.len(), 2, "{errors:?}");
    for error in &errors {
        assert_eq!(code(error), Some(VALIDATION_FAILED));
    }
    assert_eq!(errors[0].locations, [Location { line: 4, column: 5 }]);
    assert_eq!(errors[1].locations[0].line, 5);
}

#[test]
fn two_root_fields_are_refused() {
    let errors = fail(
        "subscription { orderUpdated(id: 1) { id } node(id: 2) { id } }",
        json!({}),
    );
    assert!(!errors.is_empty());
    assert_eq!(code(&errors[0]), Some(VALIDATION_FAILED));
}

#[test]
fn skipping_the_root_field_is_refused() {
    let errors = fail(
        "subscription { orderUpdated(id: 1) @skip(if: true) { id } }",
        json!({}),
    );
    assert!(!errors.is_empty());
    assert_eq!(code(&errors[0]), Some(VALIDATION_FAILED));
}

#[test]
fn queries_and_mutations_are_refused() {
    let errors = fail("query Q { ok }", json!({}));
    assert_eq!(errors.len(), 1);
    assert_eq!(
        errors[0].message,
        "only subscription operations are supported over this socket; got a query"
    );
    assert_eq!(code(&errors[0]), Some(OPERATION_NOT_SUPPORTED));
    assert_eq!(errors[0].locations, [Location { line: 1, column: 1 }]);
    let errors = fail("{ ok }", json!({}));
    assert_eq!(code(&errors[0]), Some(OPERATION_NOT_SUPPORTED));
}

#[test]
fn operation_names() {
    let document =
        "subscription A { orderUpdated(id: 1) { id } } subscription B { node(id: 2) { id } }";
    let errors = fail(document, json!({}));
    assert!(
        errors[0].message.contains("several operations"),
        "{errors:?}"
    );
    assert_eq!(code(&errors[0]), Some(BAD_USER_INPUT));

    let mut req = request(document, json!({}));
    req.operation_name = Some("C".into());
    let errors = errors_of(req.clone());
    assert_eq!(errors[0].message, "the document has no operation named `C`");
    assert_eq!(code(&errors[0]), Some(BAD_USER_INPUT));

    req.operation_name = Some("B".into());
    let p = prepare(&schema(), &req).expect("valid");
    assert_eq!(p.channel, "nodes.2");
}

#[test]
fn bad_variables() {
    let query = "subscription($id: ID!) { orderUpdated(id: $id) { id } }";
    for variables in [
        json!({}),
        json!({"id": {"x": 1}}),
        json!({"id": null}),
        json!({"id": true}),
    ] {
        let errors = fail(query, variables.clone());
        assert_eq!(errors.len(), 1, "{variables}");
        assert_eq!(code(&errors[0]), Some(BAD_USER_INPUT), "{variables}");
    }
}

#[test]
fn channel_from_variable() {
    let p = prepared(
        "subscription($id: ID!) { orderUpdated(id: $id) { id } }",
        json!({"id": 42}),
    );
    assert_eq!(p.channel, "orders.42");
    assert_eq!(p.args["id"], json!("42"));
}

#[test]
fn channel_from_defaults() {
    let p = prepared("subscription { event { __typename } }", json!({}));
    assert_eq!(p.channel, "events.acme");
    assert_eq!(Value::Object(p.args), json!({"tenant": "acme"}));

    let p = prepared(
        "subscription($t: String! = \"beta\") { event(tenant: $t, kind: PAID, range: {to: 3}) { __typename } }",
        json!({}),
    );
    assert_eq!(p.channel, "events.beta");
    assert_eq!(
        Value::Object(p.args),
        json!({"tenant": "beta", "kind": "PAID", "range": {"from": 0, "to": 3}})
    );
}

#[test]
fn channel_rejects_bad_argument_values() {
    for id in ["a.b", "*", ">", "a b"] {
        let errors = fail(
            "subscription($id: ID!) {\n  orderUpdated(id: $id) { id } }",
            json!({ "id": id }),
        );
        assert_eq!(errors.len(), 1);
        assert_eq!(code(&errors[0]), Some(BAD_USER_INPUT));
        assert!(
            errors[0].message.contains("argument `id`"),
            "{}",
            errors[0].message
        );
        assert_eq!(errors[0].locations, [Location { line: 2, column: 3 }]);
    }
}

#[test]
fn fragments_at_the_root() {
    let p = prepared(
        "subscription { ...Root } fragment Root on Subscription { o: orderUpdated(id: 5) { id } }",
        json!({}),
    );
    assert_eq!(p.response_key, "o");
    assert_eq!(p.channel, "orders.5");
    assert_eq!(
        p.plan.project(&json!({"id": 5})).data,
        r#"{"o":{"id":"5"}}"#
    );
}
