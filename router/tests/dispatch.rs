//! The router end to end in-process: publish → partition owner → index → dispatch →
//! deliveries on the in-memory bus.

use std::sync::Arc;
use std::time::Duration;

use fanout_core::bus::{Bus, MemoryBus};
use fanout_core::graphql::{Schema, SubscribeRequest, prepare};
use fanout_core::interest::InterestSink;
use fanout_core::security::SecurityContext;
use fanout_core::shape::Shape;
use fanout_core::subject;
use fanout_proto::v1::{Delivery, PublishRequest, ResolveTask};
use fanout_router::{Router, RouterConfig};
use futures_util::StreamExt;
use prost::Message;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

const SDL: &str = r#"
type Msg { text: String!, n: Int }
type Query { ok: Boolean }
type Subscription {
  msg(room: String!): Msg @channel(key: "chat.{room}")
  enriched(room: String!): Msg @channel(key: "chat.{room}")
}
"#;

fn shape(schema: &Schema, query: &str, tenant: &str) -> Arc<Shape> {
    let request = SubscribeRequest {
        query: query.into(),
        ..Default::default()
    };
    let prepared = prepare(schema, &request).expect("valid subscription");
    let security = SecurityContext {
        tenant: Some(tenant.into()),
        ..Default::default()
    };
    Arc::new(Shape::new(prepared, request, &security))
}

fn start(python_fields: &[&str]) -> (Arc<Router>, MemoryBus, CancellationToken) {
    let bus = MemoryBus::new();
    let shutdown = CancellationToken::new();
    let router = Router::start(
        RouterConfig {
            partitions: 4,
            python_fields: python_fields.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        },
        Arc::new(bus.clone()),
        &TaskTracker::new(),
        shutdown.clone(),
    );
    (router, bus, shutdown)
}

fn publish(channel: &str, payload: &str) -> PublishRequest {
    PublishRequest {
        channel: channel.into(),
        payload: payload.as_bytes().to_vec().into(),
        ..Default::default()
    }
}

async fn next_delivery(sub: &mut fanout_core::bus::BusSubscription) -> Delivery {
    let msg = tokio::time::timeout(Duration::from_secs(5), sub.next())
        .await
        .expect("a delivery within 5 s")
        .expect("subscription open");
    Delivery::decode(msg.payload).expect("a Delivery")
}

