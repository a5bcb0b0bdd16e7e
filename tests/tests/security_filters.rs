//! Row filters (`@filter` in CEL) and tenant isolation (`--multi-tenant`), against the
//! real binary with real WebSocket subscribers and a gRPC publisher.
//!
//! Events on one channel are delivered in publish order, so "not delivered" is shown by
//! a later event that every subscriber does receive arriving next.

use std::time::Duration;

use fanout_tests::cli::{run, show};
use fanout_tests::fixtures::fixture;
use fanout_tests::metrics::{value, wait_eq};
use fanout_tests::{Fanout, GqlClient, Publisher, Result, Value, ensure, json, token};

const FILTER_ERRORS: &str = "fanout_filter_errors_total";
const CALLS: &str = "fanout_resolver_calls_total";
const DROPPED: &str = "fanout_events_dropped_total";

fn args(extra: &[&str]) -> Vec<String> {
    let mut args = vec![
        "--schema".to_owned(),
        fixture("filters_schema.graphql").display().to_string(),
        "--resolvers".to_owned(),
        fixture("filters_resolvers.py").display().to_string(),
    ];
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    args
}

/// Reads the next `next` of `id` and returns its `data.<field>`.
async fn row(c: &mut GqlClient, id: &str, field: &str) -> Result<Value> {
    let payload = c.next_payload(id).await?;
    ensure!(
        payload.get("errors").is_none(),
        "{id}: unexpected errors in {payload}"
    );
    Ok(payload["data"][field].clone())
}

/// The `n` of each of the next `count` rows of `id`.
async fn ns(c: &mut GqlClient, id: &str, field: &str, count: usize) -> Result<Vec<i64>> {
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let r = row(c, id, field).await?;
        out.push(r["n"].as_i64().unwrap_or(-1));
    }
    Ok(out)
}

