//! graphql-transport-ws rules and close codes, exactly as graphql-ws's PROTOCOL.md says.

use std::time::{Duration, Instant};

use fanout_tests::{Fanout, GqlClient, Publisher, Result, ensure, json, token};

const TICK: &str = r#"subscription { tick(room: "p") { n } }"#;

#[tokio::test]
async fn init_ack_and_client_ping_pong() -> Result<()> {
    let fanout = Fanout::suite(&[]).await?;
    let mut c = GqlClient::connect(&fanout.ws_url).await?;
    c.init(Some(json!({ "hello": "world" }))).await?;
    c.ping().await?;
    // A pong the server did not ask for is allowed and ignored.
    c.send_json(&json!({ "type": "pong" })).await?;
    c.ping().await?;
    Ok(())
}

#[tokio::test]
async fn websocket_ping_frames_are_answered_and_client_close_is_echoed() -> Result<()> {
    // RFC 6455 §5.5: a ping frame gets a pong with the same data, before and after
    // connection_init; a close frame gets a close frame back with the same code.
    let fanout = Fanout::suite(&[]).await?;
    let mut c = GqlClient::connect(&fanout.ws_url).await?;
    c.ws_ping(b"before init").await?;
    c.init(None).await?;
    c.subscribe("1", TICK, None).await?;
    c.ws_ping(b"").await?;
    c.ws_ping(&[7; 125]).await?;
    let code = c.close_with(1000).await?;
    ensure!(code == Some(1000), "close answered with {code:?}");
    let mut c = GqlClient::connect(&fanout.ws_url).await?;
    c.init(None).await?;
    let code = c.close_with(4321).await?;
    ensure!(code == Some(4321), "close answered with {code:?}");
    Ok(())
}

#[tokio::test]
async fn ping_before_init_is_answered() -> Result<()> {
    // PROTOCOL.md: ping/pong may be sent at any time, even before connection_init.
    let fanout = Fanout::suite(&[]).await?;
    let mut c = GqlClient::connect(&fanout.ws_url).await?;
    c.ping().await?;
    c.init(None).await?;
    Ok(())
}

#[tokio::test]
async fn no_subprotocol_closes_4406() -> Result<()> {
    let fanout = Fanout::suite(&[]).await?;
    let mut c = GqlClient::connect_raw(&fanout.ws_url, None).await?;
    c.expect_close(4406).await?;
    Ok(())
}

#[tokio::test]
async fn unknown_subprotocol_closes_4406() -> Result<()> {
    let fanout = Fanout::suite(&[]).await?;
    let mut c = GqlClient::connect_raw(&fanout.ws_url, Some("chat.v9")).await?;
    c.expect_close(4406).await?;
    Ok(())
}

#[tokio::test]
async fn missing_init_closes_4408_after_the_timeout() -> Result<()> {
    let fanout = Fanout::suite(&["--init-timeout-ms", "400"]).await?;
    let started = Instant::now();
    let mut c = GqlClient::connect(&fanout.ws_url).await?;
    c.expect_close_within(4408, Duration::from_secs(5)).await?;
    let waited = started.elapsed();
    ensure!(
        waited >= Duration::from_millis(300),
        "closed after {waited:?}, before the 400 ms init timeout"
    );
    Ok(())
}

#[tokio::test]
async fn init_within_the_timeout_keeps_the_socket() -> Result<()> {
    let fanout = Fanout::suite(&["--init-timeout-ms", "400"]).await?;
    let mut c = GqlClient::connect_init(&fanout.ws_url).await?;
    c.expect_silence(Duration::from_millis(800)).await?;
    c.ping().await?;
    Ok(())
}

#[tokio::test]
async fn second_init_closes_4429() -> Result<()> {
    let fanout = Fanout::suite(&[]).await?;
    let mut c = GqlClient::connect_init(&fanout.ws_url).await?;
    c.send_json(&json!({ "type": "connection_init" })).await?;
    c.expect_close(4429).await?;
    Ok(())
}

#[tokio::test]
async fn subscribe_before_ack_closes_4401() -> Result<()> {
    let fanout = Fanout::suite(&[]).await?;
    let mut c = GqlClient::connect(&fanout.ws_url).await?;
    c.subscribe("1", TICK, None).await?;
    c.expect_close(4401).await?;
    Ok(())
}

#[tokio::test]
async fn duplicate_active_id_closes_4409() -> Result<()> {
    let fanout = Fanout::suite(&[]).await?;
    let mut c = GqlClient::connect_init(&fanout.ws_url).await?;
    c.subscribe("dup", TICK, None).await?;
    c.subscribe("dup", TICK, None).await?;
    c.expect_close(4409).await?;
    Ok(())
}