#[tokio::test]
async fn events_are_projected_once_per_shape_and_grouped_per_edge() {
    let schema = Schema::parse(SDL, "t.graphql").expect("schema");
    let (router, bus, _stop) = start(&[]);
    let mut e1 = bus.subscribe(&subject::edge("e1")).await.expect("sub");
    let mut e2 = bus.subscribe(&subject::edge("e2")).await.expect("sub");
    let a = shape(&schema, r#"subscription { msg(room: "r") { text } }"#, "t1");
    let b = shape(
        &schema,
        r#"subscription { m: msg(room: "r") { n text } }"#,
        "t1",
    );
    let index = router.index();
    index.add("e1", a.clone());
    index.add("e2", a.clone());
    index.add("e2", b.clone());
    assert_eq!(index.entries(), 3);

    for i in 1..=3u64 {
        let reply = router
            .publish(publish("chat.r", &format!(r#"{{"text":"hi","n":{i}}}"#)))
            .await
            .expect("published");
        assert_eq!(reply.offset, i);
    }
    for i in 1..=3u64 {
        let d1 = next_delivery(&mut e1).await;
        assert_eq!(d1.offset, i);
        assert_eq!(d1.items.len(), 1);
        let payload: serde_json::Value =
            serde_json::from_slice(&d1.items[0].payload).expect("json");
        assert_eq!(payload["data"], serde_json::json!({"msg": {"text": "hi"}}));
        assert_eq!(payload["extensions"]["fanout"]["offset"], i);
        let d2 = next_delivery(&mut e2).await;
        assert_eq!(d2.items.len(), 2);
        let bodies: Vec<serde_json::Value> = d2
            .items
            .iter()
            .map(|it| serde_json::from_slice(&it.payload).expect("json"))
            .collect();
        assert!(
            bodies
                .iter()
                .any(|p| p["data"] == serde_json::json!({"m": {"n": i, "text": "hi"}}))
        );
    }
}

#[tokio::test]
async fn interest_removal_and_edge_drop_stop_deliveries() {
    let schema = Schema::parse(SDL, "t.graphql").expect("schema");
    let (router, bus, _stop) = start(&[]);
    let mut e1 = bus.subscribe(&subject::edge("e1")).await.expect("sub");
    let a = shape(&schema, r#"subscription { msg(room: "r") { text } }"#, "t1");
    let b = shape(&schema, r#"subscription { msg(room: "s") { text } }"#, "t1");
    let index = router.index();
    index.add("e1", a.clone());
    index.add("e1", b.clone());
    index.add("e1", b.clone());
    assert_eq!(index.entries(), 2);
    index.remove("e1", a.channel(), a.id);
    assert_eq!(index.entries(), 1);
    index.drop_edge("e1");
    assert_eq!(index.entries(), 0);
    assert_eq!(index.channels(), 0);
    router
        .publish(publish("chat.r", r#"{"text":"x"}"#))
        .await
        .expect("pub");
    router
        .publish(publish("chat.s", r#"{"text":"x"}"#))
        .await
        .expect("pub");
    index.add("e1", a.clone());
    router
        .publish(publish("chat.r", r#"{"text":"after"}"#))
        .await
        .expect("pub");
    let d = next_delivery(&mut e1).await;
    assert_eq!(
        d.offset, 2,
        "only the event published after re-adding arrives"
    );
}

#[tokio::test]
async fn channels_with_python_shapes_go_to_workers_whole() {
    let schema = Schema::parse(SDL, "t.graphql").expect("schema");
    let (router, bus, _stop) = start(&["enriched"]);
    let mut tasks = bus
        .queue_subscribe(subject::RESOLVE, subject::RESOLVE_GROUP)
        .await
        .expect("sub");
    let a = shape(&schema, r#"subscription { msg(room: "r") { text } }"#, "t1");
    let b = shape(
        &schema,
        r#"subscription { enriched(room: "r") { text } }"#,
        "t1",
    );
    router.index().add("e1", a);
    router.index().add("e2", b);
    router
        .publish(PublishRequest {
            tenant: "t1".into(),
            ..publish("chat.r", r#"{"text":"x"}"#)
        })
        .await
        .expect("pub");
    let msg = tokio::time::timeout(Duration::from_secs(5), tasks.next())
        .await
        .expect("task in time")
        .expect("open");
    let task = ResolveTask::decode(msg.payload).expect("task");
    assert_eq!(task.shapes.len(), 2);
    let event = task.event.expect("event");
    assert_eq!(event.offset, 1);
    assert_eq!(event.tenant, "t1");
}

#[tokio::test]
async fn bad_publishes_are_refused_and_idempotency_keys_dedupe() {
    let (router, _bus, _stop) = start(&[]);
    for (channel, payload) in [
        ("chat.r", "not json"),
        ("chat.*", "{}"),
        ("", "{}"),
        ("a..b", "{}"),
    ] {
        let err = router
            .publish(publish(channel, payload))
            .await
            .expect_err("refused");
        assert!(
            matches!(err, fanout_router::Error::InvalidRequest(_)),
            "{err}"
        );
    }
    let keyed = |k: &str| PublishRequest {
        idempotency_key: k.into(),
        ..publish("chat.r", "{}")
    };
    let first = router.publish(keyed("k1")).await.expect("pub");
    let again = router.publish(keyed("k1")).await.expect("pub");
    let other = router.publish(keyed("k2")).await.expect("pub");
    assert_eq!(first.offset, again.offset);
    assert_eq!(other.offset, first.offset + 1);
}
