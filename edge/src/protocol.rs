//! The `graphql-transport-ws` state machine of one connection.
//!
//! [`Session::run`] reads client frames from any [`Stream`] (the socket in production,
//! a channel in tests), answers through the connection's [`Outbound`] queue and returns
//! the reason the connection ends. It owns the connection's subscriptions; dropping the
//! session removes them from the shape index, so a connection can never leak interest.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::ws::Message;
use fanout_core::graphql::{GraphQLError, SubscribeRequest, prepare};
use fanout_core::security::{SecurityContext, token_from_init_payload};
use fanout_core::shape::{Shape, ShapeId};
use futures_util::{Stream, StreamExt};
use serde_json::{Map, Value};
use tokio::time::Instant;

use crate::authorize::authorize;
use crate::close::CloseReason;
use crate::edge::Edge;
use crate::message::{self, ClientMessage, InvalidMessage};
use crate::outbound::{Outbound, Outgoing};
use crate::shape_index::{Subscriber, SubscriptionKey};

/// `extensions.code` when a connection holds too many subscriptions.
pub const LIMIT_EXCEEDED: &str = "LIMIT_EXCEEDED";

/// One active subscription of this connection.
#[derive(Debug)]
struct LocalSubscription {
    key: SubscriptionKey,
    shape: ShapeId,
    active: Arc<AtomicBool>,
}

/// Connection state after `connection_init` was accepted.
#[derive(Debug)]
struct Acknowledged {
    security: SecurityContext,
    /// When the token expires.
    expires_at: Option<Instant>,
    /// When the next server `ping` is due (`None`: keepalive disabled).
    next_ping: Option<Instant>,
    /// When an outstanding server `ping` times out.
    pong_deadline: Option<Instant>,
}

/// The protocol state of one connection.
pub struct Session {
    edge: Arc<Edge>,
    outbound: Outbound,
    init_deadline: Instant,
    init_received: bool,
    acked: Option<Acknowledged>,
    subscriptions: HashMap<String, LocalSubscription>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("acked", &self.acked.is_some())
            .field("subscriptions", &self.subscriptions.len())
            .finish_non_exhaustive()
    }
}

impl Session {
    /// A session that has just been opened.
    pub fn new(edge: Arc<Edge>, outbound: Outbound) -> Self {
        let init_deadline = Instant::now() + edge.config.init_timeout;
        Self {
            edge,
            outbound,
            init_deadline,
            init_received: false,
            acked: None,
            subscriptions: HashMap::new(),
        }
    }

    /// Runs the protocol until the connection must end, and says why.
    pub async fn run<St, E>(&mut self, inbound: &mut St) -> CloseReason
    where
        St: Stream<Item = Result<Message, E>> + Unpin,
        E: std::error::Error + 'static,
    {
        loop {
            let (expires_at, next_ping, pong_deadline) = match &self.acked {
                Some(a) => (a.expires_at, a.next_ping, a.pong_deadline),
                None => (None, None, None),
            };
            let init_deadline = (!self.init_received).then_some(self.init_deadline);
            let outcome = tokio::select! {
                biased;
                () = self.outbound.closed() => {
                    return self.outbound.reason().unwrap_or(CloseReason::Internal);
                }
                () = self.edge.closing.cancelled() => return CloseReason::GoingAway,
                () = sleep_until(init_deadline) => return CloseReason::InitTimeout,
                () = sleep_until(expires_at) => return CloseReason::TokenExpired,
                () = sleep_until(pong_deadline) => return CloseReason::KeepaliveTimeout,
                () = sleep_until(next_ping) => self.send_ping(),
                frame = inbound.next() => match frame {
                    None => Some(CloseReason::PeerClosed),
                    Some(Err(e)) if is_message_too_big(&e) => Some(CloseReason::MessageTooBig),
                    Some(Err(e)) => {
                        tracing::debug!(error = %e, "socket read failed");
                        Some(CloseReason::PeerClosed)
                    }
                    Some(Ok(frame)) => self.on_frame(frame),
                },
            };
            if let Some(reason) = outcome {
                return reason;
            }
        }
    }

    fn on_frame(&mut self, frame: Message) -> Option<CloseReason> {
        match frame {
            Message::Text(text) => match ClientMessage::parse(text.as_str()) {
                Ok(msg) => self.on_message(msg),
                Err(InvalidMessage(why)) => Some(CloseReason::InvalidMessage(why)),
            },
            Message::Binary(_) => Some(CloseReason::InvalidMessage(
                "Binary messages are not supported",
            )),
            // WebSocket-level pings are answered by the socket itself.
            Message::Ping(_) | Message::Pong(_) => None,
            Message::Close(_) => Some(CloseReason::PeerClosed),
        }
    }

