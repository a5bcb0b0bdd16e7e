//! Resolvers running in real CPython: values, skips, errors, async, context.

mod common;

use std::time::Duration;

use common::{call, event, resolve, resolve_one, runtime, user};
use fanout_resolver_worker::{Error, PythonConfig, PythonRuntime, ResolveOutcome};
use serde_json::json;

const SECOND: Duration = Duration::from_secs(1);

const ORDERS: &str = r#"
import fanout

@fanout.resolver("orderUpdated")
def order_updated(event: dict, args: dict, ctx: fanout.Context) -> dict | None:
    return None if event["status"] == "draft" else {**event, "total": event["cents"] / 100}

@fanout.resolver("failing")
def failing(event, args, ctx):
    if event.get("fail"):
        raise ValueError("bad order " + str(event["id"]))
    return {"ok": True}
"#;

#[tokio::test]
async fn filtering_resolver_skips_on_none() {
    let (_dir, rt) = runtime("filter", ORDERS, SECOND);
    let outcome = resolve_one(
        &rt,
        json!({"status": "draft", "cents": 100}),
        "orderUpdated",
    )
    .await;
    assert_eq!(outcome, ResolveOutcome::Skip);
}

#[tokio::test]
async fn enriching_resolver_returns_value() {
    let (_dir, rt) = runtime("enrich", ORDERS, SECOND);
    assert_eq!(
        rt.resolver_fields(),
        vec!["failing".to_owned(), "orderUpdated".to_owned()]
    );
    let outcome = resolve_one(
        &rt,
        json!({"id": 42, "status": "paid", "cents": 1250}),
        "orderUpdated",
    )
    .await;
    assert_eq!(
        outcome,
        ResolveOutcome::Value(json!({"id": 42, "status": "paid", "cents": 1250, "total": 12.5}))
    );
}

#[tokio::test]
async fn raising_resolver_reports_error_and_runtime_keeps_working() {
    let (_dir, rt) = runtime("raise", ORDERS, SECOND);
    let outcome = resolve_one(&rt, json!({"id": 7, "fail": true}), "failing").await;
    assert_eq!(
        outcome,
        ResolveOutcome::Error("resolver raised ValueError: bad order 7".into())
    );
    let outcome = resolve_one(&rt, json!({"id": 8}), "failing").await;
    assert_eq!(outcome, ResolveOutcome::Value(json!({"ok": true})));
}

#[tokio::test]
async fn batch_keeps_order_and_reports_missing_resolvers() {
    let (_dir, rt) = runtime("batch", ORDERS, SECOND);
    let outcomes = resolve(
        &rt,
        event(json!({"id": 1, "status": "paid", "cents": 5, "fail": true})),
        vec![
            call("orderUpdated", json!({})),
            call("noSuchField", json!({})),
            call("failing", json!({})),
            call("orderUpdated", json!({})),
        ],
    )
    .await;
    assert_eq!(outcomes.len(), 4);
    assert!(matches!(&outcomes[0], ResolveOutcome::Value(v) if v["total"] == json!(0.05)));
    assert_eq!(outcomes[1], ResolveOutcome::NoResolver);
    assert!(
        matches!(&outcomes[2], ResolveOutcome::Error(m) if m.starts_with("resolver raised ValueError"))
    );
    assert_eq!(outcomes[0], outcomes[3]);
    // Only fields without resolvers: answered without the Python thread.
    let outcomes = resolve(&rt, event(json!({})), vec![call("other", json!({}))]).await;
    assert_eq!(outcomes, vec![ResolveOutcome::NoResolver]);
    assert!(resolve(&rt, event(json!({})), vec![]).await.is_empty());
}

