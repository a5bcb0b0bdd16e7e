//! Subscriptions over a real socket: subscribe, deliver, complete, errors, limits,
//! slow consumers and cleanup of interest when sockets close.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{InterestCall, ORDER_QUERY, TestEdge, WAIT, delivery, test_config};
use fanout_core::bus::{Bus, MemoryBus};
use fanout_core::shape::ShapeId;
use prost::Message as _;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

fn payload(n: u64) -> Value {
    json!({"data":{"orderUpdated":{"id":"1","status":format!("s{n}")}}})
}

/// Subscribes `id` to order `order` and returns the shape id the edge reported.
async fn subscribe_order(
    edge: &TestEdge,
    client: &mut common::Client,
    id: &str,
    order: &str,
) -> ShapeId {
    let before = edge.edge.stats().subscriptions;
    client
        .subscribe(id, ORDER_QUERY, json!({"id": order}))
        .await;
    edge.wait_for_stats(|s| s.subscriptions == before + 1).await;
    let channel = format!("orders.{order}");
    edge.interest
        .calls()
        .into_iter()
        .rev()
        .find_map(|c| match c {
            InterestCall::Add {
                channel: ch, shape, ..
            } if ch == channel => Some(shape),
            _ => None,
        })
        .expect("interest added for the channel")
}

#[tokio::test]
async fn subscribe_deliver_complete() {
    let edge = TestEdge::start(test_config()).await;
    let mut client = edge.acked_client(json!({"sub":"u1","tenant":"t1"})).await;
    let shape = subscribe_order(&edge, &mut client, "sub-\"1\"", "1").await;
    assert_eq!(
        edge.interest.calls(),
        vec![InterestCall::Add {
            edge: "edge-test".into(),
            channel: "orders.1".into(),
            shape
        }]
    );

    edge.edge.deliver(&delivery(shape, &payload(1)));
    let next = client.recv_json().await;
    assert_eq!(
        next,
        json!({"id":"sub-\"1\"","type":"next","payload": payload(1)})
    );

    // A second subscription of the same shape on the same edge shares it.
    let again = subscribe_order(&edge, &mut client, "2", "1").await;
    assert_eq!(again, shape);
    assert_eq!(
        edge.interest.calls().len(),
        1,
        "no second add for a shared shape"
    );
    assert_eq!(edge.edge.stats().shapes, 1);
    assert_eq!(edge.edge.stats().subscriptions, 2);

    // complete stops delivery for that id at once; the other keeps receiving.
    client
        .send_json(json!({"id":"sub-\"1\"","type":"complete"}))
        .await;
    edge.wait_for_stats(|s| s.subscriptions == 1).await;
    edge.edge.deliver(&delivery(shape, &payload(2)));
    let next = client.recv_json().await;
    assert_eq!(next["id"], "2");
    assert_eq!(next["payload"], payload(2));
    client.expect_silence(Duration::from_millis(100)).await;

    // Unknown ids are ignored; completing the last subscriber withdraws the shape.
    client
        .send_json(json!({"id":"nope","type":"complete"}))
        .await;
    client.send_json(json!({"id":"2","type":"complete"})).await;
    edge.wait_for_stats(|s| s.subscriptions == 0 && s.shapes == 0)
        .await;
    assert_eq!(
        edge.interest.calls().last(),
        Some(&InterestCall::Remove {
            edge: "edge-test".into(),
            channel: "orders.1".into(),
            shape
        })
    );
    // The id is free again.
    let reused = subscribe_order(&edge, &mut client, "2", "1").await;
    assert_eq!(reused, shape);
}

#[tokio::test]
async fn duplicate_id_is_closed_with_4409() {
    let edge = TestEdge::start(test_config()).await;
    let mut client = edge.acked_client(json!({"sub":"u1"})).await;
    subscribe_order(&edge, &mut client, "a1", "1").await;
    client.subscribe("a1", ORDER_QUERY, json!({"id":"2"})).await;
    assert_eq!(
        client.expect_close(4409).await,
        "Subscriber for a1 already exists"
    );
    edge.wait_for_stats(|s| s.connections == 0 && s.subscriptions == 0 && s.shapes == 0)
        .await;
    assert!(edge.interest.live().is_empty());
}

