//! The subscribing side: a swarm of graphql-transport-ws connections in this process.
//!
//! Each connection sends `connection_init`, subscribes its share of subscriptions, and
//! confirms with a ping round trip that the server registered them before the swarm
//! reports ready. It then counts `next` messages per subscription (sequence numbers
//! detect duplicates and reordering) until it has all it expects or the swarm stops.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use serde::Deserialize;
use serde_json::json;
use serde_json::value::RawValue;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinHandle;

use crate::args::{Args, Field};
use crate::clock::now_us;
use crate::tally::Tally;
use crate::workload;
use crate::ws_client::{Incoming, WsClient};

/// What the connections of this process do.
#[derive(Debug, Clone)]
pub struct Plan {
    pub urls: Vec<String>,
    pub connections: usize,
    /// Global index of this process's first connection.
    pub offset: usize,
    pub subscriptions: usize,
    pub channels: usize,
    pub shapes: usize,
    pub field: Field,
    /// Events per subscription to wait for; `None` holds the connection until stopped.
    pub expect: Option<u64>,
    pub source_ip: Option<IpAddr>,
    pub connect_concurrency: usize,
    /// `next` frames received by every connection of this process, counted live when
    /// the publisher is paced by them (`--window`).
    pub received: Option<Arc<AtomicU64>>,
}

impl Plan {
    pub fn from_args(args: &Args, connections: usize, offset: usize) -> Self {
        Self {
            urls: args.urls.clone(),
            connections,
            offset,
            subscriptions: args.subscriptions,
            channels: args.channels,
            shapes: args.shapes,
            field: args.field,
            expect: (!args.idle).then_some(args.events),
            source_ip: args.source_ip,
            connect_concurrency: args.connect_concurrency,
            received: (args.window > 0).then(|| Arc::new(AtomicU64::new(0))),
        }
    }
}

/// The running connections of this process.
pub struct Swarm {
    /// The live count of `next` frames, when the plan keeps one.
    pub received: Option<Arc<AtomicU64>>,
    tasks: Vec<JoinHandle<Tally>>,
    ready: mpsc::Receiver<bool>,
    done: mpsc::UnboundedReceiver<()>,
    stop: watch::Sender<bool>,
    connections: usize,
}

impl Swarm {
    pub fn start(plan: Plan) -> Self {
        let (ready_tx, ready) = mpsc::channel(plan.connections.max(1));
        let (done_tx, done) = mpsc::unbounded_channel();
        let (stop, stop_rx) = watch::channel(false);
        let gate = Arc::new(Semaphore::new(plan.connect_concurrency));
        let received = plan.received.clone();
        let plan = Arc::new(plan);
        let tasks = (0..plan.connections)
            .map(|i| {
                let conn = Connection {
                    plan: plan.clone(),
                    index: plan.offset + i,
                };
                let signals = Signals {
                    gate: gate.clone(),
                    ready: Some(ready_tx.clone()),
                    done: done_tx.clone(),
                    stop: stop_rx.clone(),
                };
                tokio::spawn(conn.run(signals))
            })
            .collect();
        Self {
            received,
            tasks,
            ready,
            done,
            stop,
            connections: plan.connections,
        }
    }

    /// Waits until every connection has subscribed or failed. Returns how many did not
    /// get ready (failed, or still pending after `within`).
    pub async fn ready(&mut self, within: Duration) -> usize {
        let deadline = tokio::time::Instant::now() + within;
        let (mut ok, mut seen) = (0, 0);
        while seen < self.connections {
            match tokio::time::timeout_at(deadline, self.ready.recv()).await {
                Ok(Some(success)) => {
                    seen += 1;
                    ok += usize::from(success);
                }
                Ok(None) | Err(_) => break,
            }
        }
        self.connections - ok
    }

    /// Waits up to `drain` for every connection to receive what it expects, then stops
    /// them all and adds up what they saw.
    pub async fn finish(mut self, drain: Duration) -> Tally {
        let deadline = tokio::time::Instant::now() + drain;
        let mut finished = 0;
        while finished < self.connections {
            match tokio::time::timeout_at(deadline, self.done.recv()).await {
                Ok(Some(())) => finished += 1,
                Ok(None) | Err(_) => break,
            }
        }
        let _ = self.stop.send(true);
        let mut total = Tally::new();
        for task in self.tasks {
            match task.await {
                Ok(t) => total.merge(&t),
                Err(e) => {
                    total.failed_connections += 1;
                    total.note_error(format!("connection task panicked: {e}"));
                }
            }
        }
        total
    }
}

