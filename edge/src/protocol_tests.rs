//! The state machine driven through channels instead of a socket, on paused time.

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use axum::extract::ws::Message;
use fanout_core::graphql::Schema;
use fanout_core::interest::InterestSink;
use fanout_core::security::JwtVerifier;
use fanout_core::shape::{Shape, ShapeId};
use futures_util::Stream;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::PollSender;

use crate::frame_sink::MessageSink;
use crate::outbound::Outbound;
use crate::{Edge, EdgeConfig, connection};

const SDL: &str = r#"
type Query { ok: Boolean }
type Order { id: ID! status: String }
type Subscription { orderUpdated(id: ID!): Order @channel(key: "orders.{id}") }
"#;

const WAIT: Duration = Duration::from_secs(60);

#[derive(Default)]
struct CountingInterest {
    live: AtomicUsize,
    last: std::sync::Mutex<Option<ShapeId>>,
}

impl InterestSink for CountingInterest {
    fn add(&self, _edge: &str, shape: Arc<Shape>) {
        self.live.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        *self.last.lock().expect("lock") = Some(shape.id);
    }
    fn remove(&self, _edge: &str, _channel: &str, _shape: ShapeId) {
        self.live.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
    fn drop_edge(&self, _edge: &str) {}
}

struct Harness {
    edge: Arc<Edge>,
    interest: Arc<CountingInterest>,
    to_server: mpsc::Sender<Result<Message, std::io::Error>>,
    from_server: mpsc::Receiver<Message>,
    task: JoinHandle<()>,
}

fn inbound(
    rx: mpsc::Receiver<Result<Message, std::io::Error>>,
) -> impl Stream<Item = Result<Message, std::io::Error>> + Unpin {
    Box::pin(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|m| (m, rx))
    }))
}

impl Harness {
    fn start(config: EdgeConfig) -> Self {
        let schema = Arc::new(Schema::parse(SDL, "t.graphql").expect("schema"));
        let interest = Arc::new(CountingInterest::default());
        let edge = Edge::new(config, schema, JwtVerifier::anonymous(), interest.clone());
        Self::attach(edge, interest)
    }

    /// Another connection to the same edge.
    fn attach(edge: Arc<Edge>, interest: Arc<CountingInterest>) -> Self {
        let (to_server, server_rx) = mpsc::channel(64);
        let (server_tx, from_server) = mpsc::channel(1024);
        let queue = Outbound::new(edge.config.outbound_queue);
        let task = tokio::spawn(connection::run(
            edge.clone(),
            queue,
            inbound(server_rx),
            MessageSink::new(PollSender::new(server_tx)),
            true,
            None,
        ));
        Self {
            edge,
            interest,
            to_server,
            from_server,
            task,
        }
    }

    async fn send(&self, value: Value) {
        self.to_server
            .send(Ok(Message::Text(value.to_string().into())))
            .await
            .expect("server reads");
    }

    async fn recv(&mut self) -> Message {
        tokio::time::timeout(WAIT, self.from_server.recv())
            .await
            .expect("frame in time")
            .expect("connection open")
    }

    async fn recv_json(&mut self) -> Value {
        match self.recv().await {
            Message::Text(text) => serde_json::from_str(text.as_str()).expect("json"),
            other => panic!("expected text, got {other:?}"),
        }
    }

    async fn expect_close(&mut self, code: u16) {
        match self.recv().await {
            Message::Close(Some(frame)) => assert_eq!(frame.code, code, "{}", frame.reason),
            other => panic!("expected close {code}, got {other:?}"),
        }
    }

    async fn init(&mut self) {
        self.send(json!({"type":"connection_init"})).await;
        assert_eq!(self.recv_json().await, json!({"type":"connection_ack"}));
    }

    /// Waits for the connection task to end (the peer side is closed by the test).
    async fn finished(self) -> Arc<Edge> {
        drop(self.to_server);
        tokio::time::timeout(WAIT, self.task)
            .await
            .expect("connection ends")
            .expect("task");
        self.edge
    }
}

fn config() -> EdgeConfig {
    EdgeConfig {
        ping_interval: Duration::ZERO,
        ..EdgeConfig::default()
    }
}