#[tokio::test]
async fn invalid_documents_get_an_error_and_free_the_id() {
    let edge = TestEdge::start(test_config()).await;
    let mut client = edge.acked_client(json!({"sub":"u1"})).await;
    for query in [
        "subscription { nope }",
        "query { ok }",
        "subscription {",
        "subscription($id: ID!) { orderUpdated(id: $id) { id } }",
    ] {
        client.subscribe("1", query, json!({})).await;
        let error = client.recv_json().await;
        assert_eq!(error["type"], "error", "{query}: {error}");
        assert_eq!(error["id"], "1");
        let errors = error["payload"].as_array().expect("errors array");
        assert!(!errors.is_empty());
        assert!(errors.iter().all(|e| e["message"].is_string()));
    }
    assert_eq!(edge.edge.stats().subscriptions, 0);
    // The id was never taken.
    subscribe_order(&edge, &mut client, "1", "1").await;
}

#[tokio::test]
async fn auth_rules_are_checked_at_subscribe_time() {
    let edge = TestEdge::start(test_config()).await;
    let query = "subscription { secret(id: 1) { id } }";

    let mut guest = edge
        .acked_client(json!({"sub":"u1","roles":["guest"],"scope":"orders:read"}))
        .await;
    guest.subscribe("1", query, json!({})).await;
    let error = guest.recv_json().await;
    assert_eq!(error["type"], "error");
    assert_eq!(
        error["payload"][0]["message"],
        "forbidden: subscription to secret requires role one of [admin, support]"
    );
    assert_eq!(error["payload"][0]["extensions"]["code"], "FORBIDDEN");

    let mut no_scope = edge
        .acked_client(json!({"sub":"u2","roles":["admin"]}))
        .await;
    no_scope.subscribe("1", query, json!({})).await;
    let error = no_scope.recv_json().await;
    assert_eq!(
        error["payload"][0]["message"],
        "forbidden: subscription to secret requires scope orders:read"
    );
    assert_eq!(edge.edge.stats().subscriptions, 0);

    let mut admin = edge
        .acked_client(json!({"sub":"u3","roles":["admin"],"scope":"orders:read"}))
        .await;
    admin.subscribe("1", query, json!({})).await;
    edge.wait_for_stats(|s| s.subscriptions == 1).await;
}

#[tokio::test]
async fn subscription_limit_is_enforced_per_connection() {
    let config = fanout_edge::EdgeConfig {
        max_subscriptions_per_connection: 2,
        ..test_config()
    };
    let edge = TestEdge::start(config).await;
    let mut client = edge.acked_client(json!({"sub":"u1"})).await;
    subscribe_order(&edge, &mut client, "1", "1").await;
    subscribe_order(&edge, &mut client, "2", "2").await;
    client.subscribe("3", ORDER_QUERY, json!({"id":"3"})).await;
    let error = client.recv_json().await;
    assert_eq!(error["type"], "error");
    assert_eq!(error["id"], "3");
    assert_eq!(error["payload"][0]["extensions"]["code"], "LIMIT_EXCEEDED");
    // Freeing one makes room again.
    client.send_json(json!({"id":"1","type":"complete"})).await;
    edge.wait_for_stats(|s| s.subscriptions == 1).await;
    subscribe_order(&edge, &mut client, "3", "3").await;
}

#[tokio::test]
async fn different_tenants_get_different_shapes() {
    let edge = TestEdge::start(test_config()).await;
    let mut a = edge.acked_client(json!({"sub":"u1","tenant":"a"})).await;
    let mut b = edge.acked_client(json!({"sub":"u1","tenant":"b"})).await;
    let shape_a = subscribe_order(&edge, &mut a, "1", "1").await;
    let shape_b = subscribe_order(&edge, &mut b, "1", "1").await;
    assert_ne!(shape_a, shape_b);
    edge.edge.deliver(&delivery(shape_a, &payload(1)));
    assert_eq!(a.recv_json().await["payload"], payload(1));
    b.expect_silence(Duration::from_millis(100)).await;
}

#[tokio::test]
async fn closed_sockets_free_subscriptions_and_interest() {
    let edge = TestEdge::start(test_config()).await;
    let mut a = edge.acked_client(json!({"sub":"u1"})).await;
    let mut b = edge.acked_client(json!({"sub":"u2"})).await;
    subscribe_order(&edge, &mut a, "1", "1").await;
    subscribe_order(&edge, &mut a, "2", "2").await;
    subscribe_order(&edge, &mut b, "1", "1").await;
    assert_eq!(edge.interest.live().len(), 3);

    a.close().await;
    edge.wait_for_stats(|s| s.connections == 1 && s.subscriptions == 1)
        .await;
    assert_eq!(edge.interest.live().len(), 1);

    // An abrupt disconnect (no close frame) is cleaned up too.
    drop(b);
    edge.wait_for_stats(|s| s == fanout_edge::EdgeStats::default())
        .await;
    assert!(edge.interest.live().is_empty());
}

