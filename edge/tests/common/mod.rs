//! Shared pieces of the edge's integration tests: a recording interest sink, a test
//! schema, tokens, a running server and a small WebSocket client.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fanout_core::graphql::Schema;
use fanout_core::interest::InterestSink;
use fanout_core::security::{JwtVerifier, KeySource, VerifierConfig};
use fanout_core::shape::{Shape, ShapeId};
use fanout_edge::{Edge, EdgeConfig};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Bytes, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;

/// Bound on every await in these tests.
pub const WAIT: Duration = Duration::from_secs(5);

pub const SECRET: &[u8] = b"edge-test-secret";

pub const SDL: &str = r#"
type Query { ok: Boolean }
type Order { id: ID! status: String }
type Subscription {
  orderUpdated(id: ID!): Order @channel(key: "orders.{id}")
  secret(id: ID!): Order @channel(key: "secret.{id}") @auth(roles: ["admin", "support"], scopes: ["orders:read"])
}
"#;

/// One call received by [`RecordingInterest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InterestCall {
    Add {
        edge: String,
        channel: String,
        shape: ShapeId,
    },
    Remove {
        edge: String,
        channel: String,
        shape: ShapeId,
    },
    DropEdge {
        edge: String,
    },
}

#[derive(Debug, Default)]
pub struct RecordingInterest {
    pub calls: Mutex<Vec<InterestCall>>,
}

impl RecordingInterest {
    pub fn calls(&self) -> Vec<InterestCall> {
        self.calls.lock().expect("interest lock").clone()
    }

    /// Shapes added and not removed since.
    pub fn live(&self) -> Vec<ShapeId> {
        let mut live = Vec::new();
        for call in self.calls() {
            match call {
                InterestCall::Add { shape, .. } => live.push(shape),
                InterestCall::Remove { shape, .. } => live.retain(|s| *s != shape),
                InterestCall::DropEdge { .. } => live.clear(),
            }
        }
        live
    }
}

impl InterestSink for RecordingInterest {
    fn add(&self, edge: &str, shape: Arc<Shape>) {
        self.calls
            .lock()
            .expect("interest lock")
            .push(InterestCall::Add {
                edge: edge.to_owned(),
                channel: shape.channel().to_owned(),
                shape: shape.id,
            });
    }

    fn remove(&self, edge: &str, channel: &str, shape: ShapeId) {
        self.calls
            .lock()
            .expect("interest lock")
            .push(InterestCall::Remove {
                edge: edge.to_owned(),
                channel: channel.to_owned(),
                shape,
            });
    }

    fn drop_edge(&self, edge: &str) {
        self.calls
            .lock()
            .expect("interest lock")
            .push(InterestCall::DropEdge {
                edge: edge.to_owned(),
            });
    }
}

pub fn test_config() -> EdgeConfig {
    EdgeConfig {
        edge_id: "edge-test".into(),
        init_timeout: Duration::from_secs(3),
        ping_interval: Duration::ZERO,
        ..EdgeConfig::default()
    }
}

pub fn schema() -> Arc<Schema> {
    Arc::new(Schema::parse(SDL, "test.graphql").expect("test schema parses"))
}

/// HS256 with [`SECRET`] and no leeway, so expiry tests close at `exp`.
pub fn verifier() -> JwtVerifier {
    JwtVerifier::new(VerifierConfig {
        keys: vec![KeySource::Secret(SECRET.to_vec())],
        leeway: Duration::ZERO,
        ..VerifierConfig::default()
    })
    .expect("key")
}

pub fn token(claims: Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET).expect("key"),
    )
    .expect("encode token")
}

