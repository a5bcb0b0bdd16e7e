//! `fanout-bench`: a load generator for Fanout.
//!
//! Opens `--connections` graphql-transport-ws connections, each subscribing to the
//! bundled example's `chatMessage(room:)` field on one of `--channels` rooms, then
//! publishes `--events` events per room through the gRPC `PublishStream` API. Every event
//! carries its publish timestamp and sequence number, so the generator reports
//! deliveries per second, publish→deliver latency percentiles (HDR histogram), and lost
//! or duplicated messages.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use clap::Parser;
use fanout_proto::v1::PublishRequest;
use fanout_proto::v1::publisher_client::PublisherClient;
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use tokio::sync::Mutex;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

/// Load generator for Fanout (run against `fanout standalone` with the bundled example).
#[derive(Debug, Parser)]
#[command(name = "fanout-bench", version, about)]
struct Args {
    /// WebSocket endpoint.
    #[arg(long, default_value = "ws://127.0.0.1:8080/graphql")]
    url: String,
    /// gRPC publish endpoint.
    #[arg(long, default_value = "http://127.0.0.1:50051")]
    grpc: String,
    /// WebSocket connections (one subscription each).
    #[arg(long, default_value_t = 1000)]
    connections: usize,
    /// Distinct channels (chat rooms); connection i subscribes to room i % channels.
    #[arg(long, default_value_t = 1)]
    channels: usize,
    /// Events published per channel.
    #[arg(long, default_value_t = 1000)]
    events: u64,
    /// Target publish rate in events per second over all channels; 0 = as fast as possible.
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

struct Totals {
    received: AtomicU64,
    duplicates: AtomicU64,
    out_of_order: AtomicU64,
    latency: Mutex<Histogram<u64>>,
}

async fn subscriber(
    url: String,
    room: String,
    totals: Arc<Totals>,
    ready: tokio::sync::mpsc::Sender<()>,
    expected: u64,
) -> anyhow::Result<()> {
    let mut request = url.as_str().into_client_request()?;
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        HeaderValue::from_static("graphql-transport-ws"),
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await?;
    ws.send(Message::text(json!({"type":"connection_init"}).to_string()))
        .await?;
    let mut local = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let mut last_seq = 0u64;
    let mut got = 0u64;
    while let Some(msg) = ws.next().await {
        let Message::Text(text) = msg? else { continue };
        let v: Value = serde_json::from_str(&text)?;
        match v["type"].as_str() {
            Some("connection_ack") => {
                let q = format!("subscription {{ chatMessage(room: \"{room}\") {{ text }} }}");
                ws.send(Message::text(
                    json!({"id":"1","type":"subscribe","payload":{"query": q}}).to_string(),
                ))
                .await?;
                // Subscriptions are registered synchronously by the server before it
                // reads the next frame; a ping round trip confirms it.
                ws.send(Message::text(json!({"type":"ping"}).to_string()))
                    .await?;
            }
            Some("pong") => {
                let _ = ready.send(()).await;
            }
            Some("ping") => {
                ws.send(Message::text(json!({"type":"pong"}).to_string()))
                    .await?;
            }
            Some("next") => {
                let t = v["payload"]["data"]["chatMessage"]["text"]
                    .as_str()
                    .unwrap_or_default();
                let mut parts = t.split(':');
                let seq: u64 = parts.next().and_then(|s| s.parse().ok()).unwrap_or(0);
                let sent: u64 = parts.next().and_then(|s| s.parse().ok()).unwrap_or(0);
                let _ = local.record(now_us().saturating_sub(sent).max(1));
                if seq <= last_seq {
                    if seq == last_seq {
                        totals.duplicates.fetch_add(1, Ordering::Relaxed);
                    } else {
                        totals.out_of_order.fetch_add(1, Ordering::Relaxed);
                    }
                }
                last_seq = seq;
                got += 1;
                totals.received.fetch_add(1, Ordering::Relaxed);
                if got >= expected {
                    break;
                }
            }
            Some("error") => anyhow::bail!("subscription refused: {}", v["payload"]),
            _ => {}
        }
    }
    totals.latency.lock().await.add(&local)?;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(args.channels >= 1, "--channels must be at least 1");
    let totals = Arc::new(Totals {
        received: AtomicU64::new(0),
        duplicates: AtomicU64::new(0),
        out_of_order: AtomicU64::new(0),
        latency: Mutex::new(Histogram::new_with_bounds(1, 60_000_000, 3)?),
    });
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel(args.connections.max(1));
    let mut tasks = Vec::with_capacity(args.connections);
    for i in 0..args.connections {
        let room = format!("bench{}", i % args.channels);
        tasks.push(tokio::spawn(subscriber(
            args.url.clone(),
            room,
            totals.clone(),
            ready_tx.clone(),
            args.events,
        )));
    }
    drop(ready_tx);
    for _ in 0..args.connections {
        tokio::time::timeout(Duration::from_secs(60), ready_rx.recv())
            .await
            .context("subscribers did not all get ready within 60 s")?;
    }
    let mut client = PublisherClient::connect(args.grpc.clone())
        .await
        .with_context(|| format!("connecting to {}", args.grpc))?;
    let channels = args.channels;
    let events = args.events;
    let rate = args.rate;
    let started = Instant::now();
    let requests = futures_util::stream::unfold(0u64, move |n| async move {
        let total = events * channels as u64;
        if n >= total {
            return None;
        }
        if rate > 0 {
            let due = started + Duration::from_secs_f64(n as f64 / rate as f64);
            tokio::time::sleep_until(due.into()).await;
        }
        let seq = n / channels as u64 + 1;
        let room = format!("bench{}", n % channels as u64);
        let payload = json!({"room": room, "from": "bench", "text": format!("{seq}:{}", now_us())});
        Some((
            PublishRequest {
                channel: format!("chat.{room}"),
                payload: payload.to_string().into_bytes().into(),
                ..Default::default()
            },
            n + 1,
        ))
    });
    let mut replies = client.publish_stream(requests).await?.into_inner();
    while let Some(reply) = replies.next().await {
        reply?;
    }
    let publish_secs = started.elapsed().as_secs_f64();
    let expected = args.events * args.connections as u64;
    let deadline = Instant::now() + Duration::from_secs(120);
    for t in tasks {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, t).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => eprintln!("subscriber failed: {e:#}"),
            Ok(Err(e)) => eprintln!("subscriber panicked: {e}"),
            Err(_) => break,
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let received = totals.received.load(Ordering::Relaxed);
    let h = totals.latency.lock().await;
    let report = json!({
        "connections": args.connections,
        "channels": args.channels,
        "events_per_channel": args.events,
        "published": args.events * args.channels as u64,
        "publish_seconds": publish_secs,
        "expected_deliveries": expected,
        "deliveries": received,
        "lost": expected.saturating_sub(received),
        "duplicates": totals.duplicates.load(Ordering::Relaxed),
        "out_of_order": totals.out_of_order.load(Ordering::Relaxed),
        "seconds": secs,
        "deliveries_per_second": received as f64 / secs,
        "latency_us": {
            "p50": h.value_at_quantile(0.5), "p90": h.value_at_quantile(0.9),
            "p99": h.value_at_quantile(0.99), "p999": h.value_at_quantile(0.999), "max": h.max()
        }
    });
    if args.json {
        println!("{report}");
    } else {
        println!("connections            {}", args.connections);
        println!("channels               {}", args.channels);
        println!("events published       {}", report["published"]);
        println!(
            "deliveries             {received} of {expected} (lost {}, duplicates {}, out of order {})",
            report["lost"], report["duplicates"], report["out_of_order"]
        );
        println!("deliveries/s           {:.0}", received as f64 / secs);
        println!(
            "latency p50/p90/p99    {} / {} / {} µs",
            h.value_at_quantile(0.5),
            h.value_at_quantile(0.9),
            h.value_at_quantile(0.99)
        );
        println!(
            "latency p99.9/max      {} / {} µs",
            h.value_at_quantile(0.999),
            h.max()
        );
    }
    Ok(())
}
