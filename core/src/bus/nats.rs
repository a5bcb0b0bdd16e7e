//! [`Bus`] over core NATS (no JetStream), for cluster mode.
//!
//! The client reconnects forever with a backoff capped at [`MAX_RECONNECT_DELAY`] and
//! re-sends every live subscription after a reconnect, so subscriptions outlive a NATS
//! restart. Publishes are buffered by the client while disconnected (up to its command
//! queue, then they wait). [`NatsBus::is_connected`] follows the live connection state.

use std::str::FromStr;
use std::time::Duration;

use async_nats::connection::State;
use async_nats::{
    Client, ConnectOptions, Event, HeaderMap, HeaderName, RequestErrorKind, Subscriber,
};
use bytes::Bytes;
use futures_util::StreamExt;

use super::{Bus, BusMessage, BusSubscription};
use crate::{Error, Result};

/// Longest wait between two reconnect attempts.
pub const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(1);

/// Interval of client pings: a connection whose server stopped answering (no TCP reset,
/// e.g. a partitioned node) counts as disconnected after about three of them.
pub const PING_INTERVAL: Duration = Duration::from_secs(5);

/// Delay before reconnect attempt `attempts` (1-based): 0, then 50 ms doubling up to
/// [`MAX_RECONNECT_DELAY`].
fn reconnect_delay(attempts: usize) -> Duration {
    if attempts <= 1 {
        return Duration::ZERO;
    }
    let doublings = u32::try_from(attempts - 2).unwrap_or(u32::MAX).min(16);
    Duration::from_millis(50u64 << doublings).min(MAX_RECONNECT_DELAY)
}

/// A NATS connection shared by every publisher and subscription of one process.
///
/// Cloning is cheap and shares the connection.
#[derive(Clone)]
pub struct NatsBus {
    client: Client,
    name: String,
}

impl std::fmt::Debug for NatsBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsBus")
            .field("name", &self.name)
            .field("state", &self.client.connection_state().to_string())
            .finish()
    }
}

impl NatsBus {
    /// Connects to the NATS server(s) at `url` (comma-separated for several) as client
    /// `name` (shown in the server's connection list).
    ///
    /// Returns at once even when the server is not up yet: the connection is made in the
    /// background and retried forever; until then [`Self::is_connected`] is false and
    /// publishes are buffered. Fails only on an unusable `url`.
    pub async fn connect(url: &str, name: &str) -> Result<NatsBus> {
        let log_name = name.to_owned();
        let client = ConnectOptions::new()
            .name(name)
            .retry_on_initial_connect()
            .max_reconnects(None)
            .ping_interval(PING_INTERVAL)
            .reconnect_delay_callback(reconnect_delay)
            .event_callback(move |event| {
                let name = log_name.clone();
                async move { log_event(&name, &event) }
            })
            .connect(url)
            .await
            .map_err(|source| Error::NatsConnect {
                url: url.to_owned(),
                source,
            })?;
        Ok(NatsBus {
            client,
            name: name.to_owned(),
        })
    }

    /// Waits until everything published and subscribed so far is written to the socket.
    /// The server may not have processed it yet: see [`Self::sync`] for that.
    pub async fn flush(&self) -> Result<()> {
        self.client.flush().await.map_err(|e| Error::Nats {
            op: "flush",
            subject: String::new(),
            source: Box::new(e),
        })
    }

    /// Waits, at most `timeout`, until the server has processed everything this
    /// connection sent before: a message to a private inbox makes the round trip, and the
    /// server handles one connection's operations in order. After it, a subscription
    /// made here sees what any other connection publishes.
    pub async fn sync(&self, timeout: Duration) -> Result<()> {
        let inbox = self.client.new_inbox();
        let timed_out = || Error::RequestTimedOut {
            subject: inbox.clone(),
        };
        let round_trip = async {
            let mut sub = self
                .client
                .subscribe(inbox.clone())
                .await
                .map_err(|e| nats_error("subscribe", &inbox)(Box::new(e)))?;
            self.client
                .publish(inbox.clone(), Bytes::new())
                .await
                .map_err(|e| nats_error("publish", &inbox)(Box::new(e)))?;
            match sub.next().await {
                Some(_) => Ok(()),
                None => Err(timed_out()),
            }
        };
        tokio::time::timeout(timeout, round_trip)
            .await
            .unwrap_or_else(|_| Err(timed_out()))
    }

    /// The underlying async-nats client, for what the [`Bus`] trait does not cover.
    pub fn client(&self) -> &Client {
        &self.client
    }
}

