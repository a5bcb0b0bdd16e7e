//! The publishing side: Fanout's gRPC `PublishStream`, or HTTP POST for peers.
//!
//! Events go round-robin over the channels (event n goes to channel n % C with sequence
//! number n / C + 1), paced to `--rate` events per second or as fast as the server takes
//! them.

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
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    pub field: Field,
    pub channels: usize,
    pub events: u64,
    pub rate: u64,
}

impl Schedule {
    pub fn from_args(args: &Args) -> Self {
        Self {
            field: args.field,
            channels: args.channels,
            events: args.events,
            rate: args.rate,
        }
    }

    fn total(&self) -> u64 {
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

    async fn pace(&self, started: Instant, n: u64) {
        if self.rate > 0 {
            let due = started + Duration::from_secs_f64(n as f64 / self.rate as f64);
            tokio::time::sleep_until(due.into()).await;
        }
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
    let requests = futures_util::stream::unfold(0u64, move |n| async move {
        if n >= schedule.total() {
            return None;
        }
        schedule.pace(started, n).await;
        let (channel, payload) = schedule.event(n);
        let request = PublishRequest {
            channel,
            payload: payload.to_string().into_bytes().into(),
            ..Default::default()
        };
        Some((request, n + 1))
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
    for n in 0..schedule.total() {
        schedule.pace(started, n).await;
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
    }
    Ok(schedule.total())
}