    fn on_message(&mut self, msg: ClientMessage) -> Option<CloseReason> {
        match msg {
            ClientMessage::ConnectionInit { payload } => self.on_init(payload.as_ref()),
            ClientMessage::Ping { payload } => {
                self.send(Outgoing::text(message::pong(payload.as_ref())));
                None
            }
            ClientMessage::Pong => {
                if let Some(acked) = &mut self.acked {
                    acked.pong_deadline = None;
                }
                None
            }
            ClientMessage::Subscribe { id, payload } => self.on_subscribe(id, payload),
            ClientMessage::Complete { id } => {
                self.unsubscribe(&id);
                None
            }
        }
    }

    fn on_init(&mut self, payload: Option<&Map<String, Value>>) -> Option<CloseReason> {
        if self.init_received {
            return Some(CloseReason::TooManyInitRequests);
        }
        self.init_received = true;
        let token = token_from_init_payload(payload);
        let (security, exp) = match self.edge.verifier.verify(token.as_deref()) {
            Ok(verified) => verified,
            Err(e) => {
                tracing::debug!(reason = %e, "connection_init refused");
                return Some(CloseReason::Forbidden);
            }
        };
        let now = Instant::now();
        let interval = self.edge.config.ping_interval;
        self.acked = Some(Acknowledged {
            security,
            expires_at: exp.map(|exp| now + until_unix(exp)),
            next_ping: (!interval.is_zero()).then(|| now + interval),
            pong_deadline: None,
        });
        self.send(Outgoing::text_static(message::CONNECTION_ACK));
        None
    }

    fn send_ping(&mut self) -> Option<CloseReason> {
        let now = Instant::now();
        let interval = self.edge.config.ping_interval;
        let pong_timeout = self.edge.config.pong_timeout;
        if let Some(acked) = &mut self.acked {
            acked.next_ping = Some(now + interval);
            acked.pong_deadline.get_or_insert(now + pong_timeout);
        }
        self.send(Outgoing::text_static(message::PING));
        None
    }

    fn on_subscribe(&mut self, id: String, request: SubscribeRequest) -> Option<CloseReason> {
        let Some(acked) = &self.acked else {
            return Some(CloseReason::Unauthorized);
        };
        if self.subscriptions.contains_key(&id) {
            return Some(CloseReason::DuplicateSubscriber(id));
        }
        let limit = self.edge.config.max_subscriptions_per_connection;
        if self.subscriptions.len() >= limit {
            let error = GraphQLError::new(format!(
                "subscription limit reached: at most {limit} subscriptions per connection"
            ))
            .with_code(LIMIT_EXCEEDED);
            self.send_error(&id, &[error]);
            return None;
        }
        let prepared = match prepare(&self.edge.schema, &request) {
            Ok(prepared) => prepared,
            Err(errors) => {
                self.send_error(&id, &errors);
                return None;
            }
        };
        if let Err(error) = authorize(&prepared.field, &acked.security) {
            self.send_error(&id, &[error]);
            return None;
        }
        let shape = Arc::new(Shape::new(prepared, request, &acked.security));
        let shape_id = shape.id;
        let key = self.edge.next_subscription_key();
        let active = Arc::new(AtomicBool::new(true));
        let subscriber = Subscriber {
            outbound: self.outbound.clone(),
            prefix: message::next_prefix(&id),
            active: active.clone(),
        };
        let edge = &self.edge;
        edge.index.insert(
            shape,
            key,
            subscriber,
            edge.interest.as_ref(),
            &edge.config.edge_id,
        );
        edge.subscription_added();
        self.subscriptions.insert(
            id,
            LocalSubscription {
                key,
                shape: shape_id,
                active,
            },
        );
        None
    }

    /// Stops delivery for `id` at once; unknown ids are ignored.
    fn unsubscribe(&mut self, id: &str) {
        if let Some(sub) = self.subscriptions.remove(id) {
            self.release(sub);
        }
    }

    fn release(&self, sub: LocalSubscription) {
        sub.active.store(false, Ordering::Release);
        let edge = &self.edge;
        if edge.index.remove(
            sub.shape,
            sub.key,
            edge.interest.as_ref(),
            &edge.config.edge_id,
        ) {
            edge.subscription_removed();
        }
    }

    fn send_error(&self, id: &str, errors: &[GraphQLError]) {
        self.send(Outgoing::text(message::error(id, errors)));
    }

    fn send(&self, item: Outgoing) {
        // A full queue closes the connection; `run` notices on its next turn.
        self.outbound.send(item);
    }

    /// Number of active subscriptions.
    pub fn subscription_count(&self) -> usize {
        self.subscriptions.len()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        for (_, sub) in std::mem::take(&mut self.subscriptions) {
            self.release(sub);
        }
    }
}

/// Time from now until Unix second `exp` (zero if it has passed).
fn until_unix(exp: u64) -> Duration {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    Duration::from_secs(exp).saturating_sub(now)
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Whether a read failed because a message exceeded the configured size.
fn is_message_too_big(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(tungstenite::Error::Capacity(_)) = e.downcast_ref::<tungstenite::Error>() {
            return true;
        }
        current = e.source();
    }
    false
}

#[cfg(test)]
#[path = "protocol_tests.rs"]
mod tests;
