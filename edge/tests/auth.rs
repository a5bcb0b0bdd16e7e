//! Client authentication over a real socket: the upgrade `Authorization` header, token
//! refresh by `ping` (re-authorization and re-shaping of live subscriptions) and expiry.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{Client, ORDER_QUERY, TestEdge, WAIT, test_config, token};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

const SECRET_QUERY: &str = "subscription($id: ID!) { secret(id: $id) { id status } }";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

fn admin(exp: u64) -> Value {
    json!({"sub":"u1","roles":["admin"],"scope":"orders:read","exp": exp})
}

async fn client_with_authorization(edge: &TestEdge, value: &str) -> Client {
    let mut request = edge.url().into_client_request().expect("request");
    let headers = request.headers_mut();
    headers.insert(
        "Sec-WebSocket-Protocol",
        HeaderValue::from_static("graphql-transport-ws"),
    );
    headers.insert(
        "Authorization",
        HeaderValue::from_str(value).expect("header"),
    );
    let (ws, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(request))
        .await
        .expect("connect in time")
        .expect("connect");
    Client { ws }
}

async fn refresh(client: &mut Client, claims: Value) {
    client
        .send_json(json!({"type":"ping","payload":{"token": token(claims)}}))
        .await;
}

#[tokio::test]
async fn upgrade_authorization_header_authenticates_and_payload_wins() {
    let edge = TestEdge::start(test_config()).await;
    let bearer = format!("Bearer {}", token(json!({"sub":"u1"})));
    let mut client = client_with_authorization(&edge, &bearer).await;
    client.send_json(json!({"type":"connection_init"})).await;
    assert_eq!(client.recv_json().await, json!({"type":"connection_ack"}));

    // A bad token in the payload is not rescued by a good header.
    let mut client = client_with_authorization(&edge, &bearer).await;
    client
        .send_json(json!({"type":"connection_init","payload":{"token":"bad"}}))
        .await;
    assert_eq!(client.expect_close(4403).await, "Forbidden");

    let mut client = client_with_authorization(&edge, "Basic dTpw").await;
    client.send_json(json!({"type":"connection_init"})).await;
    assert_eq!(client.expect_close(4403).await, "Forbidden");
}

#[tokio::test]
async fn refresh_reshapes_allowed_subscriptions_and_ends_denied_ones() {
    let edge = TestEdge::start(test_config()).await;
    let mut client = edge.acked_client(admin(now() + 60)).await;
    client.subscribe("o", ORDER_QUERY, json!({"id":"1"})).await;
    client.subscribe("s", SECRET_QUERY, json!({"id":"1"})).await;
    edge.wait_for_stats(|s| s.subscriptions == 2).await;
    let before = edge.interest.live();
    assert_eq!(before.len(), 2);

    // Same roles and scopes, later exp: nothing moves.
    refresh(&mut client, admin(now() + 120)).await;
    assert_eq!(
        client.recv_json().await,
        json!({"type":"pong","payload":{"refreshed":true}})
    );
    assert_eq!(edge.interest.live(), before);

    // The admin role is gone: only `secret` ends, with FORBIDDEN naming the role.
    refresh(
        &mut client,
        json!({"sub":"u1","roles":["viewer"],"scope":"orders:read","exp": now() + 120}),
    )
    .await;
    let error = client.recv_json().await;
    assert_eq!(error["type"], "error");
    assert_eq!(error["id"], "s");
    assert_eq!(error["payload"][0]["extensions"]["code"], "FORBIDDEN");
    let message = error["payload"][0]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("role one of [admin, support]"),
        "{message}"
    );
    assert_eq!(
        client.recv_json().await,
        json!({"type":"pong","payload":{"refreshed":true}})
    );
    edge.wait_for_stats(|s| s.subscriptions == 1).await;
    // `o` moved to the shape of the new context: one live shape, not an old one.
    let after = edge.interest.live();
    assert_eq!(after.len(), 1);
    assert!(!before.contains(&after[0]));
    // The subscription id stays usable: completing it frees its interest.
    client.send_json(json!({"id":"o","type":"complete"})).await;
    edge.wait_for_stats(|s| s.subscriptions == 0 && s.shapes == 0)
        .await;
    assert!(edge.interest.live().is_empty());
}

#[tokio::test]
async fn refresh_with_invalid_token_or_other_identity_closes_4403() {
    let edge = TestEdge::start(test_config()).await;
    let mut client = edge.acked_client(admin(now() + 60)).await;
    client
        .send_json(json!({"type":"ping","payload":{"token":"not-a-jwt"}}))
        .await;
    assert_eq!(client.expect_close(4403).await, "Forbidden");

    let mut client = edge.acked_client(admin(now() + 60)).await;
    refresh(&mut client, json!({"sub":"u2","exp": now() + 60})).await;
    assert_eq!(client.expect_close(4403).await, "Forbidden");

    let mut client = edge.acked_client(admin(now() + 60)).await;
    refresh(
        &mut client,
        json!({"sub":"u1","tenant":"t9","exp": now() + 60}),
    )
    .await;
    assert_eq!(client.expect_close(4403).await, "Forbidden");
    edge.wait_for_stats(|s| s.connections == 0).await;
}

#[tokio::test]
async fn refresh_moves_the_expiry_and_plain_pings_still_echo() {
    let edge = TestEdge::start(test_config()).await;
    let mut client = edge.acked_client(admin(now() + 2)).await;
    client
        .send_json(json!({"type":"ping","payload":{"hello":1}}))
        .await;
    assert_eq!(
        client.recv_json().await,
        json!({"type":"pong","payload":{"hello":1}})
    );
    refresh(&mut client, admin(now() + 4)).await;
    assert_eq!(client.recv_json().await["type"], "pong");
    // Past the first token's expiry, the socket is still open...
    client.expect_silence(Duration::from_millis(2_500)).await;
    // ...until the refreshed token expires.
    assert_eq!(client.expect_close(4403).await, "Forbidden: token expired");
}
