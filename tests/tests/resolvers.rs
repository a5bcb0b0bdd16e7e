//! Python resolvers: filter, enrich, raise, async, context, timeout, and the bundled
//! example.

use std::time::{Duration, Instant};

use fanout_tests::fixtures::example;
use fanout_tests::metrics::wait_eq;
use fanout_tests::{Fanout, GqlClient, Publisher, Result, Value, ensure, json, token};

async fn subscribed(fanout: &Fanout, query: &str, vars: Option<Value>) -> Result<GqlClient> {
    let mut c = GqlClient::connect_init(&fanout.ws_url).await?;
    c.subscribe("s", query, vars).await?;
    wait_eq(&fanout.admin_url, "fanout_edge_subscriptions", &[], 1.0).await?;
    Ok(c)
}

#[tokio::test]
async fn filter_skips_events() -> Result<()> {
    let fanout = Fanout::suite(&[]).await?;
    let mut c = subscribed(
        &fanout,
        r#"subscription { filtered(id: "1") { status cents } }"#,
        None,
    )
    .await?;
    let mut p = Publisher::connect(&fanout.grpc_url).await?;
    for (status, cents) in [("draft", 1), ("placed", 2), ("draft", 3), ("paid", 4)] {
        p.publish(
            "filtered.1",
            &json!({ "id": "1", "status": status, "cents": cents, "items": [] }),
        )
        .await?;
    }
    let a = c.next_payload("s").await?;
    ensure!(
        a["data"] == json!({ "filtered": { "status": "placed", "cents": 2 } }),
        "first kept event: {a}"
    );
    ensure!(
        a["extensions"]["fanout"]["offset"] == 2,
        "offsets count skipped events too: {a}"
    );
    let b = c.next_payload("s").await?;
    ensure!(
        b["data"] == json!({ "filtered": { "status": "paid", "cents": 4 } }),
        "second kept event: {b}"
    );
    ensure!(
        b["extensions"]["fanout"]["offset"] == 4,
        "offset of the fourth event: {b}"
    );
    c.expect_silence(Duration::from_millis(300)).await?;
    Ok(())
}

#[tokio::test]
async fn enrich_adds_fields_from_args_and_ctx() -> Result<()> {
    let fanout = Fanout::suite(&[]).await?;
    let mut c = subscribed(
        &fanout,
        r#"subscription { enriched(id: "5") { id total note } }"#,
        None,
    )
    .await?;
    let mut p = Publisher::connect(&fanout.grpc_url).await?;
    p.publish(
        "enriched.5",
        &json!({ "id": "5", "status": "paid", "cents": 1999, "items": [] }),
    )
    .await?;
    let got = c.next_payload("s").await?;
    ensure!(
        got["data"]
            == json!({ "enriched": { "id": "5", "total": 19.99, "note": "order 5 on enriched.5" } }),
        "enriched payload: {got}"
    );
    Ok(())
}

