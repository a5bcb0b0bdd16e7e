//! Delivery: order, offsets, and projection onto each subscription's selection set.

use std::time::Duration;

use fanout_tests::metrics::wait_eq;
use fanout_tests::{Fanout, GqlClient, Publisher, Result, Value, bail, ensure, json, within};

const EVENTS: usize = 1000;

const WATCH: &str = r#"
subscription Watch($id: ID!, $withItems: Boolean!, $skipNote: Boolean!) {
  o: order(id: $id) {
    __typename
    ...Core
    ... on Order { amount: cents }
    items @include(if: $withItems) { sku q: qty __typename }
    note @skip(if: $skipNote)
  }
}
fragment Core on Order { id status }
"#;

fn event(i: usize) -> Value {
    json!({
        "id": "7",
        "status": format!("s{i}"),
        "cents": i,
        "items": [{ "sku": format!("k{i}"), "qty": i % 5 }, { "sku": "fixed", "qty": 1 }],
        "note": format!("n{i}"),
        "total": 1.5,
        "notInSchema": true,
    })
}

fn expected(i: usize, with_items: bool, skip_note: bool) -> Value {
    let mut o = json!({
        "__typename": "Order",
        "id": "7",
        "status": format!("s{i}"),
        "amount": i,
    });
    if with_items {
        o["items"] = json!([
            { "sku": format!("k{i}"), "q": i % 5, "__typename": "Item" },
            { "sku": "fixed", "q": 1, "__typename": "Item" },
        ]);
    }
    if !skip_note {
        o["note"] = json!(format!("n{i}"));
    }
    json!({ "o": o })
}

#[tokio::test]
async fn thousand_events_in_order_with_projection() -> Result<()> {
    let fanout = Fanout::suite(&[]).await?;
    let variants = [(true, false), (false, true), (true, false), (false, false)];
    let mut readers = Vec::new();
    for (k, &(with_items, skip_note)) in variants.iter().enumerate() {
        let mut c = GqlClient::connect_init(&fanout.ws_url).await?;
        let vars = json!({ "id": "7", "withItems": with_items, "skipNote": skip_note });
        c.subscribe("w", WATCH, Some(vars)).await?;
        readers.push((k, with_items, skip_note, c));
    }
    wait_eq(
        &fanout.admin_url,
        "fanout_edge_subscriptions",
        &[],
        variants.len() as f64,
    )
    .await?;

    let tasks: Vec<_> = readers
        .into_iter()
        .map(|(k, with_items, skip_note, mut c)| {
            tokio::spawn(async move {
                let mut got = Vec::with_capacity(EVENTS);
                for i in 0..EVENTS {
                    let p = c
                        .next_payload("w")
                        .await
                        .map_err(|e| e.context(format!("subscriber {k}, event {i}")))?;
                    got.push(p);
                }
                Ok::<_, anyhow::Error>((k, with_items, skip_note, got))
            })
        })
        .collect();

    let mut publisher = Publisher::connect(&fanout.grpc_url).await?;
    let events: Vec<Value> = (0..EVENTS).map(event).collect();
    let replies = publisher.publish_stream("order.7", &events).await?;
    let epoch = replies[0].epoch;
    for (i, r) in replies.iter().enumerate() {
        ensure!(
            r.offset == i as u64 + 1,
            "reply {i}: offsets per channel start at 1 and increase by one, got {}",
            r.offset
        );
        ensure!(
            r.epoch == epoch,
            "reply {i}: epoch changed from {epoch} to {}",
            r.epoch
        );
    }

    for task in tasks {
        let (k, with_items, skip_note, got) = within(
            Duration::from_secs(60),
            "a subscriber to receive 1000 events",
            task,
        )
        .await???;
        for (i, payload) in got.iter().enumerate() {
            let want = expected(i, with_items, skip_note);
            if payload["data"] != want {
                bail!(
                    "subscriber {k}, event {i}: data {} != expected {want}",
                    payload["data"]
                );
            }
            ensure!(
                payload.get("errors").is_none(),
                "subscriber {k}, event {i}: unexpected errors in {payload}"
            );
            let fx = &payload["extensions"]["fanout"];
            ensure!(
                fx["channel"] == "order.7"
                    && fx["offset"] == json!(i + 1)
                    && fx["epoch"] == json!(epoch),
                "subscriber {k}, event {i}: extensions.fanout {fx} != channel order.7, offset {}, epoch {epoch}",
                i + 1
            );
        }
    }
    Ok(())
}

