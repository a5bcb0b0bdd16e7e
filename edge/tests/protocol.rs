//! `graphql-transport-ws` over a real socket: handshake, auth, keepalive and every
//! close code that needs no valid subscription.

mod common;

use std::time::Duration;

use common::{TestEdge, WAIT, test_config, token};
use serde_json::json;

#[tokio::test]
async fn init_is_acknowledged_and_pings_are_answered() {
    let edge = TestEdge::start(test_config()).await;
    let mut client = edge.client().await;
    // A ping before connection_init is answered too.
    client.send_json(json!({"type":"ping"})).await;
    assert_eq!(client.recv_json().await, json!({"type":"pong"}));
    client
        .send_json(
            json!({"type":"connection_init","payload":{"token": token(json!({"sub":"u1"}))}}),
        )
        .await;
    assert_eq!(client.recv_json().await, json!({"type":"connection_ack"}));
    client
        .send_json(json!({"type":"ping","payload":{"n":1}}))
        .await;
    assert_eq!(
        client.recv_json().await,
        json!({"type":"pong","payload":{"n":1}})
    );
    // Unsolicited pongs are fine.
    client.send_json(json!({"type":"pong"})).await;
    client.expect_silence(Duration::from_millis(100)).await;
    assert_eq!(edge.edge.stats().connections, 1);
    client.close().await;
    edge.wait_for_stats(|s| s.connections == 0).await;
}

#[tokio::test]
async fn authorization_header_form_is_accepted() {
    let edge = TestEdge::start(test_config()).await;
    let mut client = edge.client().await;
    let bearer = format!("Bearer {}", token(json!({"sub":"u1"})));
    client
        .send_json(json!({"type":"connection_init","payload":{"Authorization": bearer}}))
        .await;
    assert_eq!(client.recv_json().await, json!({"type":"connection_ack"}));
}

#[tokio::test]
async fn missing_init_times_out_with_4408() {
    let config = fanout_edge::EdgeConfig {
        init_timeout: Duration::from_millis(150),
        ..test_config()
    };
    let edge = TestEdge::start(config).await;
    let mut client = edge.client().await;
    let reason = client.expect_close(4408).await;
    assert_eq!(reason, "Connection initialisation timeout");
    edge.wait_for_stats(|s| s.connections == 0).await;
}

#[tokio::test]
async fn second_init_is_closed_with_4429() {
    let edge = TestEdge::start(test_config()).await;
    let mut client = edge.acked_client(json!({"sub":"u1"})).await;
    client.send_json(json!({"type":"connection_init"})).await;
    assert_eq!(
        client.expect_close(4429).await,
        "Too many initialisation requests"
    );
}

#[tokio::test]
async fn subscribe_before_ack_is_closed_with_4401() {
    let edge = TestEdge::start(test_config()).await;
    let mut client = edge.client().await;
    client
        .subscribe("1", common::ORDER_QUERY, json!({"id":"1"}))
        .await;
    assert_eq!(client.expect_close(4401).await, "Unauthorized");
}

#[tokio::test]
async fn missing_subprotocol_is_closed_with_4406() {
    let edge = TestEdge::start(test_config()).await;
    let mut client = edge.client_with(None).await;
    assert_eq!(
        client.expect_close(4406).await,
        "Subprotocol not acceptable"
    );
    edge.wait_for_stats(|s| s.connections == 0).await;
}

#[tokio::test]
async fn bad_token_is_closed_with_4403_without_echoing_it() {
    let edge = TestEdge::start(test_config()).await;
    for payload in [
        json!({"token": "not-a-jwt-SECRETVALUE"}),
        json!({}),
        json!(null),
    ] {
        let mut client = edge.client().await;
        client
            .send_json(json!({"type":"connection_init","payload": payload}))
            .await;
        let reason = client.expect_close(4403).await;
        assert_eq!(reason, "Forbidden");
    }
}

#[tokio::test]
async fn token_expiry_closes_with_4403() {
    let edge = TestEdge::start(test_config()).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let mut client = edge.acked_client(json!({"sub":"u1","exp": now + 1})).await;
    assert_eq!(client.expect_close(4403).await, "Forbidden: token expired");
}