fn log_event(name: &str, event: &Event) {
    match event {
        Event::Connected => tracing::info!(client = name, "NATS connected"),
        Event::Disconnected => tracing::warn!(client = name, "NATS disconnected; reconnecting"),
        Event::SlowConsumer(sid) => {
            tracing::warn!(client = name, sid, "NATS slow consumer: messages dropped")
        }
        other => tracing::info!(client = name, event = %other, "NATS event"),
    }
}

fn header_map(headers: &[(&str, &str)]) -> Result<HeaderMap> {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        let header = HeaderName::from_str(name).map_err(|_| Error::InvalidHeader {
            name: (*name).to_owned(),
        })?;
        map.append(header, *value);
    }
    Ok(map)
}

fn into_bus_message(msg: async_nats::Message) -> BusMessage {
    let headers = msg
        .headers
        .as_ref()
        .map(|map| {
            map.iter()
                .flat_map(|(name, values)| {
                    values
                        .iter()
                        .map(move |v| (name.to_string(), v.as_str().to_owned()))
                })
                .collect()
        })
        .unwrap_or_default();
    BusMessage {
        subject: msg.subject.to_string(),
        payload: msg.payload,
        headers,
        reply: msg.reply.map(|r| r.to_string()),
    }
}

/// Dropping the returned stream drops the [`Subscriber`], which unsubscribes.
fn into_stream(sub: Subscriber) -> BusSubscription {
    Box::pin(sub.map(into_bus_message))
}

fn nats_error(
    op: &'static str,
    subject: &str,
) -> impl FnOnce(Box<dyn std::error::Error + Send + Sync>) -> Error {
    move |source| Error::Nats {
        op,
        subject: subject.to_owned(),
        source,
    }
}

#[async_trait::async_trait]
impl Bus for NatsBus {
    async fn publish(&self, subject: &str, payload: Bytes) -> Result<()> {
        self.client
            .publish(subject.to_owned(), payload)
            .await
            .map_err(|e| nats_error("publish", subject)(Box::new(e)))
    }

    async fn publish_with_headers(
        &self,
        subject: &str,
        headers: &[(&str, &str)],
        payload: Bytes,
    ) -> Result<()> {
        let headers = header_map(headers)?;
        self.client
            .publish_with_headers(subject.to_owned(), headers, payload)
            .await
            .map_err(|e| nats_error("publish", subject)(Box::new(e)))
    }

    async fn request(&self, subject: &str, payload: Bytes, timeout: Duration) -> Result<Bytes> {
        let request = async_nats::Request::new()
            .payload(payload)
            .timeout(Some(timeout));
        // The client's own timeout covers a slow responder; the outer one also covers a
        // request stuck in the client's queue while disconnected.
        let sent = self.client.send_request(subject.to_owned(), request);
        match tokio::time::timeout(timeout, sent).await {
            Ok(Ok(reply)) => Ok(reply.payload),
            Ok(Err(e)) => match e.kind() {
                RequestErrorKind::TimedOut => Err(Error::RequestTimedOut {
                    subject: subject.to_owned(),
                }),
                RequestErrorKind::NoResponders => Err(Error::NoResponders {
                    subject: subject.to_owned(),
                }),
                _ => Err(nats_error("request", subject)(Box::new(e))),
            },
            Err(_) => Err(Error::RequestTimedOut {
                subject: subject.to_owned(),
            }),
        }
    }

    async fn subscribe(&self, subject: &str) -> Result<BusSubscription> {
        let sub = self
            .client
            .subscribe(subject.to_owned())
            .await
            .map_err(|e| nats_error("subscribe", subject)(Box::new(e)))?;
        Ok(into_stream(sub))
    }

    async fn queue_subscribe(&self, subject: &str, group: &str) -> Result<BusSubscription> {
        let sub = self
            .client
            .queue_subscribe(subject.to_owned(), group.to_owned())
            .await
            .map_err(|e| nats_error("subscribe", subject)(Box::new(e)))?;
        Ok(into_stream(sub))
    }

    fn is_connected(&self) -> bool {
        self.client.connection_state() == State::Connected
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconnect_backoff_starts_at_once_and_is_capped() {
        assert_eq!(reconnect_delay(0), Duration::ZERO);
        assert_eq!(reconnect_delay(1), Duration::ZERO);
        assert_eq!(reconnect_delay(2), Duration::from_millis(50));
        assert_eq!(reconnect_delay(3), Duration::from_millis(100));
        assert_eq!(reconnect_delay(10), MAX_RECONNECT_DELAY);
        assert_eq!(reconnect_delay(usize::MAX), MAX_RECONNECT_DELAY);
    }

    #[test]
    fn bad_header_names_are_errors_not_panics() {
        assert!(header_map(&[("traceparent", "00-1-2-01")]).is_ok());
        let err = header_map(&[("bad:name", "x")]).expect_err("colon");
        assert!(matches!(err, Error::InvalidHeader { .. }));
    }
}
