use serde_json::json;

use super::super::test_schema::prepared;
use super::*;

/// Projects `value` for `query` and returns (data, errors as JSON).
fn project(query: &str, variables: Value, value: Value) -> (String, Vec<GraphQLError>) {
    let projected = prepared(query, variables).plan.project(&value);
    // Whatever the plan writes must be JSON.
    serde_json::from_str::<Value>(&projected.data).expect("data is JSON");
    (projected.data, projected.errors)
}

fn paths(errors: &[GraphQLError]) -> Vec<Value> {
    errors
        .iter()
        .map(|e| serde_json::to_value(&e.path).expect("path serializes"))
        .collect()
}

#[test]
fn writes_fields_in_selection_order_with_aliases() {
    let (data, errors) = project(
        "subscription { o: orderUpdated(id: 1) { total note id ident: id } }",
        json!({}),
        json!({"id": "1", "note": "x", "total": 2.5, "unselected": true}),
    );
    assert_eq!(
        data,
        r#"{"o":{"total":2.5,"note":"x","id":"1","ident":"1"}}"#
    );
    assert!(errors.is_empty());
}

#[test]
fn missing_keys_are_null() {
    let (data, errors) = project(
        "subscription { orderUpdated(id: 1) { note count } }",
        json!({}),
        json!({}),
    );
    assert_eq!(data, r#"{"orderUpdated":{"note":null,"count":null}}"#);
    assert!(errors.is_empty());
}

#[test]
fn escapes_strings() {
    let note = "q\"b\\s/\n\t\u{1}é😀";
    let (data, _) = project(
        r#"subscription { orderUpdated(id: 1) { note } }"#,
        json!({}),
        json!({"note": note}),
    );
    assert_eq!(data, r#"{"orderUpdated":{"note":"q\"b\\s/\n\t\u0001é😀"}}"#);
    let parsed: Value = serde_json::from_str(&data).expect("json");
    assert_eq!(parsed["orderUpdated"]["note"], note);
}

#[test]
fn escapes_aliases() {
    // Aliases are GraphQL names, so they never need escaping, but keys are escaped anyway.
    let (data, _) = project(
        "subscription { _x: orderUpdated(id: 1) { __typename } }",
        json!({}),
        json!({}),
    );
    assert_eq!(data, r#"{"_x":{"__typename":"Order"}}"#);
}

#[test]
fn interface_fragments_follow_typename() {
    let query = "subscription { node(id: 1) { __typename id ... on Order { status } ... on Customer { name } } }";
    let (data, errors) = project(
        query,
        json!({}),
        json!({"__typename": "Customer", "id": "c", "name": "Ann"}),
    );
    assert_eq!(
        data,
        r#"{"node":{"__typename":"Customer","id":"c","name":"Ann"}}"#
    );
    assert!(errors.is_empty());
    let (data, _) = project(
        query,
        json!({}),
        json!({"__typename": "Order", "id": 7, "status": "PAID"}),
    );
    assert_eq!(
        data,
        r#"{"node":{"__typename":"Order","id":"7","status":"PAID"}}"#
    );
}

#[test]
fn abstract_value_needs_a_possible_typename() {
    let query = "subscription { node(id: 1) { id } }";
    for value in [
        json!({"id": "1"}),
        json!({"__typename": "Line", "id": "1"}),
        json!({"__typename": 3}),
    ] {
        let (data, errors) = project(query, json!({}), value);
        assert_eq!(data, r#"{"node":null}"#);
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0].message.contains("Abstract type Node"),
            "{}",
            errors[0].message
        );
        assert_eq!(paths(&errors), [json!(["node"])]);
    }
}

#[test]
fn union_with_named_fragments() {
    let query = "fragment O on Order { id status } \
                 subscription { event { __typename ...O ... on Refund { amount } } }";
    let (data, errors) = project(
        query,
        json!({}),
        json!({"__typename": "Refund", "id": "r", "amount": 3}),
    );
    assert_eq!(data, r#"{"event":{"__typename":"Refund","amount":3}}"#);
    assert!(errors.is_empty());
    let (data, _) = project(
        query,
        json!({}),
        json!({"__typename": "Order", "id": "o", "status": "DRAFT"}),
    );
    assert_eq!(
        data,
        r#"{"event":{"__typename":"Order","id":"o","status":"DRAFT"}}"#
    );
}

#[test]
fn merges_fields_from_several_fragments() {
    let query = "fragment C on Order { customer { name } note } \
                 subscription { orderUpdated(id: 1) { customer { id } ...C ... on Order { note customer { id } } } }";
    let (data, errors) = project(
        query,
        json!({}),
        json!({"note": "n", "customer": {"id": "c", "name": "Ann"}}),
    );
    assert_eq!(
        data,
        r#"{"orderUpdated":{"customer":{"id":"c","name":"Ann"},"note":"n"}}"#
    );
    assert!(errors.is_empty());
}

#[test]
fn skip_and_include_use_variables() {
    let query = "subscription($a: Boolean!, $b: Boolean = false) { orderUpdated(id: 1) { \
                 id @skip(if: $a) note @include(if: $b) total @include(if: true) count @skip(if: false) \
                 ... on Order @skip(if: $a) { paid } } }";
    let value = json!({"id": "1", "note": "n", "total": 1.5, "count": 2, "paid": true});
    let (data, _) = project(query, json!({"a": true}), value.clone());
    assert_eq!(data, r#"{"orderUpdated":{"total":1.5,"count":2}}"#);
    let (data, _) = project(query, json!({"a": false, "b": true}), value);
    assert_eq!(
        data,
        r#"{"orderUpdated":{"id":"1","note":"n","total":1.5,"count":2,"paid":true}}"#
    );
}

#[test]
fn lists() {
    let query = "subscription { orderUpdated(id: 1) { tags lines { sku qty } } }";
    let (data, errors) = project(
        query,
        json!({}),
        json!({"tags": ["a", null], "lines": [{"sku": "s", "qty": 2}]}),
    );
    assert_eq!(
        data,
        r#"{"orderUpdated":{"tags":["a",null],"lines":[{"sku":"s","qty":2}]}}"#
    );
    assert!(errors.is_empty());

    let (data, errors) = project(query, json!({}), json!({"tags": "a", "lines": []}));
    assert_eq!(data, r#"{"orderUpdated":{"tags":null,"lines":[]}}"#);
    assert_eq!(paths(&errors), [json!(["orderUpdated", "tags"])]);
    assert!(errors[0].message.contains("Expected a list"));
}

#[test]
fn non_null_list_item_propagates_to_the_list() {
    let query = "subscription { orderUpdated(id: 1) { note lines { sku qty } } }";
    let (data, errors) = project(
        query,
        json!({}),
        json!({"note": "n", "lines": [{"sku": "a", "qty": 1}, {"sku": "b"}]}),
    );
    assert_eq!(data, r#"{"orderUpdated":{"note":"n","lines":null}}"#);
    assert_eq!(errors.len(), 1);
    assert_eq!(
        errors[0].message,
        "Cannot return null for non-nullable field Line.qty"
    );
    assert_eq!(paths(&errors), [json!(["orderUpdated", "lines", 1, "qty"])]);
}

#[test]
fn nested_non_null_propagates_to_nullable_root() {
    let query = "subscription { orderUpdated(id: 1) { id customer { name } } }";
    let (data, errors) = project(query, json!({}), json!({"id": "1", "customer": {}}));
    assert_eq!(data, r#"{"orderUpdated":null}"#);
    assert_eq!(
        errors[0].message,
        "Cannot return null for non-nullable field Customer.name"
    );
    assert_eq!(
        paths(&errors),
        [json!(["orderUpdated", "customer", "name"])]
    );
}

#[test]
fn non_null_root_makes_data_null() {
    let query = "subscription { orderStrict(id: 1) { id customer { name } } }";
    let (data, errors) = project(query, json!({}), json!({"id": "1", "customer": null}));
    assert_eq!(data, "null");
    assert_eq!(
        errors[0].message,
        "Cannot return null for non-nullable field Order.customer"
    );
    let (data, errors) = project("subscription { count(id: 1) }", json!({}), json!(null));
    assert_eq!(data, "null");
    assert_eq!(
        errors[0].message,
        "Cannot return null for non-nullable field Subscription.count"
    );
    assert_eq!(paths(&errors), [json!(["count"])]);
    let (data, errors) = project("subscription { count(id: 1) }", json!({}), json!(5));
    assert_eq!(data, r#"{"count":5}"#);
    assert!(errors.is_empty());
}

#[test]
fn non_object_where_object_expected() {
    let query = "subscription { orderUpdated(id: 1) { id } }";
    let (data, errors) = project(query, json!({}), json!([1]));
    assert_eq!(data, r#"{"orderUpdated":null}"#);
    assert!(errors[0].message.contains("Expected an object"));
}

#[test]
fn scalar_coercion() {
    let query = "subscription { orderUpdated(id: 1) { id status total count note paid meta } }";
    let (data, errors) = project(
        query,
        json!({}),
        json!({"id": 42, "status": "PAID", "total": 3, "count": 3.0, "note": "n", "paid": false,
               "meta": {"a": [1, "x", null]}}),
    );
    assert_eq!(
        data,
        r#"{"orderUpdated":{"id":"42","status":"PAID","total":3,"count":3,"note":"n","paid":false,"meta":{"a":[1,"x",null]}}}"#
    );
    assert!(errors.is_empty(), "{errors:?}");
}

#[test]
fn scalar_mismatches_are_field_errors() {
    let cases = [
        ("count", json!("3")),
        ("count", json!(3_000_000_000_i64)),
        ("count", json!(1.5)),
        ("total", json!("x")),
        ("note", json!(5)),
        ("paid", json!(1)),
        ("status", json!("NOPE")),
        ("status", json!(1)),
        ("id", json!(4.5)),
        ("id", json!(true)),
    ];
    for (field, value) in cases {
        let query = format!("subscription {{ orderUpdated(id: 1) {{ {field} tags }} }}");
        let (data, errors) = project(&query, json!({}), json!({field: value, "tags": ["t"]}));
        if field == "id" {
            // Order.id is non-null: the error propagates to the (nullable) root field.
            assert_eq!(data, r#"{"orderUpdated":null}"#, "{field} {value}");
        } else {
            assert_eq!(
                data,
                format!(r#"{{"orderUpdated":{{"{field}":null,"tags":["t"]}}}}"#)
            );
        }
        assert_eq!(errors.len(), 1, "{field} {value}");
        assert_eq!(
            paths(&errors),
            [json!(["orderUpdated", field])],
            "{field} {value}"
        );
    }
}

#[test]
fn field_error_of_resolver() {
    let prepared = prepared("subscription { o: orderUpdated(id: 1) { id } }", json!({}));
    let projected = prepared
        .plan
        .project_field_error(GraphQLError::new("resolver failed"));
    assert_eq!(projected.data, r#"{"o":null}"#);
    assert_eq!(projected.errors[0].path, [PathSegment::Key("o".into())]);
    assert_eq!(
        projected.errors[0].locations,
        [Location {
            line: 1,
            column: 16
        }]
    );

    let prepared = prepared_strict();
    let projected = prepared
        .plan
        .project_field_error(GraphQLError::new("resolver failed"));
    assert_eq!(projected.data, "null");
    assert_eq!(
        projected.errors[0].path,
        [PathSegment::Key("orderStrict".into())]
    );
}

fn prepared_strict() -> super::super::Prepared {
    prepared("subscription { orderStrict(id: 1) { id } }", json!({}))
}

#[test]
fn default_plan_projects_null() {
    let plan = SelectionPlan::default();
    assert_eq!(plan.project(&json!({"a": 1})).data, "null");
}

#[test]
fn projection_is_repeatable() {
    let prepared = prepared(
        "subscription { orderUpdated(id: 1) { id customer { name } } }",
        json!({}),
    );
    let good = json!({"id": "1", "customer": {"name": "Ann"}});
    let bad = json!({"id": "1", "customer": {}});
    let first = prepared.plan.project(&good);
    assert_eq!(prepared.plan.project(&bad).data, r#"{"orderUpdated":null}"#);
    assert_eq!(prepared.plan.project(&good), first);
}