/// Current-thread runtime: `deliver` runs without yielding, so the writer cannot drain
/// in between and the queue overflows deterministically.
#[tokio::test]
async fn slow_consumer_is_closed_with_4503_and_others_keep_receiving() {
    let config = fanout_edge::EdgeConfig {
        outbound_queue: 4,
        ..test_config()
    };
    let edge = TestEdge::start(config).await;
    let mut slow = edge.acked_client(json!({"sub":"u1"})).await;
    let mut other = edge.acked_client(json!({"sub":"u2","tenant":"x"})).await;
    let slow_shape = subscribe_order(&edge, &mut slow, "1", "1").await;
    let other_shape = subscribe_order(&edge, &mut other, "1", "1").await;

    for n in 0..10 {
        edge.edge.deliver(&delivery(slow_shape, &payload(n)));
    }
    assert_eq!(slow.expect_close(4503).await, "Slow consumer");
    edge.wait_for_stats(|s| s.connections == 1 && s.subscriptions == 1)
        .await;
    assert_eq!(edge.interest.live(), vec![other_shape]);

    for n in 0..3 {
        edge.edge.deliver(&delivery(other_shape, &payload(n)));
        assert_eq!(other.recv_json().await["payload"], payload(n));
    }
}

/// A client that never reads: its socket buffers fill, the queue overflows and the
/// edge drops it even though the close frame cannot be written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stuck_client_is_dropped_and_cleaned_up() {
    let config = fanout_edge::EdgeConfig {
        outbound_queue: 8,
        ..test_config()
    };
    let edge = TestEdge::start(config).await;
    let mut stuck = edge.acked_client(json!({"sub":"u1"})).await;
    let shape = subscribe_order(&edge, &mut stuck, "1", "1").await;
    let big = json!({"data":{"orderUpdated":{"id":"1","status":"x".repeat(256 * 1024)}}});
    let flood = async {
        while edge.edge.stats().subscriptions > 0 {
            edge.edge.deliver(&delivery(shape, &big));
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    };
    tokio::time::timeout(WAIT, flood)
        .await
        .expect("stuck client dropped in time");
    edge.wait_for_stats(|s| s == fanout_edge::EdgeStats::default())
        .await;
    assert!(edge.interest.live().is_empty());
    drop(stuck);
}

#[tokio::test]
async fn deliveries_arrive_over_the_bus() {
    let edge = TestEdge::start(test_config()).await;
    let bus = Arc::new(MemoryBus::new());
    let stop = CancellationToken::new();
    let deliveries = tokio::spawn(edge.edge.clone().run_deliveries(bus.clone(), stop.clone()));

    let mut client = edge.acked_client(json!({"sub":"u1"})).await;
    let shape = subscribe_order(&edge, &mut client, "7", "1").await;
    let subject = fanout_core::subject::edge("edge-test");
    let body = delivery(shape, &payload(9)).encode_to_vec();
    // The delivery loop subscribes asynchronously: publish until it is seen.
    let received = async {
        loop {
            bus.publish(&subject, body.clone().into())
                .await
                .expect("publish");
            if let Ok(Some(Ok(Message::Text(text)))) = tokio::time::timeout(
                Duration::from_millis(100),
                futures_util::StreamExt::next(&mut client.ws),
            )
            .await
            {
                return serde_json::from_str::<Value>(text.as_str()).expect("json");
            }
        }
    };
    let next = tokio::time::timeout(WAIT, received)
        .await
        .expect("delivered");
    assert_eq!(next, json!({"id":"7","type":"next","payload":payload(9)}));

    // Garbage on the subject is skipped, not fatal.
    bus.publish(&subject, bytes_of(b"\xff\xff garbage"))
        .await
        .expect("publish");
    stop.cancel();
    let result = tokio::time::timeout(WAIT, deliveries)
        .await
        .expect("delivery loop stops")
        .expect("task");
    assert!(result.is_ok());
}

fn bytes_of(b: &'static [u8]) -> tokio_tungstenite::tungstenite::Bytes {
    tokio_tungstenite::tungstenite::Bytes::from_static(b)
}