fn delivery(shape: ShapeId, n: u64) -> fanout_proto::v1::Delivery {
    fanout_proto::v1::Delivery {
        items: vec![fanout_proto::v1::ShapePayload {
            shape_id: bytes::Bytes::copy_from_slice(&shape.0),
            payload: bytes::Bytes::from(format!(r#"{{"data":{{"n":{n}}}}}"#)),
        }],
        ..Default::default()
    }
}

async fn subscribe(h: &mut Harness, id: &str) -> ShapeId {
    let before = h.edge.stats().subscriptions;
    h.send(json!({"id": id, "type":"subscribe","payload":{
        "query":"subscription { orderUpdated(id: 1) { id } }"}}))
        .await;
    let wait = async {
        while h.edge.stats().subscriptions == before {
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(WAIT, wait).await.expect("subscribed");
    h.interest.last.lock().expect("lock").expect("a shape")
}

#[tokio::test(start_paused = true)]
async fn init_subscribe_deliver_complete() {
    let mut h = Harness::start(config());
    h.init().await;
    let shape = subscribe(&mut h, "a").await;
    h.edge.deliver(&delivery(shape, 1));
    assert_eq!(
        h.recv_json().await,
        json!({"id":"a","type":"next","payload":{"data":{"n":1}}})
    );
    h.send(json!({"id":"a","type":"complete"})).await;
    h.send(json!({"type":"ping"})).await;
    // The pong proves `complete` was handled; nothing for "a" may follow it.
    assert_eq!(h.recv_json().await, json!({"type":"pong"}));
    h.edge.deliver(&delivery(shape, 2));
    h.send(json!({"type":"ping"})).await;
    assert_eq!(h.recv_json().await, json!({"type":"pong"}));
    assert_eq!(h.edge.stats().subscriptions, 0);
    assert_eq!(h.interest.live.load(std::sync::atomic::Ordering::SeqCst), 0);
}

/// Several subscriptions of one shape on one connection (a gateway's users) share one
/// queue item per event; each still gets its own frame, and completing one stops only
/// its frames.
#[tokio::test(start_paused = true)]
async fn subscriptions_of_one_shape_on_one_connection_each_get_their_frames() {
    let mut h = Harness::start(config());
    h.init().await;
    let shape = subscribe(&mut h, "a").await;
    assert_eq!(subscribe(&mut h, "b").await, shape);
    assert_eq!(subscribe(&mut h, "c").await, shape);
    let mut other = Harness::attach(h.edge.clone(), h.interest.clone());
    other.init().await;
    assert_eq!(subscribe(&mut other, "a").await, shape);
    assert_eq!(h.interest.live.load(std::sync::atomic::Ordering::SeqCst), 1);

    assert_eq!(h.edge.deliver(&delivery(shape, 1)), 4);
    for id in ["a", "b", "c"] {
        assert_eq!(
            h.recv_json().await,
            json!({"id": id, "type":"next","payload":{"data":{"n":1}}})
        );
    }
    assert_eq!(
        other.recv_json().await,
        json!({"id":"a","type":"next","payload":{"data":{"n":1}}})
    );

    h.send(json!({"id":"b","type":"complete"})).await;
    h.send(json!({"type":"ping"})).await;
    assert_eq!(h.recv_json().await, json!({"type":"pong"}));
    assert_eq!(h.edge.deliver(&delivery(shape, 2)), 3);
    for id in ["a", "c"] {
        assert_eq!(
            h.recv_json().await,
            json!({"id": id, "type":"next","payload":{"data":{"n":2}}})
        );
    }
    h.send(json!({"type":"ping"})).await;
    assert_eq!(h.recv_json().await, json!({"type":"pong"}), "nothing for b");
    assert_eq!(
        other.recv_json().await,
        json!({"id":"a","type":"next","payload":{"data":{"n":2}}})
    );

    // The shape stays subscribed until its last subscriber on any connection is gone.
    for id in ["a", "c"] {
        h.send(json!({"id": id, "type":"complete"})).await;
    }
    h.send(json!({"type":"ping"})).await;
    assert_eq!(h.recv_json().await, json!({"type":"pong"}));
    assert_eq!(h.interest.live.load(std::sync::atomic::Ordering::SeqCst), 1);
    other.send(json!({"id":"a","type":"complete"})).await;
    other.send(json!({"type":"ping"})).await;
    assert_eq!(other.recv_json().await, json!({"type":"pong"}));
    assert_eq!(h.interest.live.load(std::sync::atomic::Ordering::SeqCst), 0);
    assert_eq!(h.edge.stats().subscriptions, 0);
}

#[tokio::test(start_paused = true)]
async fn init_timeout_closes_with_4408() {
    let mut h = Harness::start(config());
    h.expect_close(4408).await;
    let edge = h.finished().await;
    assert_eq!(edge.stats().connections, 0);
}

/// The init frame is already in the socket when the connection's task first runs, after
/// its deadline (zero here; on a busy server the task can run late): it is accepted.
#[tokio::test(start_paused = true)]
async fn init_that_arrived_before_a_late_deadline_is_accepted() {
    let mut h = Harness::start(EdgeConfig {
        init_timeout: Duration::ZERO,
        ..config()
    });
    h.to_server
        .try_send(Ok(Message::Text(
            json!({"type":"connection_init"}).to_string().into(),
        )))
        .expect("queued before the task runs");
    assert_eq!(h.recv_json().await, json!({"type":"connection_ack"}));
}

#[tokio::test(start_paused = true)]
async fn missing_pong_closes_with_4504_and_pongs_keep_it_alive() {
    let mut h = Harness::start(EdgeConfig {
        ping_interval: Duration::from_secs(15),
        pong_timeout: Duration::from_secs(10),
        ..EdgeConfig::default()
    });
    h.init().await;
    for _ in 0..3 {
        assert_eq!(h.recv_json().await, json!({"type":"ping"}));
        h.send(json!({"type":"pong"})).await;
    }
    assert_eq!(h.recv_json().await, json!({"type":"ping"}));
    h.expect_close(4504).await;
}

#[tokio::test(start_paused = true)]
async fn client_close_frees_subscriptions() {
    let mut h = Harness::start(config());
    h.init().await;
    subscribe(&mut h, "a").await;
    subscribe(&mut h, "b").await;
    h.to_server
        .send(Ok(Message::Close(None)))
        .await
        .expect("server reads");
    let interest = h.interest.clone();
    let edge = h.finished().await;
    assert_eq!(edge.stats(), crate::EdgeStats::default());
    assert_eq!(interest.live.load(std::sync::atomic::Ordering::SeqCst), 0);
}

#[tokio::test(start_paused = true)]
async fn binary_frames_close_with_4400() {
    let mut h = Harness::start(config());
    h.to_server
        .send(Ok(Message::Binary(bytes::Bytes::from_static(b"{}"))))
        .await
        .expect("server reads");
    h.expect_close(4400).await;
}

#[tokio::test(start_paused = true)]
async fn overflowing_queue_closes_with_4503_and_frees_subscriptions() {
    let mut h = Harness::start(EdgeConfig {
        outbound_queue: 2,
        ..config()
    });
    h.init().await;
    let shape = subscribe(&mut h, "a").await;
    for n in 0..5 {
        h.edge.deliver(&delivery(shape, n));
    }
    h.expect_close(4503).await;
    let edge = h.finished().await;
    assert_eq!(edge.stats(), crate::EdgeStats::default());
}

#[tokio::test(start_paused = true)]
async fn drain_closes_each_connection_with_1012_evenly_over_the_window() {
    let first = Harness::start(EdgeConfig {
        drain_window: Duration::from_secs(4),
        ..config()
    });
    let (edge, interest) = (first.edge.clone(), first.interest.clone());
    let mut conns = vec![first];
    for _ in 0..3 {
        conns.push(Harness::attach(edge.clone(), interest.clone()));
    }
    for h in &mut conns {
        h.init().await;
        subscribe(h, "a").await;
    }
    assert_eq!(edge.stats().subscriptions, 4);

    let start = tokio::time::Instant::now();
    let drain = tokio::spawn(edge.clone().drain());
    let closes = futures_util::future::join_all(conns.iter_mut().map(|h| async move {
        h.expect_close(1012).await;
        start.elapsed()
    }))
    .await;
    let mut closes = closes;
    closes.sort();
    assert_eq!(closes, [1, 2, 3, 4].map(Duration::from_secs));
    tokio::time::timeout(WAIT, drain)
        .await
        .expect("drain ends")
        .expect("task");
    assert!(edge.is_draining());
    for h in conns {
        h.finished().await;
    }
    assert_eq!(edge.stats(), crate::EdgeStats::default());
    assert_eq!(interest.live.load(std::sync::atomic::Ordering::SeqCst), 0);

    // A connection that got through while the drain started closes at once.
    let mut late = Harness::attach(edge.clone(), interest);
    late.expect_close(1012).await;
}

#[tokio::test]
async fn a_drain_request_refuses_new_connections_before_the_drain_task_runs() {
    let first = Harness::start(config());
    let (edge, interest) = (first.edge.clone(), first.interest.clone());
    let requested = tokio_util::sync::CancellationToken::new();
    edge.follow_drain_request(requested.clone());
    assert!(!edge.is_draining());
    requested.cancel();
    // The admin `/drain` answered 202; `Edge::drain` has not run yet.
    assert!(edge.is_draining());
    let mut late = Harness::attach(edge, interest);
    late.expect_close(1012).await;
}
