//! In-process [`Bus`] for `fanout standalone` and tests.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use dashmap::DashMap;
use futures_util::StreamExt;
use tokio::sync::mpsc;

use super::{Bus, BusMessage, BusSubscription};
use crate::{Error, Result};

/// Capacity of each subscriber's queue; a full queue makes publishers wait.
const SUBSCRIBER_QUEUE: usize = 4096;

#[derive(Default)]
struct Subject {
    /// Plain subscribers: each gets every message.
    all: Vec<mpsc::Sender<BusMessage>>,
    /// Queue groups: each message goes to one live member, round robin.
    groups: Vec<(String, Vec<mpsc::Sender<BusMessage>>, Arc<AtomicUsize>)>,
}

/// In-memory bus: exact subject matching, bounded queues with backpressure.
#[derive(Clone, Default)]
pub struct MemoryBus {
    subjects: Arc<DashMap<String, Subject>>,
    /// Numbers the reply subjects of requests.
    next_inbox: Arc<AtomicU64>,
}

impl std::fmt::Debug for MemoryBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryBus")
            .field("subjects", &self.subjects.len())
            .finish()
    }
}

impl MemoryBus {
    /// An empty bus.
    pub fn new() -> Self {
        Self::default()
    }

    fn targets(&self, subject: &str) -> Vec<mpsc::Sender<BusMessage>> {
        let Some(mut entry) = self.subjects.get_mut(subject) else {
            return Vec::new();
        };
        entry.all.retain(|tx| !tx.is_closed());
        let mut out: Vec<_> = entry.all.clone();
        for (_, members, next) in &mut entry.groups {
            members.retain(|tx| !tx.is_closed());
            if !members.is_empty() {
                let i = next.fetch_add(1, Ordering::Relaxed) % members.len();
                out.push(members[i].clone());
            }
        }
        out
    }

    /// Hands `msg` to every subscriber and one member of each queue group; returns how
    /// many received it.
    async fn deliver(&self, msg: BusMessage) -> usize {
        // Collect targets first: no map guard is held across the await below.
        let targets = self.targets(&msg.subject);
        let mut delivered = 0;
        for tx in targets {
            // A receiver that went away is not an error: it unsubscribed.
            if tx.send(msg.clone()).await.is_ok() {
                delivered += 1;
            }
        }
        delivered
    }
}

fn into_stream(rx: mpsc::Receiver<BusMessage>) -> BusSubscription {
    Box::pin(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|m| (m, rx))
    }))
}

#[async_trait::async_trait]
impl Bus for MemoryBus {
    async fn publish(&self, subject: &str, payload: Bytes) -> Result<()> {
        self.deliver(BusMessage::new(subject, payload)).await;
        Ok(())
    }

    async fn publish_with_headers(
        &self,
        subject: &str,
        headers: &[(&str, &str)],
        payload: Bytes,
    ) -> Result<()> {
        let mut msg = BusMessage::new(subject, payload);
        msg.headers = headers
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect();
        self.deliver(msg).await;
        Ok(())
    }

    async fn request(&self, subject: &str, payload: Bytes, timeout: Duration) -> Result<Bytes> {
        let n = self.next_inbox.fetch_add(1, Ordering::Relaxed);
        let inbox = format!("_INBOX.memory.{n}");
        let mut replies = self.subscribe(&inbox).await?;
        let mut msg = BusMessage::new(subject, payload);
        msg.reply = Some(inbox.clone());
        let outcome = if self.deliver(msg).await == 0 {
            Err(Error::NoResponders {
                subject: subject.to_owned(),
            })
        } else {
            match tokio::time::timeout(timeout, replies.next()).await {
                Ok(Some(reply)) => Ok(reply.payload),
                Ok(None) | Err(_) => Err(Error::RequestTimedOut {
                    subject: subject.to_owned(),
                }),
            }
        };
        drop(replies);
        self.subjects.remove(&inbox);
        outcome
    }

