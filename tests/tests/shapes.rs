//! Shapes (DESIGN §4): one resolver call per event and shape, never per subscriber;
//! subscribers with different security contexts never share a payload. Also `@auth`.

use std::time::Duration;

use fanout_tests::metrics::{value, wait_eq, wait_for};
use fanout_tests::{
    Fanout, GqlClient, Publisher, Result, Value, bail, ensure, json, token, within,
};

const CALLS: &str = "fanout_resolver_calls_total";

/// Polls the resolver call counter of `field` until it reaches `want`, then checks it
/// did not overshoot.
async fn expect_calls(fanout: &Fanout, field: &str, want: f64) -> Result<()> {
    let got = wait_for(
        &fanout.admin_url,
        CALLS,
        &[("field", field)],
        Duration::from_secs(15),
        &format!("{CALLS}{{field={field}}} >= {want}"),
        |v| v >= want,
    )
    .await?;
    ensure!(
        got == want,
        "{CALLS}{{field=\"{field}\"}} is {got}, expected exactly {want}"
    );
    // And it stays there: no late extra calls.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let later = value(&fanout.admin_url, CALLS, &[("field", field)]).await?;
    ensure!(
        later == want,
        "{CALLS}{{field=\"{field}\"}} went on to {later}, expected {want}"
    );
    Ok(())
}

#[tokio::test]
async fn resolver_runs_once_per_shape_not_per_subscriber() -> Result<()> {
    const K: usize = 25;
    let fanout = Fanout::suite(&[]).await?;
    let shapes = [
        r#"subscription { counted(room: "r") { n } }"#,
        r#"subscription { counted(room: "r") { n label } }"#,
        r#"subscription { counted(room: "r", mode: "loud") { n label } }"#,
    ];
    // 12 subscribers: 4 per shape, spread over 6 connections (two subscriptions each).
    let mut clients = Vec::new();
    for conn in 0..6 {
        let mut c = GqlClient::connect_init(&fanout.ws_url).await?;
        for slot in 0..2 {
            let k = conn * 2 + slot;
            c.subscribe(&format!("s{k}"), shapes[k % 3], None).await?;
        }
        clients.push(c);
    }
    wait_eq(&fanout.admin_url, "fanout_edge_subscriptions", &[], 12.0).await?;
    wait_eq(&fanout.admin_url, "fanout_edge_shapes", &[], 3.0).await?;
    let before = value(&fanout.admin_url, CALLS, &[("field", "counted")]).await?;
    ensure!(
        before == 0.0,
        "no resolver call before any event, got {before}"
    );

    let mut p = Publisher::connect(&fanout.grpc_url).await?;
    for n in 0..K {
        p.publish("counted.r", &json!({ "n": n })).await?;
    }
    // Every subscriber gets all K events, each with its own shape's projection.
    for (conn, c) in clients.iter_mut().enumerate() {
        let mut counts = [0usize; 2];
        for _ in 0..2 * K {
            let msg = c.recv().await?;
            ensure!(
                msg["type"] == "next",
                "connection {conn}: expected next, got {msg}"
            );
            let id = msg["id"].as_str().unwrap_or_default();
            let slot = if id == format!("s{}", conn * 2) { 0 } else { 1 };
            let k = conn * 2 + slot;
            let n = counts[slot];
            let want = match k % 3 {
                0 => json!({ "counted": { "n": n } }),
                1 => json!({ "counted": { "n": n, "label": "plain" } }),
                _ => json!({ "counted": { "n": n, "label": "loud" } }),
            };
            ensure!(
                msg["payload"]["data"] == want,
                "subscription s{k}, event {n}: {msg} != {want}"
            );
            counts[slot] += 1;
        }
    }
    expect_calls(&fanout, "counted", (3 * K) as f64).await?;
    Ok(())
}

#[tokio::test]
async fn different_tenants_and_roles_never_share_payloads() -> Result<()> {
    let fanout = Fanout::suite(&["--jwt-secret", token::SECRET]).await?;
    // (subject, tenant, roles): same channel, same document.
    let users: [(&str, &str, &[&str]); 6] = [
        ("alice", "t1", &["customer"]),
        ("bob", "t2", &["customer"]),
        ("carol", "t1", &["support"]),
        ("dave", "t2", &["support", "customer"]),
        ("erin", "t1", &["customer"]),
        ("alice", "t1", &["customer"]),
    ];
    let mut clients = Vec::new();
    for (sub, tenant, roles) in users {
        let t = token::user(sub, tenant, roles, &[])?;
        let mut c = GqlClient::connect_with_token(&fanout.ws_url, &t).await?;
        c.subscribe(
            "w",
            r#"subscription { whoami(room: "iso") { tenant subject roles n } }"#,
            None,
        )
        .await?;
        clients.push((sub, tenant, roles, c));
    }
    wait_eq(&fanout.admin_url, "fanout_edge_subscriptions", &[], 6.0).await?;
    // alice appears twice with the same claims: 5 distinct security contexts.
    wait_eq(&fanout.admin_url, "fanout_edge_shapes", &[], 5.0).await?;

    let mut p = Publisher::connect(&fanout.grpc_url).await?;
    const K: usize = 10;
    for n in 0..K {
        p.publish("who.iso", &json!({ "n": n })).await?;
    }
    for (sub, tenant, roles, c) in &mut clients {
        let mut sorted: Vec<&str> = roles.to_vec();
        sorted.sort_unstable();
        for n in 0..K {
            let got = c.next_payload("w").await?;
            let want =
                json!({ "whoami": { "tenant": tenant, "subject": sub, "roles": sorted, "n": n } });
            if got["data"] != want {
                bail!(
                    "{sub}@{tenant} {roles:?} received a payload resolved for someone else: {got}, expected {want}"
                );
            }
        }
    }
    expect_calls(&fanout, "whoami", (5 * K) as f64).await?;
    Ok(())
}

