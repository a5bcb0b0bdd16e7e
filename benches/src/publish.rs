//! The publishing side: Fanout's gRPC `PublishStream`, or HTTP POST for peers.
//!
//! Events go round-robin over the channels (event n goes to channel n % C with sequence
//! number n / C + 1), paced to `--rate` events per second or as fast as the server takes
//! them.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use fanout_proto::v1::PublishRequest;
use fanout_proto::v1::publisher_client::PublisherClient;
use futures_util::StreamExt;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::args::{Args, Field};
use crate::clock::now_us;
use crate::workload;

/// What to publish.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub field: Field,
    pub channels: usize,
    pub events: u64,
    pub rate: u64,
    pub window: Option<Window>,
}

/// Closed-loop pacing (`--window`): the publisher waits while more than `events`
/// events' deliveries are outstanding.
#[derive(Debug, Clone)]
pub struct Window {
    received: Arc<AtomicU64>,
    /// Deliveries one event makes (subscriptions per channel).
    per_event: f64,
    events: u64,
}

/// How long the publisher waits with a full window and no delivery arriving before it
/// stops publishing (the report says so, and counts the rest as lost).
pub const WINDOW_STALL: Duration = Duration::from_secs(2);

impl Window {
    /// Waits until event `n` fits in the window. `false` when no delivery arrived for
    /// [`WINDOW_STALL`] while it was full: the deliveries are not coming (connections
    /// closed, for example as slow consumers), and publishing stops.
    async fn admit(&self, n: u64) -> bool {
        let mut last = self.received.load(Ordering::Relaxed);
        let mut since = Instant::now();
        loop {
            let received = self.received.load(Ordering::Relaxed);
            if (n as f64) - (received as f64 / self.per_event) < self.events as f64 {
                return true;
            }
            if received != last {
                (last, since) = (received, Instant::now());
            } else if since.elapsed() > WINDOW_STALL {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}

impl Schedule {
    pub fn from_args(args: &Args, received: Option<Arc<AtomicU64>>) -> Self {
        let subscriptions = (args.connections * args.subscriptions) as f64;
        Self {
            field: args.field,
            channels: args.channels,
            events: args.events,
            rate: args.rate,
            window: received.filter(|_| args.window > 0).map(|received| Window {
                received,
                per_event: (subscriptions / args.channels as f64).max(1.0),
                events: args.window,
            }),
        }
    }

    pub fn total(&self) -> u64 {
        self.events * self.channels as u64
    }

    /// Channel index, channel name and payload of event `n`, stamped now.
    fn event(&self, n: u64) -> (String, serde_json::Value) {
        let c = (n % self.channels as u64) as usize;
        let seq = n / self.channels as u64 + 1;
        (
            workload::channel(self.field, c),
            workload::payload(self.field, c, seq, now_us()),
        )
    }

    /// Waits until event `n` is due; `false` when the window stalled (see
    /// [`Window::admit`]).
    async fn pace(&self, started: Instant, n: u64) -> bool {
        if let Some(window) = &self.window
            && !window.admit(n).await
        {
            return false;
        }
        if self.rate > 0 {
            let due = started + Duration::from_secs_f64(n as f64 / self.rate as f64);
            tokio::time::sleep_until(due.into()).await;
        }
        true
    }
}

/// Publishes the schedule; returns the number of events published.
pub async fn run(args: &Args, schedule: Schedule) -> anyhow::Result<u64> {
    match &args.publish {
        Some(url) => http(url, schedule).await,
        None => grpc(&args.grpc, schedule).await,
    }
}

async fn grpc(endpoint: &str, schedule: Schedule) -> anyhow::Result<u64> {
    let mut client = PublisherClient::connect(endpoint.to_string())
        .await
        .with_context(|| format!("connecting to {endpoint}"))?;
    let started = Instant::now();
    let requests = futures_util::stream::unfold(0u64, move |n| {
        let schedule = schedule.clone();
        async move {
            if n >= schedule.total() || !schedule.pace(started, n).await {
                return None;
            }
            let (channel, payload) = schedule.event(n);
            let request = PublishRequest {
                channel,
                payload: payload.to_string().into_bytes().into(),
                ..Default::default()
            };
            Some((request, n + 1))
        }
    });
    let mut replies = client.publish_stream(requests).await?.into_inner();
    let mut published = 0;
    while let Some(reply) = replies.next().await {
        reply.context("publish refused")?;
        published += 1;
    }
    Ok(published)
}

/// A keep-alive HTTP/1.1 client, one request in flight: enough for a peer's tiny
/// `/publish` endpoint.
async fn http(url: &str, schedule: Schedule) -> anyhow::Result<u64> {
    let rest = url
        .strip_prefix("http://")
        .context("--publish takes an http:// URL")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/publish"),
    };
    let stream = TcpStream::connect(authority)
        .await
        .with_context(|| format!("connecting to {authority}"))?;
    stream.set_nodelay(true)?;
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    let started = Instant::now();
    let mut line = String::new();
    let mut published = 0;
    for n in 0..schedule.total() {
        if !schedule.pace(started, n).await {
            break;
        }
        let (channel, payload) = schedule.event(n);
        let body = json!({"channel": channel, "payload": payload}).to_string();
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        write.write_all(request.as_bytes()).await?;
        line.clear();
        read.read_line(&mut line).await?;
        let status = line
            .split_whitespace()
            .nth(1)
            .unwrap_or_default()
            .to_string();
        let mut length = 0usize;
        loop {
            line.clear();
            if read.read_line(&mut line).await? == 0 {
                anyhow::bail!("{url} closed the connection");
            }
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().context("bad Content-Length")?;
            }
        }
        let mut body = vec![0; length];
        read.read_exact(&mut body).await?;
        anyhow::ensure!(
            status.starts_with('2'),
            "{url} answered {status}: {}",
            String::from_utf8_lossy(&body)
        );
        published += 1;
    }
    Ok(published)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn window_holds_the_publisher_until_deliveries_arrive() {
        let received = Arc::new(AtomicU64::new(0));
        let window = Window {
            received: received.clone(),
            per_event: 10.0,
            events: 2,
        };
        // Events 0 and 1 fit in the window of 2.
        let admitted = tokio::time::timeout(Duration::from_secs(1), window.admit(1))
            .await
            .expect("within the window");
        assert!(admitted);
        let held = tokio::spawn({
            let window = window.clone();
            async move { window.admit(2).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            !held.is_finished(),
            "event 2 went out with 2 events outstanding"
        );
        // Event 0's ten deliveries arrive: one event is done.
        received.store(10, Ordering::Relaxed);
        let admitted = tokio::time::timeout(Duration::from_secs(1), held)
            .await
            .expect("released once event 0 is delivered")
            .expect("task");
        assert!(admitted, "released by a delivery, not by the stall timeout");
    }

    #[tokio::test]
    async fn window_stops_publishing_when_deliveries_stop() {
        let window = Window {
            received: Arc::new(AtomicU64::new(0)),
            per_event: 10.0,
            events: 1,
        };
        let started = Instant::now();
        let admitted = tokio::time::timeout(WINDOW_STALL * 3, window.admit(5))
            .await
            .expect("gives up after the stall time");
        assert!(!admitted, "a stalled window must stop the publisher");
        assert!(started.elapsed() >= WINDOW_STALL);
    }
}
