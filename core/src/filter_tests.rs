use super::*;
use serde_json::json;

fn obj(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

fn user(sub: &str, tenant: &str, roles: &[&str]) -> SecurityContext {
    SecurityContext::from_claims(obj(json!({
        "sub": sub,
        "tenant": tenant,
        "roles": roles,
        "scope": "orders:read orders:write",
        "region": "eu",
        "exp": 4_000_000_000u64,
    })))
}

fn eval(
    expr: &str,
    event: Value,
    args: Value,
    claims: &SecurityContext,
) -> Result<bool, FilterError> {
    let filter = Filter::compile(expr).expect("compiles");
    filter.evaluate(&FilterScope::new(&event), &obj(args), claims)
}

#[test]
fn reads_event_args_and_claims() {
    let alice = user("alice", "t1", &["customer"]);
    let event =
        json!({"owner": "alice", "n": 5, "price": 9.75, "tags": ["a", "b"], "nested": {"x": true}});
    let args = json!({"id": "42", "min": 3});
    let cases = [
        ("event.owner == claims.sub", true),
        ("event.owner == 'bob'", false),
        ("event.n == 5 && event.n > args.min", true),
        ("event.n == 5u", true),
        ("event.price > 9.5 && event.price < 10", true),
        ("'b' in event.tags", true),
        ("event.nested.x", true),
        ("args.id == '42'", true),
        ("claims.tenant == 't1' && 'customer' in claims.roles", true),
        ("'orders:read' in claims.scopes", true),
        ("claims.region == 'eu'", true),
        ("has(event.missing)", false),
        ("!has(event.missing) || event.missing == 1", true),
        ("event.tags.exists(t, t == 'a')", true),
        ("event.tags.all(t, t.size() == 1)", true),
        ("event.owner.startsWith('al')", true),
        ("event.owner.matches('^a.*e$')", true),
        ("size(event.tags) == 2", true),
        (
            "event.owner.contains('lic') && event.owner.endsWith('ce')",
            true,
        ),
        ("event.tags.filter(t, t != 'a').size() == 1", true),
        ("claims.region in ['eu', 'us']", true),
    ];
    for (expr, want) in cases {
        assert_eq!(
            eval(expr, event.clone(), args.clone(), &alice).map_err(|e| e.to_string()),
            Ok(want),
            "{expr}"
        );
    }
}

#[test]
fn evaluation_errors_are_errors_never_true() {
    let alice = user("alice", "t1", &[]);
    let event = json!({"n": 5, "s": "x"});
    for (expr, label) in [
        ("event.missing == 1", "evaluation"),
        ("event.n.x == 1", "evaluation"),
        ("event.s > 3", "evaluation"),
        ("event.n", "not_boolean"),
        ("event.s", "not_boolean"),
        ("args.nope == 'x'", "evaluation"),
        ("unknownFunction(event.n)", "evaluation"),
        ("event.n / 0 == 1", "evaluation"),
    ] {
        match eval(expr, event.clone(), json!({}), &alice) {
            Err(e) => assert_eq!(e.metric_label(), label, "{expr}: {e}"),
            Ok(b) => panic!("{expr}: expected an error, got {b}"),
        }
    }
}

#[test]
fn user_independent_context_hides_subject_and_custom_claims() {
    let alice = user("alice", "t1", &["customer"]).visible_to(true);
    let event = json!({"owner": "alice"});
    assert!(matches!(
        eval(
            "event.owner == claims.sub",
            event.clone(),
            json!({}),
            &alice
        ),
        Err(FilterError::Evaluation(_))
    ));
    assert!(eval("claims.region == 'eu'", event.clone(), json!({}), &alice).is_err());
    assert_eq!(
        eval("claims.tenant == 't1'", event.clone(), json!({}), &alice).ok(),
        Some(true)
    );
    // The raw `scope` claim is a custom claim; `scopes` is always there.
    assert_eq!(
        eval("size(claims.scopes) == 2", event, json!({}), &alice).ok(),
        Some(true)
    );
}

#[test]
fn anonymous_context_has_empty_lists_and_no_subject() {
    let anon = SecurityContext::anonymous();
    assert_eq!(
        eval(
            "size(claims.roles) == 0 && !has(claims.sub) && !has(claims.tenant)",
            json!({}),
            json!({}),
            &anon
        )
        .ok(),
        Some(true)
    );
}

#[test]
fn compile_errors_name_the_problem() {
    match Filter::compile("event.n ==") {
        Err(FilterError::Syntax(msg)) => assert!(msg.contains("column"), "{msg}"),
        other => panic!("expected a syntax error, got {other:?}"),
    }
    match Filter::compile("evnt.n == 1") {
        Err(FilterError::UnknownVariable(v)) => assert_eq!(v, "evnt"),
        other => panic!("expected an unknown variable, got {other:?}"),
    }
    // Comprehension variables are not unknown.
    Filter::compile("event.items.exists(i, i.qty > 1) && event.items.map(j, j.qty).size() > 0")
        .expect("macros bind their variables");
    Filter::compile("{'a': event.x}.a == 1 && [args.y][0] == 2").expect("literals");
    assert_eq!(Filter::compile("true").expect("ok").source(), "true");
}

#[test]
fn large_and_odd_numbers_convert() {
    let anon = SecurityContext::anonymous();
    let event = json!({"big": u64::MAX, "neg": -3, "f": 1e300});
    assert_eq!(
        eval(
            "event.big > 0u && event.neg < 0 && event.f > 1.0",
            event,
            json!({}),
            &anon
        )
        .ok(),
        Some(true)
    );
}

#[test]
fn one_scope_serves_many_shapes() {
    let filter = Filter::compile("event.owner == claims.sub").expect("compiles");
    let scope = FilterScope::new(&json!({"owner": "bob"}));
    let args = Map::new();
    assert_eq!(
        filter
            .evaluate(&scope, &args, &user("alice", "t", &[]))
            .ok(),
        Some(false)
    );
    assert_eq!(
        filter.evaluate(&scope, &args, &user("bob", "t", &[])).ok(),
        Some(true)
    );
}

#[test]
fn filter_is_shareable() {
    fn assert_shareable<T: Clone + Send + Sync + std::fmt::Debug + 'static>() {}
    assert_shareable::<Filter>();
}
