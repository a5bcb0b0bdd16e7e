//! Limits: message size, subscriptions per connection, slow consumers, and cleanup of
//! dropped connections.

use std::time::Duration;

use fanout_tests::metrics::{value, wait_eq, wait_for};
use fanout_tests::ws::Closed;
use fanout_tests::{Fanout, GqlClient, Publisher, Result, bail, ensure, json, within};

#[tokio::test]
async fn oversized_frame_closes_1009() -> Result<()> {
    let fanout = Fanout::suite(&["--max-message-bytes", "4096"]).await?;
    let mut c = GqlClient::connect_init(&fanout.ws_url).await?;
    let padding = "x".repeat(5000);
    let query = format!("subscription {{ tick(room: \"big\") {{ n }} }} # {padding}");
    c.subscribe("1", &query, None).await?;
    c.expect_close(1009).await?;
    Ok(())
}

#[tokio::test]
async fn oversized_frame_before_init_closes_1009() -> Result<()> {
    let fanout = Fanout::suite(&[]).await?;
    let mut c = GqlClient::connect(&fanout.ws_url).await?;
    // Default limit: 65536 bytes.
    let msg = json!({ "type": "connection_init", "payload": { "pad": "y".repeat(70_000) } });
    c.send_json(&msg).await?;
    c.expect_close(1009).await?;
    Ok(())
}

#[tokio::test]
async fn frame_just_under_the_limit_is_accepted() -> Result<()> {
    let fanout = Fanout::suite(&["--max-message-bytes", "4096"]).await?;
    let mut c = GqlClient::connect_init(&fanout.ws_url).await?;
    let base = json!({ "id": "1", "type": "subscribe", "payload": { "query": "subscription { tick(room: \"ok\") { n } }\n# " } });
    let room = 4000 - base.to_string().len();
    let mut msg = base.clone();
    msg["payload"]["query"] = json!(format!(
        "subscription {{ tick(room: \"ok\") {{ n }} }}\n# {}",
        "z".repeat(room)
    ));
    ensure!(
        msg.to_string().len() <= 4096,
        "test frame must fit the limit"
    );
    c.send_json(&msg).await?;
    wait_eq(&fanout.admin_url, "fanout_edge_subscriptions", &[], 1.0).await?;
    c.ping().await?;
    Ok(())
}

