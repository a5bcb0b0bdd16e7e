//! In-process [`Bus`] for `fanout standalone` and tests.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use dashmap::DashMap;
use tokio::sync::mpsc;

use super::{Bus, BusMessage, BusSubscription};
use crate::Result;

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
}

fn into_stream(rx: mpsc::Receiver<BusMessage>) -> BusSubscription {
    Box::pin(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|m| (m, rx))
    }))
}

#[async_trait::async_trait]
impl Bus for MemoryBus {
    async fn publish(&self, subject: &str, payload: Bytes) -> Result<()> {
        // Collect targets first: no map guard is held across the await below.
        for tx in self.targets(subject) {
            let msg = BusMessage {
                subject: subject.to_owned(),
                payload: payload.clone(),
            };
            // A receiver that went away is not an error: it unsubscribed.
            let _ = tx.send(msg).await;
        }
        Ok(())
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
    use futures_util::StreamExt;

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
}