#[tokio::test]
async fn resolver_sees_args_and_context() {
    let source = r#"
import fanout

@fanout.resolver("ctx")
def ctx_view(event, args, ctx):
    assert isinstance(ctx, fanout.Context)
    had_mutated_key = "mutated" in event
    event["mutated"] = True   # must not leak into the next call of the batch
    return {
        "args": args, "claims": ctx.claims, "tenant": ctx.tenant, "subject": ctx.subject,
        "roles": ctx.roles, "scopes": ctx.scopes, "channel": ctx.channel, "offset": ctx.offset,
        "epoch": ctx.epoch, "headers": ctx.headers, "event_tenant": ctx.event_tenant,
        "had_mutated_key": had_mutated_key,
    }
"#;
    let (_dir, rt) = runtime("ctx", source, SECOND);
    let mut first = call("ctx", json!({"id": "42"}));
    first.security = user("acme", &["support", "customer"]);
    let second = call("ctx", json!({}));
    let outcomes = resolve(&rt, event(json!({"x": 1})), vec![first, second]).await;
    let ResolveOutcome::Value(v) = &outcomes[0] else {
        panic!("{outcomes:?}")
    };
    assert_eq!(v["args"], json!({"id": "42"}));
    assert_eq!(
        v["claims"],
        json!({"sub": "u1", "tenant": "acme", "roles": ["support", "customer"], "scope": "orders:read", "plan": "gold"})
    );
    assert_eq!(v["tenant"], json!("acme"));
    assert_eq!(v["subject"], json!("u1"));
    assert_eq!(v["roles"], json!(["customer", "support"]));
    assert_eq!(v["scopes"], json!(["orders:read"]));
    assert_eq!(v["channel"], json!("orders.42"));
    assert_eq!(
        (v["offset"].clone(), v["epoch"].clone()),
        (json!(7), json!(3))
    );
    assert_eq!(v["headers"], json!({"trace": "abc"}));
    assert_eq!(v["event_tenant"], json!("acme"));
    let ResolveOutcome::Value(v2) = &outcomes[1] else {
        panic!("{outcomes:?}")
    };
    assert_eq!(v2["tenant"], json!(null));
    assert_eq!(v2["roles"], json!([]));
    // The second call got a fresh copy of the event, without the first call's key.
    assert_eq!(
        v2["had_mutated_key"],
        json!(false),
        "each call mutates its own copy"
    );
}

#[tokio::test]
async fn non_json_return_is_a_clear_error() {
    let source = r#"
import datetime, fanout

@fanout.resolver("when")
def when(event, args, ctx):
    return {"at": [datetime.datetime(2024, 1, 1)]}

@fanout.resolver("big")
def big(event, args, ctx):
    return {"n": 2**80, "small": 2**40, "t": (1, "a")}
"#;
    let (_dir, rt) = runtime("badreturn", source, SECOND);
    let outcome = resolve_one(&rt, json!({}), "when").await;
    let ResolveOutcome::Error(message) = outcome else {
        panic!("{outcome:?}")
    };
    assert!(
        message.starts_with(
            "resolver returned a value that is not JSON: $.at[0]: object of type 'datetime'"
        ),
        "{message}"
    );
    let outcome = resolve_one(&rt, json!({}), "big").await;
    assert_eq!(
        outcome,
        ResolveOutcome::Value(
            json!({"n": "1208925819614629174706176", "small": 1099511627776_u64, "t": [1, "a"]})
        )
    );
}

const ASYNC: &str = r#"
import asyncio, fanout

@fanout.resolver("slowPrice")
async def slow_price(event, args, ctx):
    await asyncio.sleep(0.01)
    return {"price": event["cents"] * 2}

@fanout.resolver("tooSlow")
async def too_slow(event, args, ctx):
    await asyncio.sleep(5)
    return {"never": True}

@fanout.resolver("ownTimeout")
async def own_timeout(event, args, ctx):
    raise TimeoutError("upstream timed out")
"#;

#[tokio::test]
async fn async_resolver_runs_on_the_event_loop() {
    let (_dir, rt) = runtime("async", ASYNC, SECOND);
    let outcome = resolve_one(&rt, json!({"cents": 21}), "slowPrice").await;
    assert_eq!(outcome, ResolveOutcome::Value(json!({"price": 42})));
    // A TimeoutError raised by the resolver itself is an error, not a timeout.
    let outcome = resolve_one(&rt, json!({}), "ownTimeout").await;
    assert_eq!(
        outcome,
        ResolveOutcome::Error("resolver raised TimeoutError: upstream timed out".into())
    );
}