#[tokio::test]
async fn unary_publish_offsets_are_per_channel() -> Result<()> {
    let fanout = Fanout::suite(&[]).await?;
    let mut publisher = Publisher::connect(&fanout.grpc_url).await?;
    let mut seen = Vec::new();
    for (channel, n) in [
        ("tick.a", 1),
        ("tick.b", 1),
        ("tick.a", 2),
        ("tick.a", 3),
        ("tick.b", 2),
    ] {
        let r = publisher.publish(channel, &json!({ "n": n })).await?;
        ensure!(
            r.offset == n,
            "{channel}: expected offset {n}, got {}",
            r.offset
        );
        seen.push(r);
    }
    ensure!(seen.len() == 5, "five replies");
    wait_eq(
        &fanout.admin_url,
        "fanout_router_events_published_total",
        &[],
        5.0,
    )
    .await?;
    Ok(())
}

#[tokio::test]
async fn response_fields_follow_selection_order() -> Result<()> {
    let fanout = Fanout::suite(&[]).await?;
    let mut c = GqlClient::connect_init(&fanout.ws_url).await?;
    c.subscribe(
        "o",
        r#"subscription { order(id: "9") { status note zz: id cents } }"#,
        None,
    )
    .await?;
    wait_eq(&fanout.admin_url, "fanout_edge_subscriptions", &[], 1.0).await?;
    let mut publisher = Publisher::connect(&fanout.grpc_url).await?;
    publisher
        .publish(
            "order.9",
            &json!({ "cents": 3, "id": "9", "items": [], "note": "n", "status": "paid" }),
        )
        .await?;
    c.next_payload("o").await?;
    let raw = c.last_text().to_string();
    let positions: Vec<Option<usize>> = ["\"status\"", "\"note\"", "\"zz\"", "\"cents\""]
        .iter()
        .map(|k| raw.find(k))
        .collect();
    ensure!(
        positions.iter().all(Option::is_some) && positions.windows(2).all(|w| w[0] < w[1]),
        "fields must appear in selection order (status, note, zz, cents): {raw}"
    );
    Ok(())
}

#[tokio::test]
async fn non_null_violation_nulls_the_parent_with_an_error() -> Result<()> {
    let fanout = Fanout::suite(&[]).await?;
    let mut c = GqlClient::connect_init(&fanout.ws_url).await?;
    c.subscribe(
        "o",
        r#"subscription { order(id: "8") { id status } }"#,
        None,
    )
    .await?;
    wait_eq(&fanout.admin_url, "fanout_edge_subscriptions", &[], 1.0).await?;
    let mut publisher = Publisher::connect(&fanout.grpc_url).await?;
    // `status: String!` is missing.
    publisher
        .publish("order.8", &json!({ "id": "8", "cents": 1, "items": [] }))
        .await?;
    let p = c.next_payload("o").await?;
    ensure!(
        p["data"] == json!({ "order": null }),
        "order must be null, got {p}"
    );
    let errors = p["errors"].as_array().cloned().unwrap_or_default();
    ensure!(
        !errors.is_empty(),
        "a non-null violation must come with an error: {p}"
    );
    ensure!(
        errors[0]["path"] == json!(["order", "status"]),
        "the error's path must name the null non-null field: {p}"
    );
    // The subscription lives on.
    publisher
        .publish(
            "order.8",
            &json!({ "id": "8", "status": "ok", "cents": 1, "items": [] }),
        )
        .await?;
    let p = c.next_payload("o").await?;
    ensure!(
        p["data"] == json!({ "order": { "id": "8", "status": "ok" } }),
        "got {p}"
    );
    Ok(())
}