#[tokio::test]
async fn raising_resolver_sends_errors_and_the_subscription_lives_on() -> Result<()> {
    let fanout = Fanout::suite(&[]).await?;
    let mut c = subscribed(&fanout, r#"subscription { flaky(id: "1") { n } }"#, None).await?;
    let mut p = Publisher::connect(&fanout.grpc_url).await?;
    p.publish("flaky.1", &json!({ "n": 1 })).await?;
    p.publish("flaky.1", &json!({ "n": 2, "boom": true }))
        .await?;
    p.publish("flaky.1", &json!({ "n": 3 })).await?;
    let one = c.next_payload("s").await?;
    ensure!(
        one["data"] == json!({ "flaky": { "n": 1 } }),
        "event 1: {one}"
    );
    let two = c.next_payload("s").await?;
    ensure!(
        two["data"] == json!({ "flaky": null }),
        "a raising resolver gives data {{flaky: null}}: {two}"
    );
    let errors = two["errors"].as_array().cloned().unwrap_or_default();
    ensure!(!errors.is_empty(), "a raising resolver gives errors: {two}");
    ensure!(
        errors
            .iter()
            .all(|e| e["message"].as_str().is_some_and(|m| !m.is_empty())),
        "every error has a message: {two}"
    );
    let three = c.next_payload("s").await?;
    ensure!(
        three["data"] == json!({ "flaky": { "n": 3 } }),
        "event 3 after the error: {three}"
    );
    Ok(())
}

#[tokio::test]
async fn async_resolver() -> Result<()> {
    let fanout = Fanout::suite(&[]).await?;
    let mut c = subscribed(
        &fanout,
        r#"subscription { asyncTick(id: "1") { n label } }"#,
        None,
    )
    .await?;
    let mut p = Publisher::connect(&fanout.grpc_url).await?;
    for n in 1..=20 {
        p.publish("async.1", &json!({ "n": n })).await?;
    }
    for n in 1..=20 {
        let got = c.next_payload("s").await?;
        ensure!(
            got["data"] == json!({ "asyncTick": { "n": n, "label": format!("async {n}") } }),
            "event {n} from the async resolver, in order: {got}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn slow_resolver_is_not_waited_on_forever() -> Result<()> {
    let fanout = Fanout::suite(&["--resolver-timeout-ms", "300"]).await?;
    let mut c = subscribed(&fanout, r#"subscription { slow(id: "1") { n } }"#, None).await?;
    let mut p = Publisher::connect(&fanout.grpc_url).await?;
    let started = Instant::now();
    p.publish("slow.1", &json!({ "n": 1, "sleep": 30 })).await?;
    p.publish("slow.1", &json!({ "n": 2 })).await?;
    // The timed-out event may be reported as an error; it must not hold back event 2.
    loop {
        let got = c.next_payload("s").await?;
        if got["data"] == json!({ "slow": { "n": 2 } }) {
            break;
        }
        ensure!(
            got["data"]["slow"].is_null() && got["errors"].is_array(),
            "only an error may stand in for the timed-out event, got {got}"
        );
    }
    ensure!(
        started.elapsed() < Duration::from_secs(8),
        "event 2 took {:?} behind a resolver that sleeps 30 s with a 300 ms timeout",
        started.elapsed()
    );
    Ok(())
}

#[tokio::test]
async fn context_carries_claims_channel_offset_and_headers() -> Result<()> {
    let fanout = Fanout::suite(&["--jwt-secret", token::SECRET]).await?;
    let t = token::user(
        "alice",
        "acme",
        &["support", "customer"],
        &["b:read", "a:write"],
    )?;
    let mut c = GqlClient::connect_with_token(&fanout.ws_url, &t).await?;
    c.subscribe("s", r#"subscription { whoami(room: "ctx") { tenant subject roles scopes channel offset epoch header n } }"#, None)
        .await?;
    wait_eq(&fanout.admin_url, "fanout_edge_subscriptions", &[], 1.0).await?;
    let mut p = Publisher::connect(&fanout.grpc_url).await?;
    p.publish("who.ctx", &json!({ "n": 1 })).await?;
    let reply = p
        .publish_with("who.ctx", &json!({ "n": 2 }), "", &[("x-note", "hello")])
        .await?;
    let first = c.next_payload("s").await?;
    ensure!(
        first["data"]["whoami"]["header"].is_null(),
        "no header on event 1: {first}"
    );
    let got = c.next_payload("s").await?;
    let want = json!({ "whoami": {
        "tenant": "acme",
        "subject": "alice",
        "roles": ["customer", "support"],
        "scopes": ["a:write", "b:read"],
        "channel": "who.ctx",
        "offset": 2,
        "epoch": reply.epoch.to_string(),
        "header": "hello",
        "n": 2,
    }});
    ensure!(
        got["data"] == want,
        "ctx seen by the resolver: {} != {want}",
        got["data"]
    );
    Ok(())
}

#[tokio::test]
async fn scopes_claim_as_an_array() -> Result<()> {
    let fanout = Fanout::suite(&["--jwt-secret", token::SECRET]).await?;
    let t = token::mint(
        token::SECRET,
        &json!({ "sub": "bob", "scopes": ["x:y", "tick:read"] }),
    )?;
    let mut c = GqlClient::connect_with_token(&fanout.ws_url, &t).await?;
    c.subscribe(
        "s",
        r#"subscription { whoami(room: "arr") { scopes } }"#,
        None,
    )
    .await?;
    wait_eq(&fanout.admin_url, "fanout_edge_subscriptions", &[], 1.0).await?;
    let mut p = Publisher::connect(&fanout.grpc_url).await?;
    p.publish("who.arr", &json!({ "n": 1 })).await?;
    let got = c.next_payload("s").await?;
    ensure!(
        got["data"]["whoami"]["scopes"] == json!(["tick:read", "x:y"]),
        "scopes: {got}"
    );
    Ok(())
}

/// The example's two fields: `orderUpdated` through the Python resolver, `chatMessage`
/// passed through.
async fn check_orders_example(fanout: &Fanout) -> Result<()> {
    let mut c = GqlClient::connect_init(&fanout.ws_url).await?;
    c.subscribe(
        "o",
        "subscription ($id: ID!) { orderUpdated(id: $id) { id status total items { sku qty } } }",
        Some(json!({ "id": "42" })),
    )
    .await?;
    c.subscribe(
        "c",
        r#"subscription { chatMessage(room: "lobby") { room from text } }"#,
        None,
    )
    .await?;
    wait_eq(&fanout.admin_url, "fanout_edge_subscriptions", &[], 2.0).await?;
    let mut p = Publisher::connect(&fanout.grpc_url).await?;
    p.publish(
        "orders.42",
        &json!({ "id": "42", "status": "draft", "cents": 1999, "items": [] }),
    )
    .await?;
    p.publish(
        "orders.42",
        &json!({ "id": "42", "status": "paid", "cents": 1999, "items": [{ "sku": "tea", "qty": 2 }] }),
    )
    .await?;
    let got = c.next_payload("o").await?;
    ensure!(
        got["data"]
            == json!({ "orderUpdated": { "id": "42", "status": "paid", "total": 19.99, "items": [{ "sku": "tea", "qty": 2 }] } }),
        "draft skipped, total added: {got}"
    );
    ensure!(
        got["extensions"]["fanout"]["offset"] == 2,
        "the paid event is offset 2: {got}"
    );
    p.publish(
        "chat.lobby",
        &json!({ "room": "lobby", "from": "ann", "text": "hi" }),
    )
    .await?;
    let got = c.next_payload("c").await?;
    ensure!(
        got["data"] == json!({ "chatMessage": { "room": "lobby", "from": "ann", "text": "hi" } }),
        "chat passes through: {got}"
    );
    Ok(())
}

#[tokio::test]
async fn bundled_example_is_served_without_arguments() -> Result<()> {
    let fanout = Fanout::start(Vec::<String>::new()).await?;
    check_orders_example(&fanout).await
}

#[tokio::test]
async fn example_files_on_disk_work() -> Result<()> {
    let fanout = Fanout::start([
        "--schema".to_string(),
        example("orders/schema.graphql").display().to_string(),
        "--resolvers".to_string(),
        example("orders/resolvers.py").display().to_string(),
    ])
    .await?;
    check_orders_example(&fanout).await
}