#[tokio::test]
async fn async_resolver_past_timeout_times_out() {
    let (_dir, rt) = runtime("async-timeout", ASYNC, Duration::from_millis(200));
    let started = std::time::Instant::now();
    let outcome = resolve_one(&rt, json!({}), "tooSlow").await;
    let elapsed = started.elapsed();
    assert_eq!(outcome, ResolveOutcome::Timeout);
    assert!(elapsed < Duration::from_secs(2), "took {elapsed:?}");
    let outcome = resolve_one(&rt, json!({"cents": 1}), "slowPrice").await;
    assert_eq!(outcome, ResolveOutcome::Value(json!({"price": 2})));
}

#[test]
fn sibling_modules_can_be_imported() {
    let scratch = common::Scratch::new("sibling");
    scratch.write(
        "pricing_helpers_xyz.py",
        "def double(x):\n    return 2 * x\n",
    );
    let path = scratch.write(
        "resolvers.py",
        "import fanout\nfrom pricing_helpers_xyz import double\n\n@fanout.resolver('p')\ndef p(e, a, c):\n    return {'v': double(e['v'])}\n",
    );
    let rt = PythonRuntime::start(PythonConfig::new(path)).expect("starts");
    let outcome = tokio::runtime::Runtime::new()
        .expect("tokio")
        .block_on(resolve_one(&rt, json!({"v": 4}), "p"));
    assert_eq!(outcome, ResolveOutcome::Value(json!({"v": 8})));
}

fn import_error(name: &str, source: &str) -> (common::Scratch, Error) {
    let scratch = common::Scratch::new(name);
    let path = scratch.write("resolvers.py", source);
    let err = PythonRuntime::start(PythonConfig::new(path)).expect_err("import fails");
    (scratch, err)
}

#[test]
fn syntax_error_reports_file_and_line() {
    let (_s, err) = import_error("syntax", "import fanout\n\n\ndef broken(:\n    pass\n");
    let Error::Import {
        file,
        line,
        message,
    } = &err
    else {
        panic!("{err:?}")
    };
    assert!(file.ends_with("resolvers.py"), "{file}");
    assert_eq!(*line, 4, "{err}");
    assert!(message.starts_with("SyntaxError"), "{message}");
}

#[test]
fn exception_at_import_reports_line() {
    let (_s, err) = import_error(
        "import-exc",
        "import fanout\n\nx = 1\nraise RuntimeError('config missing')\n",
    );
    let Error::Import {
        file,
        line,
        message,
    } = &err
    else {
        panic!("{err:?}")
    };
    assert!(file.ends_with("resolvers.py"), "{file}");
    assert_eq!(*line, 4);
    assert_eq!(message, "RuntimeError: config missing");

    let (_s, err) = import_error(
        "import-missing",
        "import fanout\nimport no_such_module_fanout_test\n",
    );
    let Error::Import { line, message, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(*line, 2);
    assert!(
        message.starts_with("ModuleNotFoundError: No module named 'no_such_module_fanout_test'"),
        "{message}"
    );
}

#[test]
fn duplicate_resolver_is_an_import_error() {
    let source = "import fanout\n\n@fanout.resolver('a')\ndef one(e, a, c):\n    return e\n\n@fanout.resolver('a')\ndef two(e, a, c):\n    return e\n";
    let (_s, err) = import_error("dup", source);
    let Error::Import { line, message, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(*line, 7, "{err}");
    assert!(
        message.contains("already registered at") && message.contains(":3"),
        "{message}"
    );
}

#[test]
fn missing_file_is_reported() {
    let err = PythonRuntime::start(PythonConfig::new("/nonexistent/fanout/resolvers.py"))
        .expect_err("missing");
    assert!(matches!(err, Error::ResolversFile { .. }), "{err}");
}

#[test]
fn runtimes_are_independent() {
    let (_a, first) = runtime(
        "indep-a",
        "import fanout\n@fanout.resolver('x')\ndef x(e, a, c):\n    return {'from': 'a'}\n",
        SECOND,
    );
    let (_b, second) = runtime(
        "indep-b",
        "import fanout\n@fanout.resolver('y')\ndef y(e, a, c):\n    return {'from': 'b'}\n",
        SECOND,
    );
    assert_eq!(first.resolver_fields(), vec!["x".to_owned()]);
    assert_eq!(second.resolver_fields(), vec!["y".to_owned()]);
}