#[tokio::test]
async fn subscriptions_per_connection_are_limited() -> Result<()> {
    let fanout = Fanout::suite(&["--max-subscriptions", "2"]).await?;
    let mut c = GqlClient::connect_init(&fanout.ws_url).await?;
    c.subscribe("a", r#"subscription { tick(room: "m") { n } }"#, None)
        .await?;
    c.subscribe("b", r#"subscription { tick(room: "m") { n } }"#, None)
        .await?;
    c.subscribe("c", r#"subscription { tick(room: "m") { n } }"#, None)
        .await?;
    let first = c.recv().await?;
    match first["type"].as_str() {
        Some("error") => {
            ensure!(
                first["id"] == "c",
                "the third subscription is refused: {first}"
            );
            wait_eq(&fanout.admin_url, "fanout_edge_subscriptions", &[], 2.0).await?;
            let mut p = Publisher::connect(&fanout.grpc_url).await?;
            p.publish("tick.m", &json!({ "n": 1 })).await?;
            let mut ids = Vec::new();
            for _ in 0..2 {
                let m = c.recv().await?;
                ensure!(m["type"] == "next", "expected next, got {m}");
                ids.push(m["id"].as_str().unwrap_or_default().to_string());
            }
            ids.sort();
            ensure!(ids == ["a", "b"], "only a and b deliver, got {ids:?}");
            c.expect_silence(Duration::from_millis(300)).await?;
        }
        other => bail!(
            "the third subscription over --max-subscriptions 2 must get an error, got {other:?}: {first}"
        ),
    }
    // Completing one frees a slot.
    c.complete("a").await?;
    c.subscribe("d", r#"subscription { tick(room: "m") { n } }"#, None)
        .await?;
    wait_eq(&fanout.admin_url, "fanout_edge_subscriptions", &[], 2.0).await?;
    c.ping().await?;
    Ok(())
}

#[tokio::test]
async fn slow_consumer_is_closed_while_others_keep_receiving() -> Result<()> {
    const EVENTS: usize = 300;
    const SIZE: usize = 100_000;
    let fanout = Fanout::suite(&["--outbound-queue", "16"]).await?;
    let q = r#"subscription { big(room: "slow") { n data } }"#;

    let mut slow = GqlClient::connect_init(&fanout.ws_url).await?;
    slow.subscribe("s", q, None).await?;
    let mut fast = GqlClient::connect_init(&fanout.ws_url).await?;
    fast.subscribe("f", q, None).await?;
    wait_eq(&fanout.admin_url, "fanout_edge_subscriptions", &[], 2.0).await?;

    // The fast client reads everything as it arrives.
    let reader = tokio::spawn(async move {
        for n in 0..EVENTS {
            let p = fast
                .next_payload("f")
                .await
                .map_err(|e| e.context(format!("fast client, event {n}")))?;
            let data = &p["data"]["big"];
            ensure!(
                data["n"] == n && data["data"].as_str().map(str::len) == Some(SIZE),
                "fast client event {n}"
            );
        }
        Ok::<_, anyhow::Error>(fast)
    });

    // The slow client reads nothing while 30 MB are published.
    let mut p = Publisher::connect(&fanout.grpc_url).await?;
    let blob = "b".repeat(SIZE);
    for n in 0..EVENTS {
        p.publish("big.slow", &json!({ "n": n, "data": blob }))
            .await?;
    }
    let _fast = within(
        Duration::from_secs(60),
        "the fast client to receive every event",
        reader,
    )
    .await???;

    wait_for(
        &fanout.admin_url,
        "fanout_edge_slow_consumer_closes_total",
        &[],
        Duration::from_secs(15),
        "a slow-consumer close",
        |v| v >= 1.0,
    )
    .await?;
    // Now read: the slow client got a prefix of the events, then 4503 (or its TCP was
    // closed when even the close frame could not be written).
    let (seen, closed) = slow.drain_until_closed(Duration::from_secs(30)).await?;
    match closed {
        Closed::Frame(4503, _) | Closed::Eof(_) => {}
        other => bail!("slow consumer must get 4503 or a closed TCP connection, got {other:?}"),
    }
    ensure!(
        seen.len() < EVENTS,
        "the slow client cannot have received all {EVENTS} events"
    );
    for (n, m) in seen.iter().enumerate() {
        ensure!(
            m["payload"]["data"]["big"]["n"] == n,
            "slow client's prefix is in order at {n}"
        );
    }
    wait_eq(&fanout.admin_url, "fanout_edge_subscriptions", &[], 1.0).await?;
    wait_eq(&fanout.admin_url, "fanout_edge_connections", &[], 1.0).await?;
    Ok(())
}

#[tokio::test]
async fn dropped_sockets_free_all_their_subscriptions() -> Result<()> {
    const SOCKETS: usize = 50;
    let fanout = Fanout::suite(&[]).await?;
    let mut clients = Vec::new();
    for k in 0..SOCKETS {
        let mut c = GqlClient::connect_init(&fanout.ws_url).await?;
        // A mix: a shared pass-through channel, a per-socket channel, a resolver field.
        c.subscribe(
            "shared",
            r#"subscription { tick(room: "all") { n } }"#,
            None,
        )
        .await?;
        c.subscribe(
            "own",
            &format!(r#"subscription {{ order(id: "{k}") {{ id }} }}"#),
            None,
        )
        .await?;
        c.subscribe(
            "res",
            &format!(r#"subscription {{ counted(room: "c{}") {{ n }} }}"#, k % 5),
            None,
        )
        .await?;
        clients.push(c);
    }
    let total = (SOCKETS * 3) as f64;
    wait_eq(
        &fanout.admin_url,
        "fanout_edge_connections",
        &[],
        SOCKETS as f64,
    )
    .await?;
    wait_eq(&fanout.admin_url, "fanout_edge_subscriptions", &[], total).await?;
    let shapes = value(&fanout.admin_url, "fanout_edge_shapes", &[]).await?;
    ensure!(
        shapes == (1 + SOCKETS + 5) as f64,
        "shapes: 1 shared + {SOCKETS} own + 5 resolver, got {shapes}"
    );
    let interest = value(&fanout.admin_url, "fanout_router_interest_entries", &[]).await?;
    ensure!(
        interest > 0.0,
        "routers hold interest while subscribed, got {interest}"
    );

    // Mid-subscription: events are flowing when the sockets go.
    let mut p = Publisher::connect(&fanout.grpc_url).await?;
    p.publish("tick.all", &json!({ "n": 1 })).await?;
    for c in &mut clients {
        c.next_payload("shared").await?;
    }
    p.publish("tick.all", &json!({ "n": 2 })).await?;
    // Half close without a handshake (TCP dropped), half with a close frame.
    for (k, c) in clients.into_iter().enumerate() {
        if k % 2 == 0 {
            c.abort();
        } else {
            c.close().await?;
        }
    }
    p.publish("tick.all", &json!({ "n": 3 })).await?;
    for name in [
        "fanout_edge_connections",
        "fanout_edge_subscriptions",
        "fanout_edge_shapes",
        "fanout_router_interest_entries",
        "fanout_router_channels",
    ] {
        wait_eq(&fanout.admin_url, name, &[], 0.0).await?;
    }
    // The server still serves new clients.
    let mut c = GqlClient::connect_init(&fanout.ws_url).await?;
    c.subscribe("x", r#"subscription { tick(room: "all") { n } }"#, None)
        .await?;
    wait_eq(&fanout.admin_url, "fanout_edge_subscriptions", &[], 1.0).await?;
    p.publish("tick.all", &json!({ "n": 4 })).await?;
    ensure!(
        c.next_payload("x").await?["data"]["tick"]["n"] == 4,
        "new client after cleanup"
    );
    Ok(())
}

#[tokio::test]
async fn completed_subscriptions_free_their_interest() -> Result<()> {
    let fanout = Fanout::suite(&[]).await?;
    let mut c = GqlClient::connect_init(&fanout.ws_url).await?;
    for k in 0..20 {
        c.subscribe(
            &format!("s{k}"),
            &format!(r#"subscription {{ tick(room: "r{k}") {{ n }} }}"#),
            None,
        )
        .await?;
    }
    wait_eq(&fanout.admin_url, "fanout_edge_subscriptions", &[], 20.0).await?;
    wait_eq(&fanout.admin_url, "fanout_router_channels", &[], 20.0).await?;
    for k in 0..20 {
        c.complete(&format!("s{k}")).await?;
    }
    for name in [
        "fanout_edge_subscriptions",
        "fanout_edge_shapes",
        "fanout_router_interest_entries",
        "fanout_router_channels",
    ] {
        wait_eq(&fanout.admin_url, name, &[], 0.0).await?;
    }
    wait_eq(&fanout.admin_url, "fanout_edge_connections", &[], 1.0).await?;
    c.ping().await?;
    Ok(())
}