#[tokio::test]
async fn filters_true_false_and_erroring() -> Result<()> {
    let fanout = Fanout::start(args(&[])).await?;
    let mut c = GqlClient::connect_init(&fanout.ws_url).await?;
    c.subscribe("all", r#"subscription { allRows(room: "a") { n } }"#, None)
        .await?;
    let mut big = GqlClient::connect_init(&fanout.ws_url).await?;
    big.subscribe("big", r#"subscription { bigRows(room: "a") { n } }"#, None)
        .await?;
    let mut deep = GqlClient::connect_init(&fanout.ws_url).await?;
    deep.subscribe(
        "deep",
        r#"subscription { deepRows(room: "a") { n } }"#,
        None,
    )
    .await?;
    wait_eq(&fanout.admin_url, "fanout_edge_subscriptions", &[], 3.0).await?;

    let mut p = Publisher::connect(&fanout.grpc_url).await?;
    let events = [
        json!({ "n": 1 }),                          // big: false; deep: error (no meta)
        json!({ "n": 20, "meta": { "level": 5 } }), // big: true; deep: true
        json!({ "n": 30, "meta": { "level": 0 } }), // big: true; deep: false
        json!({ "n": 2, "meta": "flat" }),          // big: false; deep: error (not a map)
        json!({ "n": 40, "meta": { "level": 2 } }), // both true: the sentinel
    ];
    for e in &events {
        p.publish("rows.a", e).await?;
    }
    ensure!(
        ns(&mut c, "all", "allRows", 5).await? == vec![1, 20, 30, 2, 40],
        "a field without filter gets every event"
    );
    let got = ns(&mut big, "big", "bigRows", 3).await?;
    ensure!(
        got == vec![20, 30, 40],
        "event.n > 10 delivers only: {got:?}"
    );
    let got = ns(&mut deep, "deep", "deepRows", 2).await?;
    ensure!(
        got == vec![20, 40],
        "a filter that errors or is false never delivers: {got:?}"
    );
    wait_eq(
        &fanout.admin_url,
        FILTER_ERRORS,
        &[("field", "deepRows")],
        2.0,
    )
    .await?;
    let other = value(&fanout.admin_url, FILTER_ERRORS, &[("field", "bigRows")]).await?;
    ensure!(other == 0.0, "bigRows never errored, counted {other}");
    for (client, id) in [(&mut c, "all"), (&mut big, "big"), (&mut deep, "deep")] {
        client
            .expect_silence(Duration::from_millis(200))
            .await
            .map_err(|e| e.context(format!("{id} after the sentinel")))?;
    }
    Ok(())
}

#[tokio::test]
async fn filters_read_the_field_arguments() -> Result<()> {
    let fanout = Fanout::start(args(&[])).await?;
    let mut c = GqlClient::connect_init(&fanout.ws_url).await?;
    let q = "subscription M($min: Int!) { minRows(room: \"b\", min: $min) { n } }";
    c.subscribe("low", q, Some(json!({ "min": 3 }))).await?;
    c.subscribe("high", q, Some(json!({ "min": 10 }))).await?;
    wait_eq(&fanout.admin_url, "fanout_edge_shapes", &[], 2.0).await?;
    let mut p = Publisher::connect(&fanout.grpc_url).await?;
    for n in [1, 5, 12, 3, 10] {
        p.publish("rows.b", &json!({ "n": n })).await?;
    }
    let (mut low, mut high) = (Vec::new(), Vec::new());
    for _ in 0..6 {
        let msg = c.recv().await?;
        ensure!(msg["type"] == "next", "expected next, got {msg}");
        let n = msg["payload"]["data"]["minRows"]["n"]
            .as_i64()
            .unwrap_or(-1);
        match msg["id"].as_str() {
            Some("low") => low.push(n),
            Some("high") => high.push(n),
            _ => fanout_tests::bail!("unexpected {msg}"),
        }
    }
    ensure!(low == vec![5, 12, 3, 10], "min 3 received {low:?}");
    ensure!(high == vec![12, 10], "min 10 received {high:?}");
    c.expect_silence(Duration::from_millis(200)).await?;
    Ok(())
}

#[tokio::test]
async fn filters_over_claims_show_each_user_only_their_rows() -> Result<()> {
    let fanout = Fanout::start(args(&["--jwt-secret", token::SECRET])).await?;
    let mut users = Vec::new();
    for sub in ["alice", "bob"] {
        let t = token::user(sub, "t1", &["customer"], &[])?;
        let mut c = GqlClient::connect_with_token(&fanout.ws_url, &t).await?;
        c.subscribe(
            "inline",
            r#"subscription { myRows(room: "c") { owner n } }"#,
            None,
        )
        .await?;
        c.subscribe(
            "py",
            r#"subscription { myResolved(room: "c") { owner n label } }"#,
            None,
        )
        .await?;
        users.push((sub, c));
    }
    // Two users × two fields: four shapes (the subject is part of each).
    wait_eq(&fanout.admin_url, "fanout_edge_shapes", &[], 4.0).await?;

    let mut p = Publisher::connect(&fanout.grpc_url).await?;
    let rows = [
        ("alice", 1),
        ("bob", 2),
        ("alice", 3),
        ("carol", 4),
        ("bob", 5),
    ];
    for (owner, n) in rows {
        let e = json!({ "owner": owner, "n": n });
        p.publish("rows.c", &e).await?;
        p.publish("resolved.c", &e).await?;
    }
    for (sub, c) in &mut users {
        let mine: Vec<i64> = rows
            .iter()
            .filter(|(owner, _)| owner == sub)
            .map(|(_, n)| *n)
            .collect();
        let (mut inline, mut py) = (Vec::new(), Vec::new());
        for _ in 0..2 * mine.len() {
            let msg = c.recv().await?;
            ensure!(msg["type"] == "next", "{sub}: expected next, got {msg}");
            let id = msg["id"].as_str().unwrap_or_default().to_owned();
            let field = if id == "inline" {
                "myRows"
            } else {
                "myResolved"
            };
            let r = &msg["payload"]["data"][field];
            ensure!(
                r["owner"] == *sub,
                "{sub} received someone else's row: {msg}"
            );
            if id == "py" {
                ensure!(
                    r["label"] == format!("resolved for {sub}"),
                    "{sub}: resolver output {msg}"
                );
                py.push(r["n"].as_i64().unwrap_or(-1));
            } else {
                inline.push(r["n"].as_i64().unwrap_or(-1));
            }
        }
        ensure!(
            inline == mine,
            "{sub}: inline rows {inline:?}, want {mine:?}"
        );
        ensure!(py == mine, "{sub}: resolved rows {py:?}, want {mine:?}");
        c.expect_silence(Duration::from_millis(200)).await?;
    }
    // The filter runs before Python: one call per event for its owner's shape, none
    // for carol's row nor for the other user's shape.
    wait_eq(&fanout.admin_url, CALLS, &[("field", "myResolved")], 4.0).await?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let calls = value(&fanout.admin_url, CALLS, &[("field", "myResolved")]).await?;
    ensure!(calls == 4.0, "resolver calls {calls}, expected 4");
    let errors = value(&fanout.admin_url, FILTER_ERRORS, &[]).await?;
    ensure!(errors == 0.0, "no filter errors, counted {errors}");
    Ok(())
}

#[tokio::test]
async fn a_filter_that_does_not_compile_is_a_load_error_naming_the_field() -> Result<()> {
    let schema = fixture("filters_bad.graphql").display().to_string();
    let out = run(["check", "--schema", &schema], Duration::from_secs(60)).await?;
    ensure!(
        out.status.code() == Some(1),
        "check exits 1:\n{}",
        show(&out)
    );
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    for needle in [
        "filters_bad.graphql:8: `@filter` on `Subscription.typo`: unknown variable `evnt`",
        "filters_bad.graphql:9: `@filter` on `Subscription.broken`: invalid CEL expression",
    ] {
        ensure!(text.contains(needle), "missing {needle:?}:\n{}", show(&out));
    }
    ensure!(!text.contains("Subscription.good"), "{}", show(&out));

    let out = run(
        [
            "standalone",
            "--schema",
            &schema,
            "--listen",
            "127.0.0.1:0",
            "--grpc-listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ],
        Duration::from_secs(60),
    )
    .await?;
    ensure!(!out.status.success(), "standalone refuses:\n{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    ensure!(
        err.contains("filters_bad.graphql:8:") && err.contains("Subscription.typo"),
        "standalone names the file, line and field:\n{}",
        show(&out)
    );
    Ok(())
}

#[tokio::test]
async fn multi_tenant_delivers_only_within_the_events_tenant() -> Result<()> {
    let fanout = Fanout::start(args(&["--jwt-secret", token::SECRET, "--multi-tenant"])).await?;
    // Two subjects of t1 (one shape: the field is user independent), one of t2, and
    // one without a tenant claim.
    let people: [(&str, Value); 4] = [
        ("a1", token::claims("a1", "t1", &["customer"], &[])),
        ("a2", token::claims("a2", "t1", &["customer"], &[])),
        ("b1", token::claims("b1", "t2", &["customer"], &[])),
        ("nobody", json!({ "sub": "nobody", "roles": ["customer"] })),
    ];
    let mut clients = Vec::new();
    for (name, claims) in &people {
        let t = token::mint(token::SECRET, claims)?;
        let mut c = GqlClient::connect_with_token(&fanout.ws_url, &t).await?;
        c.subscribe(
            "py",
            r#"subscription { tenantSeen(room: "m") { tenant n } }"#,
            None,
        )
        .await?;
        c.subscribe(
            "inline",
            r#"subscription { allRows(room: "m") { n } }"#,
            None,
        )
        .await?;
        clients.push((*name, c));
    }
    wait_eq(&fanout.admin_url, "fanout_edge_subscriptions", &[], 8.0).await?;
    // tenantSeen: t1, t2, none → 3 shapes; allRows (subject visible): 4 shapes.
    wait_eq(&fanout.admin_url, "fanout_edge_shapes", &[], 7.0).await?;

    let mut p = Publisher::connect(&fanout.grpc_url).await?;
    let events: [(&str, i64); 5] = [("t1", 1), ("t2", 2), ("", 3), ("t3", 4), ("t1", 5)];
    for (tenant, n) in events {
        let e = json!({ "n": n });
        p.publish_with("seen.m", &e, tenant, &[]).await?;
        p.publish_with("rows.m", &e, tenant, &[]).await?;
    }
    for (name, c) in &mut clients {
        let tenant = match *name {
            "a1" | "a2" => "t1",
            "b1" => "t2",
            _ => "",
        };
        let want: Vec<i64> = events
            .iter()
            .filter(|(t, _)| !tenant.is_empty() && *t == tenant)
            .map(|(_, n)| *n)
            .collect();
        let (mut py, mut inline) = (Vec::new(), Vec::new());
        for _ in 0..2 * want.len() {
            let msg = c.recv().await?;
            ensure!(msg["type"] == "next", "{name}: expected next, got {msg}");
            if msg["id"] == "py" {
                let seen = &msg["payload"]["data"]["tenantSeen"];
                ensure!(
                    seen["tenant"] == tenant,
                    "{name} of {tenant} received a payload resolved for {}: {msg}",
                    seen["tenant"]
                );
                py.push(seen["n"].as_i64().unwrap_or(-1));
            } else {
                inline.push(
                    msg["payload"]["data"]["allRows"]["n"]
                        .as_i64()
                        .unwrap_or(-1),
                );
            }
        }
        ensure!(py == want, "{name}: resolved events {py:?}, want {want:?}");
        ensure!(
            inline == want,
            "{name}: inline events {inline:?}, want {want:?}"
        );
        c.expect_silence(Duration::from_millis(200)).await?;
    }
    // One resolver call per event and tenant shape: a1 and a2 share theirs; the events
    // of t3 and without tenant call nothing.
    wait_eq(&fanout.admin_url, CALLS, &[("field", "tenantSeen")], 3.0).await?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let calls = value(&fanout.admin_url, CALLS, &[("field", "tenantSeen")]).await?;
    ensure!(calls == 3.0, "resolver calls {calls}, expected 3");
    // Both events without a tenant (one per channel) were dropped and counted.
    wait_eq(&fanout.admin_url, DROPPED, &[("reason", "no_tenant")], 2.0).await?;
    Ok(())
}

#[tokio::test]
async fn without_multi_tenant_the_tenant_field_does_not_restrict() -> Result<()> {
    let fanout = Fanout::start(args(&["--jwt-secret", token::SECRET])).await?;
    let t = token::user("b1", "t2", &["customer"], &[])?;
    let mut c = GqlClient::connect_with_token(&fanout.ws_url, &t).await?;
    c.subscribe(
        "inline",
        r#"subscription { allRows(room: "o") { n } }"#,
        None,
    )
    .await?;
    wait_eq(&fanout.admin_url, "fanout_edge_subscriptions", &[], 1.0).await?;
    let mut p = Publisher::connect(&fanout.grpc_url).await?;
    p.publish_with("rows.o", &json!({ "n": 1 }), "t1", &[])
        .await?;
    p.publish("rows.o", &json!({ "n": 2 })).await?;
    ensure!(
        ns(&mut c, "inline", "allRows", 2).await? == vec![1, 2],
        "single-tenant mode delivers regardless of the event's tenant"
    );
    let dropped = value(&fanout.admin_url, DROPPED, &[("reason", "no_tenant")]).await?;
    ensure!(dropped == 0.0, "nothing is dropped, counted {dropped}");
    Ok(())
}