#[tokio::test]
async fn id_can_be_reused_after_complete() -> Result<()> {
    let fanout = Fanout::suite(&[]).await?;
    let mut publisher = Publisher::connect(&fanout.grpc_url).await?;
    let mut c = GqlClient::connect_init(&fanout.ws_url).await?;
    c.subscribe("x", TICK, None).await?;
    fanout_tests::metrics::wait_eq(&fanout.admin_url, "fanout_edge_subscriptions", &[], 1.0)
        .await?;
    c.complete("x").await?;
    fanout_tests::metrics::wait_eq(&fanout.admin_url, "fanout_edge_subscriptions", &[], 0.0)
        .await?;
    c.subscribe("x", r#"subscription { tick(room: "p") { n label } }"#, None)
        .await?;
    fanout_tests::metrics::wait_eq(&fanout.admin_url, "fanout_edge_subscriptions", &[], 1.0)
        .await?;
    publisher
        .publish("tick.p", &json!({ "n": 1, "label": "one" }))
        .await?;
    let payload = c.next_payload("x").await?;
    ensure!(
        payload["data"] == json!({ "tick": { "n": 1, "label": "one" } }),
        "the second subscription with id x must deliver, got {payload}"
    );
    Ok(())
}

#[tokio::test]
async fn complete_stops_delivery_at_once() -> Result<()> {
    let fanout = Fanout::suite(&[]).await?;
    let mut publisher = Publisher::connect(&fanout.grpc_url).await?;
    let mut c = GqlClient::connect_init(&fanout.ws_url).await?;
    c.subscribe("a", r#"subscription { tick(room: "c") { n } }"#, None)
        .await?;
    c.subscribe("b", r#"subscription { order(id: "c") { id } }"#, None)
        .await?;
    fanout_tests::metrics::wait_eq(&fanout.admin_url, "fanout_edge_subscriptions", &[], 2.0)
        .await?;
    publisher.publish("tick.c", &json!({ "n": 1 })).await?;
    ensure!(
        c.next_payload("a").await?["data"]["tick"]["n"] == 1,
        "first event"
    );
    c.complete("a").await?;
    // The pong proves the server has read the complete (messages are handled in order).
    c.ping().await?;
    // No `complete` comes back for a client-initiated complete, and no more events.
    publisher.publish("tick.c", &json!({ "n": 2 })).await?;
    publisher
        .publish(
            "order.c",
            &json!({ "id": "c", "status": "s", "cents": 1, "items": [] }),
        )
        .await?;
    let next = c.recv().await?;
    ensure!(
        next["type"] == "next" && next["id"] == "b",
        "after completing a, only b may deliver; got {next}"
    );
    c.expect_silence(Duration::from_millis(500)).await?;
    fanout_tests::metrics::wait_eq(&fanout.admin_url, "fanout_edge_subscriptions", &[], 1.0)
        .await?;
    Ok(())
}

#[tokio::test]
async fn complete_for_unknown_id_is_ignored() -> Result<()> {
    let fanout = Fanout::suite(&[]).await?;
    let mut c = GqlClient::connect_init(&fanout.ws_url).await?;
    c.complete("never-subscribed").await?;
    c.ping().await?;
    Ok(())
}

#[tokio::test]
async fn invalid_messages_close_4400() -> Result<()> {
    let fanout = Fanout::suite(&[]).await?;
    let cases: Vec<(&str, String)> = vec![
        ("malformed JSON", "{\"type\": \"connection_init\"".into()),
        ("not an object", "[1, 2, 3]".into()),
        ("unknown type", json!({ "type": "hello" }).to_string()),
        ("missing type", json!({ "id": "1" }).to_string()),
        (
            "subscribe without id",
            json!({ "type": "subscribe", "payload": { "query": TICK } }).to_string(),
        ),
        (
            "subscribe with empty id",
            json!({ "type": "subscribe", "id": "", "payload": { "query": TICK } }).to_string(),
        ),
        (
            "subscribe without payload",
            json!({ "type": "subscribe", "id": "1" }).to_string(),
        ),
        (
            "subscribe without query",
            json!({ "type": "subscribe", "id": "1", "payload": { "variables": {} } }).to_string(),
        ),
        (
            "subscribe with numeric query",
            json!({ "type": "subscribe", "id": "1", "payload": { "query": 5 } }).to_string(),
        ),
        (
            "complete without id",
            json!({ "type": "complete" }).to_string(),
        ),
        (
            "server-only type next",
            json!({ "type": "next", "id": "1", "payload": {} }).to_string(),
        ),
        (
            "server-only type connection_ack",
            json!({ "type": "connection_ack" }).to_string(),
        ),
    ];
    for (what, text) in cases {
        let mut c = GqlClient::connect_init(&fanout.ws_url).await?;
        c.send_text(text).await?;
        c.expect_close(4400)
            .await
            .map_err(|e| e.context(format!("case: {what}")))?;
    }
    Ok(())
}

#[tokio::test]
async fn malformed_json_before_init_closes_4400() -> Result<()> {
    let fanout = Fanout::suite(&[]).await?;
    let mut c = GqlClient::connect(&fanout.ws_url).await?;
    c.send_text("not json at all").await?;
    c.expect_close(4400).await?;
    Ok(())
}

#[tokio::test]
async fn binary_frame_closes_4400() -> Result<()> {
    let fanout = Fanout::suite(&[]).await?;
    let mut c = GqlClient::connect_init(&fanout.ws_url).await?;
    c.send_binary(br#"{"type":"ping"}"#.to_vec()).await?;
    c.expect_close(4400).await?;
    Ok(())
}

#[tokio::test]
async fn server_pings_and_a_pong_keeps_the_connection() -> Result<()> {
    let fanout = Fanout::suite(&["--ping-interval-ms", "200", "--pong-timeout-ms", "300"]).await?;
    let mut c = GqlClient::connect_init(&fanout.ws_url).await?;
    c.set_auto_pong(false);
    for round in 0..3 {
        let msg = c.recv_within(Duration::from_secs(3)).await?;
        ensure!(
            msg["type"] == "ping",
            "round {round}: expected a server ping, got {msg}"
        );
        c.send_json(&json!({ "type": "pong" })).await?;
    }
    // Answered pings: still open well past the pong timeout.
    c.set_auto_pong(true);
    c.expect_silence(Duration::from_millis(700)).await?;
    c.ping().await?;
    Ok(())
}

#[tokio::test]
async fn missing_pong_closes_4504() -> Result<()> {
    let fanout = Fanout::suite(&["--ping-interval-ms", "200", "--pong-timeout-ms", "300"]).await?;
    let mut c = GqlClient::connect_init(&fanout.ws_url).await?;
    c.set_auto_pong(false);
    let msg = c.recv_within(Duration::from_secs(3)).await?;
    ensure!(msg["type"] == "ping", "expected a server ping, got {msg}");
    c.expect_close_within(4504, Duration::from_secs(3)).await?;
    Ok(())
}

#[tokio::test]
async fn pings_are_off_with_interval_zero() -> Result<()> {
    let fanout = Fanout::suite(&["--ping-interval-ms", "0", "--pong-timeout-ms", "100"]).await?;
    let mut c = GqlClient::connect_init(&fanout.ws_url).await?;
    c.set_auto_pong(false);
    c.expect_silence(Duration::from_millis(800)).await?;
    Ok(())
}

#[tokio::test]
async fn valid_token_is_accepted_in_both_payload_forms() -> Result<()> {
    let fanout = Fanout::suite(&["--jwt-secret", token::SECRET]).await?;
    let t = token::user("alice", "t1", &["customer"], &[])?;
    let mut c = GqlClient::connect(&fanout.ws_url).await?;
    c.init(Some(json!({ "token": t }))).await?;
    c.ping().await?;
    let mut c = GqlClient::connect(&fanout.ws_url).await?;
    c.init(Some(json!({ "Authorization": format!("Bearer {t}") })))
        .await?;
    c.ping().await?;
    Ok(())
}

#[tokio::test]
async fn bad_tokens_close_4403() -> Result<()> {
    let fanout = Fanout::suite(&["--jwt-secret", token::SECRET]).await?;
    let claims = token::claims("mallory", "t1", &["admin"], &[]);
    let mut expired = claims.clone();
    expired["exp"] = json!(token::now() - 3600);
    let mut not_yet = claims.clone();
    not_yet["nbf"] = json!(token::now() + 3600);
    let forged = token::mint("some-other-secret-entirely-000000", &claims)?;
    let cases = vec![
        ("forged signature", json!({ "token": forged })),
        (
            "expired",
            json!({ "token": token::mint(token::SECRET, &expired)? }),
        ),
        (
            "not yet valid",
            json!({ "token": token::mint(token::SECRET, &not_yet)? }),
        ),
        ("garbage", json!({ "token": "not.a.jwt" })),
        ("missing token", json!({})),
        ("no payload", serde_json::Value::Null),
    ];
    for (what, payload) in cases {
        let mut c = GqlClient::connect(&fanout.ws_url).await?;
        let mut msg = json!({ "type": "connection_init" });
        if !payload.is_null() {
            msg["payload"] = payload;
        }
        c.send_json(&msg).await?;
        c.expect_close(4403)
            .await
            .map_err(|e| e.context(format!("case: {what}")))?;
    }
    Ok(())
}

#[tokio::test]
async fn anonymous_without_a_secret_ignores_tokens() -> Result<()> {
    // Without --jwt-secret, connections are anonymous; a token is not an error.
    let fanout = Fanout::suite(&[]).await?;
    let mut c = GqlClient::connect(&fanout.ws_url).await?;
    c.init(Some(json!({ "token": "whatever" }))).await?;
    c.ping().await?;
    Ok(())
}