#[tokio::test]
async fn invalid_messages_are_closed_with_4400() {
    let edge = TestEdge::start(test_config()).await;
    let cases = [
        "not json",
        "[]",
        r#"{"payload":{}}"#,
        r#"{"type":5}"#,
        r#"{"type":"unknown"}"#,
        r#"{"type":"complete"}"#,
        r#"{"type":"subscribe","payload":{"query":"subscription { a }"}}"#,
        r#"{"id":"1","type":"next","payload":{}}"#,
        r#"{"id":"1","type":"error","payload":[]}"#,
        r#"{"type":"connection_ack"}"#,
        r#"{"type":"connection_init","payload":"x"}"#,
    ];
    for case in cases {
        let mut client = edge.client().await;
        client.send_text(case).await;
        let reason = client.expect_close(4400).await;
        assert!(
            !reason.is_empty() && reason.len() <= 123,
            "{case}: {reason}"
        );
    }
    let mut client = edge.client().await;
    client.send_binary(b"{\"type\":\"ping\"}".to_vec()).await;
    client.expect_close(4400).await;
    edge.wait_for_stats(|s| s.connections == 0).await;
}

#[tokio::test]
async fn oversized_message_is_closed_with_1009() {
    let config = fanout_edge::EdgeConfig {
        max_message_bytes: 1024,
        ..test_config()
    };
    let edge = TestEdge::start(config).await;
    let mut client = edge.acked_client(json!({"sub":"u1"})).await;
    let big = format!(
        r#"{{"type":"ping","payload":{{"x":"{}"}}}}"#,
        "a".repeat(4096)
    );
    client.send_text(&big).await;
    assert_eq!(client.expect_close(1009).await, "Message too big");
    edge.wait_for_stats(|s| s.connections == 0).await;
}

#[tokio::test]
async fn keepalive_pings_and_closes_silent_clients_with_4504() {
    let config = fanout_edge::EdgeConfig {
        ping_interval: Duration::from_millis(100),
        pong_timeout: Duration::from_millis(200),
        ..test_config()
    };
    let edge = TestEdge::start(config).await;

    // A client that does not answer is closed.
    let mut silent = edge.acked_client(json!({"sub":"u2"})).await;
    assert_eq!(silent.recv_json().await, json!({"type":"ping"}));
    let close = async {
        loop {
            match silent.recv().await {
                tokio_tungstenite::tungstenite::Message::Close(Some(frame)) => return frame,
                tokio_tungstenite::tungstenite::Message::Text(t) => {
                    assert_eq!(t.as_str(), r#"{"type":"ping"}"#);
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    };
    let frame = tokio::time::timeout(WAIT, close)
        .await
        .expect("closed in time");
    assert_eq!(u16::from(frame.code), 4504);
    assert_eq!(frame.reason.as_str(), "Keepalive timeout");

    // A client that answers stays connected across several intervals.
    let mut live = edge.acked_client(json!({"sub":"u1"})).await;
    for _ in 0..5 {
        assert_eq!(live.recv_json().await, json!({"type":"ping"}));
        live.send_json(json!({"type":"pong"})).await;
    }
    live.send_json(json!({"type":"ping"})).await;
    loop {
        let msg = live.recv_json().await;
        if msg == json!({"type":"pong"}) {
            break;
        }
        assert_eq!(msg, json!({"type":"ping"}));
        live.send_json(json!({"type":"pong"})).await;
    }
}

#[tokio::test]
async fn shutdown_closes_sockets_with_1001_and_serve_returns() {
    let edge = TestEdge::start(test_config()).await;
    let mut a = edge.acked_client(json!({"sub":"u1"})).await;
    let mut b = edge.client().await;
    edge.shutdown.cancel();
    assert_eq!(a.expect_close(1001).await, "Server shutting down");
    b.expect_close(1001).await;
    let served = tokio::time::timeout(WAIT, edge.server)
        .await
        .expect("serve returns in time")
        .expect("serve task");
    assert!(served.is_ok());
    assert_eq!(edge.edge.stats().connections, 0);
}