#[tokio::test]
async fn user_independent_fields_share_a_shape_across_subjects() -> Result<()> {
    let fanout = Fanout::suite(&["--jwt-secret", token::SECRET]).await?;
    let mut clients = Vec::new();
    for sub in ["u1", "u2", "u3"] {
        let t = token::user(sub, "t1", &["customer"], &[])?;
        let mut c = GqlClient::connect_with_token(&fanout.ws_url, &t).await?;
        c.subscribe(
            "s",
            r#"subscription { shared(room: "x") { tenant roles n } }"#,
            None,
        )
        .await?;
        clients.push(c);
    }
    wait_eq(&fanout.admin_url, "fanout_edge_subscriptions", &[], 3.0).await?;
    wait_eq(&fanout.admin_url, "fanout_edge_shapes", &[], 1.0).await?;
    let mut p = Publisher::connect(&fanout.grpc_url).await?;
    for n in 0..4 {
        p.publish("shared.x", &json!({ "n": n })).await?;
    }
    for c in &mut clients {
        for n in 0..4 {
            let got = c.next_payload("s").await?;
            ensure!(
                got["data"]
                    == json!({ "shared": { "tenant": "t1", "roles": ["customer"], "n": n } }),
                "shared payload {n}: {got}"
            );
        }
    }
    expect_calls(&fanout, "shared", 4.0).await?;
    Ok(())
}

async fn auth_case(
    fanout: &Fanout,
    claims: Value,
    query: &str,
) -> Result<std::result::Result<GqlClient, Vec<Value>>> {
    let t = token::mint(token::SECRET, &claims)?;
    let mut c = GqlClient::connect_with_token(&fanout.ws_url, &t).await?;
    c.subscribe("a", query, None).await?;
    // Either an error arrives at once, or the subscription is active: tell by pinging.
    c.send_json(&json!({ "type": "ping" })).await?;
    let msg = c.recv().await?;
    if msg["type"] == "pong" {
        return Ok(Ok(c));
    }
    ensure!(
        msg["type"] == "error" && msg["id"] == "a",
        "expected error or pong, got {msg}"
    );
    let errors = msg["payload"].as_array().cloned().unwrap_or_default();
    let pong = c.recv().await?;
    ensure!(
        pong["type"] == "pong",
        "the socket stays open after an @auth error: {pong}"
    );
    Ok(Err(errors))
}

#[tokio::test]
async fn auth_roles_are_enforced_at_subscribe_time() -> Result<()> {
    let fanout = Fanout::suite(&["--jwt-secret", token::SECRET]).await?;
    let q = r#"subscription { adminOnly(room: "r") { n } }"#;
    let denied = auth_case(&fanout, token::claims("c", "t1", &["customer"], &[]), q).await?;
    match denied {
        Ok(_) => bail!("a customer must not subscribe to an @auth(roles: [admin]) field"),
        Err(errors) => ensure!(
            errors[0]["extensions"]["code"].is_string(),
            "the @auth error carries extensions.code: {errors:?}"
        ),
    }
    let no_roles = auth_case(&fanout, json!({ "sub": "x" }), q).await?;
    ensure!(no_roles.is_err(), "no roles claim: denied");

    let mut admin = match auth_case(&fanout, token::claims("a", "t1", &["admin"], &[]), q).await? {
        Ok(c) => c,
        Err(errors) => bail!("an admin may subscribe: {errors:?}"),
    };
    wait_eq(&fanout.admin_url, "fanout_edge_subscriptions", &[], 1.0).await?;
    let mut p = Publisher::connect(&fanout.grpc_url).await?;
    p.publish("admin.r", &json!({ "n": 1 })).await?;
    let got = admin.next_payload("a").await?;
    ensure!(
        got["data"] == json!({ "adminOnly": { "n": 1 } }),
        "admin receives: {got}"
    );
    Ok(())
}

#[tokio::test]
async fn auth_scopes_are_enforced_at_subscribe_time() -> Result<()> {
    let fanout = Fanout::suite(&["--jwt-secret", token::SECRET]).await?;
    let q = r#"subscription { scoped(room: "r") { n } }"#;
    let cases = [
        (
            "space-separated scope",
            json!({ "sub": "a", "scope": "foo tick:read" }),
            true,
        ),
        (
            "scopes array",
            json!({ "sub": "b", "scopes": ["tick:read"] }),
            true,
        ),
        (
            "wrong scope",
            json!({ "sub": "c", "scope": "tick:write" }),
            false,
        ),
        (
            "scope prefix only",
            json!({ "sub": "d", "scope": "tick" }),
            false,
        ),
        ("no scope", json!({ "sub": "e" }), false),
    ];
    for (what, claims, allowed) in cases {
        let outcome =
            within(Duration::from_secs(20), what, auth_case(&fanout, claims, q)).await??;
        ensure!(
            outcome.is_ok() == allowed,
            "{what}: allowed should be {allowed}, got {outcome:?}",
            outcome = outcome.as_ref().err()
        );
    }
    Ok(())
}