/// A running edge on 127.0.0.1:0.
pub struct TestEdge {
    pub edge: Arc<Edge>,
    pub interest: Arc<RecordingInterest>,
    pub addr: SocketAddr,
    pub shutdown: CancellationToken,
    pub server: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl TestEdge {
    pub async fn start(config: EdgeConfig) -> Self {
        Self::start_with(config, verifier()).await
    }

    pub async fn start_with(config: EdgeConfig, verifier: JwtVerifier) -> Self {
        let interest = Arc::new(RecordingInterest::default());
        let edge = Edge::new(config, schema(), verifier, interest.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let shutdown = CancellationToken::new();
        let server = tokio::spawn(edge.clone().serve(listener, shutdown.clone()));
        Self {
            edge,
            interest,
            addr,
            shutdown,
            server,
        }
    }

    pub fn url(&self) -> String {
        format!("ws://{}{}", self.addr, self.edge.config().path)
    }

    /// A client that offered `graphql-transport-ws`.
    pub async fn client(&self) -> Client {
        self.client_with(Some("graphql-transport-ws")).await
    }

    pub async fn client_with(&self, protocol: Option<&str>) -> Client {
        let mut request = self.url().into_client_request().expect("request");
        if let Some(protocol) = protocol {
            request.headers_mut().insert(
                "Sec-WebSocket-Protocol",
                HeaderValue::from_str(protocol).expect("header"),
            );
        }
        let (ws, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(request))
            .await
            .expect("connect in time")
            .expect("connect");
        Client { ws }
    }

    /// A client past `connection_ack`, authenticated with `claims`.
    pub async fn acked_client(&self, claims: Value) -> Client {
        let mut client = self.client().await;
        client
            .send_json(json!({"type":"connection_init","payload":{"token": token(claims)}}))
            .await;
        assert_eq!(client.recv_json().await, json!({"type":"connection_ack"}));
        client
    }

    /// Waits until `check` holds for the edge's stats.
    pub async fn wait_for_stats(&self, check: impl Fn(fanout_edge::EdgeStats) -> bool) {
        let wait = async {
            while !check(self.edge.stats()) {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        if tokio::time::timeout(WAIT, wait).await.is_err() {
            panic!("stats never matched: {:?}", self.edge.stats());
        }
    }
}

pub struct Client {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Client {
    pub async fn send_text(&mut self, text: &str) {
        tokio::time::timeout(WAIT, self.ws.send(Message::text(text)))
            .await
            .expect("send in time")
            .expect("send");
    }

    pub async fn send_json(&mut self, value: Value) {
        self.send_text(&value.to_string()).await;
    }

    pub async fn send_binary(&mut self, bytes: Vec<u8>) {
        tokio::time::timeout(WAIT, self.ws.send(Message::Binary(Bytes::from(bytes))))
            .await
            .expect("send in time")
            .expect("send");
    }

    /// The next protocol message (WebSocket pings and pongs skipped).
    pub async fn recv(&mut self) -> Message {
        loop {
            let msg = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("message in time")
                .expect("socket open")
                .expect("read");
            if !matches!(msg, Message::Ping(_) | Message::Pong(_)) {
                return msg;
            }
        }
    }

    pub async fn recv_json(&mut self) -> Value {
        match self.recv().await {
            Message::Text(text) => serde_json::from_str(text.as_str()).expect("server sent JSON"),
            other => panic!("expected a text message, got {other:?}"),
        }
    }

    /// Expects the server to close with `code`; returns the reason.
    pub async fn expect_close(&mut self, code: u16) -> String {
        match self.recv().await {
            Message::Close(Some(CloseFrame { code: got, reason })) => {
                assert_eq!(u16::from(got), code, "close reason: {reason}");
                reason.as_str().to_owned()
            }
            other => panic!("expected close {code}, got {other:?}"),
        }
    }

    /// Asserts that nothing arrives within `quiet`.
    pub async fn expect_silence(&mut self, quiet: Duration) {
        if let Ok(msg) = tokio::time::timeout(quiet, self.ws.next()).await {
            panic!("expected silence, got {msg:?}");
        }
    }

    pub async fn subscribe(&mut self, id: &str, query: &str, variables: Value) {
        self.send_json(json!({
            "id": id,
            "type": "subscribe",
            "payload": {"query": query, "variables": variables}
        }))
        .await;
    }

    pub async fn close(mut self) {
        let _ = tokio::time::timeout(WAIT, self.ws.close(None)).await;
        // Read until the server's close reply ends the stream.
        let _ = tokio::time::timeout(WAIT, async { while self.ws.next().await.is_some() {} }).await;
    }
}

pub const ORDER_QUERY: &str = "subscription($id: ID!) { orderUpdated(id: $id) { id status } }";

/// A `Delivery` with one payload for `shape`.
pub fn delivery(shape: ShapeId, payload: &Value) -> fanout_proto::v1::Delivery {
    fanout_proto::v1::Delivery {
        channel: "orders.1".into(),
        items: vec![fanout_proto::v1::ShapePayload {
            shape_id: Bytes::copy_from_slice(&shape.0),
            payload: Bytes::from(payload.to_string()),
        }],
        ..Default::default()
    }
}