/// How a connection talks to its swarm.
struct Signals {
    /// Limits handshakes in flight; held until the connection is subscribed.
    gate: Arc<Semaphore>,
    /// Taken when the connection reports ready (true) or failed before that (false).
    ready: Option<mpsc::Sender<bool>>,
    done: mpsc::UnboundedSender<()>,
    stop: watch::Receiver<bool>,
}

/// A frame from the server; borrowed, the payload left unparsed.
struct Frame<'a> {
    kind: &'a str,
    id: Option<&'a str>,
    payload: Option<&'a str>,
}

/// Any frame, parsed as JSON (whatever the key order and spacing).
#[derive(Deserialize)]
struct JsonFrame<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    #[serde(default)]
    id: Option<&'a str>,
    #[serde(default, borrow)]
    payload: Option<&'a RawValue>,
}

impl<'a> From<JsonFrame<'a>> for Frame<'a> {
    fn from(f: JsonFrame<'a>) -> Self {
        Self {
            kind: f.kind,
            id: f.id,
            payload: f.payload.map(RawValue::get),
        }
    }
}

/// `(id, payload)` of a `next` frame written compactly with the payload last:
/// `{"id":"<id>","type":"next","payload":<payload>}` (Fanout, graphql-ws, Strawberry) or
/// `{"type":"next","id":"<id>","payload":<payload>}` (async-graphql); `None` for
/// anything else, which then goes through the JSON parser. Reading the commonest frame
/// without a parse keeps the generator's share of the machine small, and every server
/// in the comparison gets the same shortcut.
fn split_next(text: &str) -> Option<(&str, &str)> {
    let (id_and_rest, after_id) = if let Some(rest) = text.strip_prefix(r#"{"id":""#) {
        (rest, r#"","type":"next","payload":"#)
    } else {
        let rest = text.strip_prefix(r#"{"type":"next","id":""#)?;
        (rest, r#"","payload":"#)
    };
    let end = id_and_rest.find(['"', '\\'])?;
    let (id, rest) = id_and_rest.split_at(end);
    let payload = rest.strip_prefix(after_id)?.strip_suffix('}')?;
    Some((id, payload))
}

struct Connection {
    plan: Arc<Plan>,
    index: usize,
}

/// Per-subscription sequence state.
struct Sub {
    last_seq: u64,
    got: u64,
}

impl Connection {
    async fn run(self, mut signals: Signals) -> Tally {
        let mut tally = Tally::new();
        tally.expected = self.plan.expect.unwrap_or(0) * self.plan.subscriptions as u64;
        if let Err(e) = self.session(&mut tally, &mut signals).await {
            tally.failed_connections += 1;
            tally.note_error(format!("connection {}: {e:#}", self.index));
        }
        if let Some(ready) = signals.ready.take() {
            let _ = ready.send(false).await;
        }
        let _ = signals.done.send(());
        tally
    }

    async fn session(&self, tally: &mut Tally, signals: &mut Signals) -> anyhow::Result<()> {
        let plan = &*self.plan;
        let url = &plan.urls[self.index % plan.urls.len()];
        let permit = signals.gate.clone().acquire_owned().await?;
        let mut ws = WsClient::connect(url, plan.source_ip)
            .await
            .with_context(|| format!("connecting to {url}"))?;
        ws.send_text(&json!({"type": "connection_init"}).to_string())
            .await?;
        let mut permit = Some(permit);
        let mut subs: Vec<Sub> = (0..plan.subscriptions)
            .map(|_| Sub {
                last_seq: 0,
                got: 0,
            })
            .collect();
        let expect = plan.expect;
        let mut complete = 0usize;
        // One stop future for the whole session, polled only when no frame is waiting.
        let mut stop_rx = signals.stop.clone();
        let stop = stop_rx.wait_for(|s| *s);
        tokio::pin!(stop);
        loop {
            let range = match ws.next_message().await? {
                Some(Incoming::Text(range)) => range,
                Some(Incoming::Close(code, reason)) => {
                    anyhow::bail!("closed by the server: {code:?} {reason}")
                }
                None => {
                    let more = tokio::select! {
                        biased;
                        more = ws.fill() => Some(more?),
                        _ = &mut stop => None,
                    };
                    match more {
                        Some(true) => continue,
                        Some(false) => anyhow::bail!("closed by the server"),
                        None => {
                            let _ = ws.close().await;
                            return Ok(());
                        }
                    }
                }
            };
            let text = ws.text(range);
            let text = std::str::from_utf8(text).context("text frame is not UTF-8")?;
            let frame = match split_next(text) {
                Some((id, payload)) => Frame {
                    kind: "next",
                    id: Some(id),
                    payload: Some(payload),
                },
                None => serde_json::from_str::<JsonFrame>(text)
                    .context("bad frame")?
                    .into(),
            };
            match frame.kind {
                "next" => {
                    let now = now_us();
                    let sub = frame
                        .id
                        .and_then(|id| id.parse::<usize>().ok())
                        .and_then(|i| subs.get_mut(i))
                        .context("`next` for an unknown subscription id")?;
                    let raw = frame.payload.unwrap_or_default();
                    let Some((seq, sent)) = workload::find_stamp(raw) else {
                        tally.note_error(format!("`next` without a stamp: {raw}"));
                        continue;
                    };
                    tally.record_latency(now.saturating_sub(sent));
                    tally.received += 1;
                    if let Some(received) = &plan.received {
                        received.fetch_add(1, Ordering::Relaxed);
                    }
                    tally.last_delivery_us = now;
                    if seq == sub.last_seq {
                        tally.duplicates += 1;
                    } else if seq < sub.last_seq {
                        tally.out_of_order += 1;
                    }
                    sub.last_seq = sub.last_seq.max(seq);
                    sub.got += 1;
                    if Some(sub.got) == expect {
                        complete += 1;
                        if complete == subs.len() {
                            let _ = ws.close().await;
                            return Ok(());
                        }
                    }
                }
                "connection_ack" => {
                    for j in 0..plan.subscriptions {
                        let g = self.index * plan.subscriptions + j;
                        let query = workload::document(
                            plan.field,
                            g % plan.channels,
                            g % plan.shapes,
                            plan.shapes,
                        );
                        let msg = json!({"id": j.to_string(), "type": "subscribe", "payload": {"query": query}});
                        ws.send_text(&msg.to_string()).await?;
                    }
                    // The server handles a connection's frames in order, so the pong
                    // comes after every subscription is registered.
                    ws.send_text(&json!({"type": "ping"}).to_string()).await?;
                }
                "pong" => {
                    if let Some(ready) = signals.ready.take() {
                        drop(permit.take());
                        let _ = ready.send(true).await;
                        if expect == Some(0) {
                            return Ok(());
                        }
                    }
                }
                "ping" => {
                    ws.send_text(&json!({"type": "pong"}).to_string()).await?;
                }
                "error" => {
                    let raw = frame.payload.unwrap_or_default();
                    anyhow::bail!("subscription refused: {raw}");
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::split_next;

    #[test]
    fn splits_the_compact_next_frame_only() {
        assert_eq!(
            split_next(r#"{"id":"12","type":"next","payload":{"data":{"a":1}}}"#),
            Some(("12", r#"{"data":{"a":1}}"#))
        );
        assert_eq!(
            split_next(r#"{"type":"next","id":"7","payload":{"data":{}}}"#),
            Some(("7", r#"{"data":{}}"#))
        );
        for other in [
            r#"{"payload":{"data":{}},"id":"12","type":"next"}"#,
            r#"{"id": "12", "type": "next", "payload": {}}"#,
            r#"{"id":"12","type":"error","payload":[]}"#,
            r#"{"id":"1\"2","type":"next","payload":{}}"#,
            r#"{"type":"pong"}"#,
        ] {
            assert_eq!(split_next(other), None, "{other}");
        }
    }
}