    async fn subscribe(&self, subject: &str) -> Result<BusSubscription> {
        let (tx, rx) = mpsc::channel(SUBSCRIBER_QUEUE);
        self.subjects
            .entry(subject.to_owned())
            .or_default()
            .all
            .push(tx);
        Ok(into_stream(rx))
    }

    async fn queue_subscribe(&self, subject: &str, group: &str) -> Result<BusSubscription> {
        let (tx, rx) = mpsc::channel(SUBSCRIBER_QUEUE);
        let mut entry = self.subjects.entry(subject.to_owned()).or_default();
        match entry.groups.iter_mut().find(|(g, _, _)| g == group) {
            Some((_, members, _)) => members.push(tx),
            None => entry
                .groups
                .push((group.to_owned(), vec![tx], Arc::new(AtomicUsize::new(0)))),
        }
        Ok(into_stream(rx))
    }

    fn is_connected(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn subscribers_get_every_message_and_groups_share() {
        let bus = MemoryBus::new();
        let mut a = bus.subscribe("s").await.expect("sub");
        let mut b = bus.subscribe("s").await.expect("sub");
        let mut q1 = bus.queue_subscribe("s", "g").await.expect("sub");
        let mut q2 = bus.queue_subscribe("s", "g").await.expect("sub");
        for i in 0..4u8 {
            bus.publish("s", Bytes::from(vec![i])).await.expect("pub");
        }
        for sub in [&mut a, &mut b] {
            for i in 0..4u8 {
                assert_eq!(sub.next().await.expect("msg").payload[0], i);
            }
        }
        let mut got = Vec::new();
        for _ in 0..2 {
            got.push(q1.next().await.expect("msg").payload[0]);
            got.push(q2.next().await.expect("msg").payload[0]);
        }
        got.sort_unstable();
        assert_eq!(got, vec![0, 1, 2, 3]);
    }

    #[tokio::test]
    async fn dropped_subscription_is_forgotten() {
        let bus = MemoryBus::new();
        let sub = bus.subscribe("s").await.expect("sub");
        drop(sub);
        bus.publish("s", Bytes::from_static(b"x"))
            .await
            .expect("pub");
        assert!(bus.targets("s").is_empty());
    }

    #[tokio::test]
    async fn request_gets_the_reply_of_one_responder() {
        let bus = MemoryBus::new();
        let mut responder = bus.queue_subscribe("svc", "g").await.expect("sub");
        let answering = bus.clone();
        let task = tokio::spawn(async move {
            let msg = responder.next().await.expect("request");
            let reply = msg.reply.expect("reply subject");
            let mut answer = msg.payload.to_vec();
            answer.reverse();
            answering
                .publish(&reply, Bytes::from(answer))
                .await
                .expect("reply");
        });
        let got = bus
            .request("svc", Bytes::from_static(b"abc"), Duration::from_secs(5))
            .await
            .expect("request");
        assert_eq!(&got[..], b"cba");
        task.await.expect("responder");
        assert!(bus.subjects.iter().all(|e| !e.key().starts_with("_INBOX")));
    }

    #[tokio::test]
    async fn request_without_responders_or_reply_fails_by_kind() {
        let bus = MemoryBus::new();
        let err = bus
            .request("nobody", Bytes::new(), Duration::from_secs(1))
            .await
            .expect_err("no responders");
        assert!(matches!(err, Error::NoResponders { .. }), "{err}");

        let _silent = bus.subscribe("silent").await.expect("sub");
        let err = bus
            .request("silent", Bytes::new(), Duration::from_millis(50))
            .await
            .expect_err("timeout");
        assert!(matches!(err, Error::RequestTimedOut { .. }), "{err}");
    }

    #[tokio::test]
    async fn headers_travel_with_the_message() {
        let bus = MemoryBus::new();
        let mut sub = bus.subscribe("s").await.expect("sub");
        bus.publish_with_headers("s", &[("traceparent", "00-abc-def-01")], Bytes::new())
            .await
            .expect("pub");
        let msg = sub.next().await.expect("msg");
        assert_eq!(msg.header("TraceParent"), Some("00-abc-def-01"));
    }
}