#[tokio::test]
async fn late_subscriber_gets_only_later_events() -> Result<()> {
    let fanout = Fanout::suite(&[]).await?;
    let mut publisher = Publisher::connect(&fanout.grpc_url).await?;
    let mut early = GqlClient::connect_init(&fanout.ws_url).await?;
    early
        .subscribe("e", r#"subscription { tick(room: "late") { n } }"#, None)
        .await?;
    wait_eq(&fanout.admin_url, "fanout_edge_subscriptions", &[], 1.0).await?;
    publisher.publish("tick.late", &json!({ "n": 1 })).await?;
    ensure!(
        early.next_payload("e").await?["data"]["tick"]["n"] == 1,
        "early gets 1"
    );

    let mut late = GqlClient::connect_init(&fanout.ws_url).await?;
    late.subscribe("l", r#"subscription { tick(room: "late") { n } }"#, None)
        .await?;
    wait_eq(&fanout.admin_url, "fanout_edge_subscriptions", &[], 2.0).await?;
    publisher.publish("tick.late", &json!({ "n": 2 })).await?;
    let p = late.next_payload("l").await?;
    ensure!(
        p["data"]["tick"]["n"] == 2 && p["extensions"]["fanout"]["offset"] == 2,
        "late subscriber must start at event 2 (offset 2), got {p}"
    );
    ensure!(
        early.next_payload("e").await?["data"]["tick"]["n"] == 2,
        "early gets 2"
    );
    Ok(())
}

#[tokio::test]
async fn channels_are_isolated() -> Result<()> {
    let fanout = Fanout::suite(&[]).await?;
    let mut publisher = Publisher::connect(&fanout.grpc_url).await?;
    let mut c = GqlClient::connect_init(&fanout.ws_url).await?;
    c.subscribe("a", r#"subscription { tick(room: "one") { n } }"#, None)
        .await?;
    wait_eq(&fanout.admin_url, "fanout_edge_subscriptions", &[], 1.0).await?;
    publisher.publish("tick.two", &json!({ "n": 2 })).await?;
    publisher
        .publish("tick.one-more", &json!({ "n": 3 }))
        .await?;
    publisher.publish("tick.one", &json!({ "n": 1 })).await?;
    let p = c.next_payload("a").await?;
    ensure!(
        p["data"]["tick"]["n"] == 1,
        "only tick.one may arrive, got {p}"
    );
    c.expect_silence(Duration::from_millis(300)).await?;
    Ok(())
}

#[tokio::test]
async fn many_subscriptions_on_one_connection() -> Result<()> {
    let fanout = Fanout::suite(&[]).await?;
    let mut publisher = Publisher::connect(&fanout.grpc_url).await?;
    let mut c = GqlClient::connect_init(&fanout.ws_url).await?;
    for k in 0..10 {
        c.subscribe(
            &format!("s{k}"),
            &format!(r#"subscription {{ tick(room: "r{k}") {{ n }} }}"#),
            None,
        )
        .await?;
    }
    wait_eq(&fanout.admin_url, "fanout_edge_subscriptions", &[], 10.0).await?;
    for k in 0..10 {
        publisher
            .publish(&format!("tick.r{k}"), &json!({ "n": k }))
            .await?;
    }
    let mut seen = std::collections::BTreeMap::new();
    for _ in 0..10 {
        let msg = c.recv().await?;
        ensure!(msg["type"] == "next", "expected next, got {msg}");
        let id = msg["id"].as_str().unwrap_or_default().to_string();
        seen.insert(id, msg["payload"]["data"]["tick"]["n"].clone());
    }
    for k in 0..10 {
        ensure!(
            seen.get(&format!("s{k}")) == Some(&json!(k)),
            "s{k} got {seen:?}"
        );
    }
    Ok(())
}
