//! The `graphql-transport-ws` state machine of one connection.
//!
//! [`Session::run`] reads client frames from any [`Stream`] (the socket in production,
//! a channel in tests), answers through the connection's [`Outbound`] queue and returns
//! the reason the connection ends. It owns the connection's subscriptions; dropping the
//! session removes them from the shape index, so a connection can never leak interest.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::ws::Message;
use fanout_core::graphql::{GraphQLError, SubscribeRequest, prepare_with_limits};
use fanout_core::security::{SecurityContext, Verified, token_from_payload};
use fanout_core::shape::Shape;
use futures_util::{FutureExt, Stream, StreamExt};
use serde_json::{Map, Value};
use tokio::time::Instant;

use crate::authorize::authorize;
use crate::close::CloseReason;
use crate::edge::Edge;
use crate::limits::{self, Slot, SubscribeRate};
use crate::message::{self, ClientMessage, InvalidMessage};
use crate::next_target::NextTarget;
use crate::outbound::{Outbound, Outgoing};
use crate::shape_index::Subscriber;

/// `extensions.code` when a connection holds too many subscriptions.
pub const LIMIT_EXCEEDED: &str = "LIMIT_EXCEEDED";

/// One active subscription of this connection.
#[derive(Debug)]
struct LocalSubscription {
    /// The shape it is indexed under; rebuilt when a token refresh changes the context.
    shape: Arc<Shape>,
    /// How the index knows it: this connection and the subscription's frame target.
    subscriber: Subscriber,
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
    /// This connection's place in its tenant's connection count (freed on drop).
    _tenant_slot: Option<Slot<String>>,
}

/// The protocol state of one connection.
pub struct Session {
    edge: Arc<Edge>,
    outbound: Outbound,
    init_deadline: Instant,
    init_received: bool,
    acked: Option<Acknowledged>,
    subscriptions: HashMap<String, LocalSubscription>,
    subscribe_rate: SubscribeRate,
    /// The bearer token of the upgrade request's `Authorization` header, used at
    /// `connection_init` when the payload carries none.
    upgrade_token: Option<String>,
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
        let subscribe_rate = SubscribeRate::new(&edge.config.limits);
        Self {
            edge,
            outbound,
            init_deadline,
            init_received: false,
            acked: None,
            subscriptions: HashMap::new(),
            subscribe_rate,
            upgrade_token: None,
        }
    }

    /// Sets the token of the upgrade request's `Authorization: Bearer` header; a token
    /// in the `connection_init` payload takes precedence over it.
    pub fn with_upgrade_token(mut self, token: Option<String>) -> Self {
        self.upgrade_token = token;
        self
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
                () = sleep_until(init_deadline) => {
                    self.read_ready_or(inbound, CloseReason::InitTimeout)
                }
                () = sleep_until(expires_at) => return CloseReason::TokenExpired,
                () = sleep_until(pong_deadline) => {
                    self.read_ready_or(inbound, CloseReason::KeepaliveTimeout)
                }
                () = sleep_until(next_ping) => self.send_ping(),
                frame = inbound.next() => self.on_read(frame),
            };
            if let Some(reason) = outcome {
                return reason;
            }
        }
    }

    /// At a deadline: handles a frame that is already readable, or closes with
    /// `reason`. A task that runs late on a busy server must not blame the client for
    /// its own delay. (The token's expiry does not wait for anything.)
    fn read_ready_or<St, E>(&mut self, inbound: &mut St, reason: CloseReason) -> Option<CloseReason>
    where
        St: Stream<Item = Result<Message, E>> + Unpin,
        E: std::error::Error + 'static,
    {
        match inbound.next().now_or_never() {
            Some(frame) => self.on_read(frame),
            None => Some(reason),
        }
    }

    /// One read from the socket.
    fn on_read<E>(&mut self, frame: Option<Result<Message, E>>) -> Option<CloseReason>
    where
        E: std::error::Error + 'static,
    {
        match frame {
            None => Some(CloseReason::PeerClosed),
            Some(Err(e)) if is_message_too_big(&e) => Some(CloseReason::MessageTooBig),
            Some(Err(e)) => {
                tracing::debug!(error = %e, "socket read failed");
                Some(CloseReason::PeerClosed)
            }
            Some(Ok(frame)) => self.on_frame(frame),
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
            ClientMessage::Ping { payload } => self.on_ping(payload.as_ref()),
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
        let verifier = &self.edge.verifier;
        let token =
            token_from_payload(payload, verifier.token_field()).or(self.upgrade_token.take());
        let Verified {
            context: security,
            expires_at,
        } = match verifier.verify(token.as_deref()) {
            Ok(verified) => verified,
            Err(e) => {
                tracing::debug!(reason = e.metric_label(), "connection_init refused");
                return Some(CloseReason::Forbidden);
            }
        };
        let tenant_slot = match limits::acquire_tenant(&self.edge, &security) {
            Ok(slot) => slot,
            Err(reason) => return Some(reason),
        };
        let now = Instant::now();
        let interval = self.edge.config.ping_interval;
        self.acked = Some(Acknowledged {
            security,
            expires_at: expires_at.map(instant_of),
            next_ping: (!interval.is_zero()).then(|| now + interval),
            pong_deadline: None,
            _tenant_slot: tenant_slot,
        });
        self.send(Outgoing::text_static(message::CONNECTION_ACK));
        None
    }

    /// A client `ping`: answered with `pong`. On an acknowledged connection with
    /// authentication on, a payload carrying a token (the same field as
    /// `connection_init`) refreshes the connection's credentials first.
    fn on_ping(&mut self, payload: Option<&Map<String, Value>>) -> Option<CloseReason> {
        let token = match &self.acked {
            Some(_) if self.edge.verifier.is_configured() => {
                token_from_payload(payload, self.edge.verifier.token_field())
            }
            _ => None,
        };
        let Some(token) = token else {
            self.send(Outgoing::text(message::pong(payload)));
            return None;
        };
        if let Some(reason) = self.refresh(&token) {
            return Some(reason);
        }
        // The token is not echoed back.
        let mut refreshed = Map::new();
        refreshed.insert("refreshed".into(), Value::Bool(true));
        self.send(Outgoing::text(message::pong(Some(&refreshed))));
        None
    }

    /// Replaces the connection's credentials with `token`'s. An invalid token, or one
    /// of another subject or tenant, closes with 4403. The expiry timer moves to the
    /// new token's; every subscription is checked against the new claims: those no
    /// longer allowed end with an `error`, the others move to the shape of the new
    /// context.
    fn refresh(&mut self, token: &str) -> Option<CloseReason> {
        let verified = match self.edge.verifier.verify(Some(token)) {
            Ok(verified) => verified,
            Err(e) => {
                tracing::debug!(reason = e.metric_label(), "token refresh refused");
                return Some(CloseReason::Forbidden);
            }
        };
        let acked = self.acked.as_mut()?;
        if verified.context.subject != acked.security.subject
            || verified.context.tenant != acked.security.tenant
        {
            tracing::debug!("token refresh refused: subject or tenant changed");
            return Some(CloseReason::Forbidden);
        }
        acked.expires_at = verified.expires_at.map(instant_of);
        if verified.context != acked.security {
            acked.security = verified.context;
            self.reauthorize();
        }
        None
    }

    /// Re-checks every subscription against the current context after a refresh.
    fn reauthorize(&mut self) {
        let Some(acked) = &self.acked else {
            return;
        };
        let security = acked.security.clone();
        let ids: Vec<String> = self.subscriptions.keys().cloned().collect();
        for id in ids {
            let Some(sub) = self.subscriptions.remove(&id) else {
                continue;
            };
            if let Err(error) = authorize(&sub.shape.prepared.field, &security) {
                self.release(sub);
                self.send_error(&id, &[error]);
                continue;
            }
            let shape = Shape::new(
                sub.shape.prepared.clone(),
                sub.shape.request.clone(),
                &security,
            );
            if shape.id == sub.shape.id {
                self.subscriptions.insert(id, sub);
                continue;
            }
            // The new shape is indexed before the old one is dropped, so no event is
            // missed; one in flight during the swap may arrive twice (same offset).
            let moved = self.index_subscription(&id, Arc::new(shape));
            self.release(sub);
            self.subscriptions.insert(id, moved);
        }
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
        if let Err(error) = self.subscribe_rate.check() {
            self.send_error(&id, &[error]);
            return None;
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
        let query_limits = &self.edge.config.limits.query;
        let prepared = match prepare_with_limits(&self.edge.schema, &request, query_limits) {
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
        let sub = self.index_subscription(&id, shape);
        self.subscriptions.insert(id, sub);
        None
    }

    /// Adds a subscriber for operation `id` of `shape` to the edge's index.
    fn index_subscription(&self, id: &str, shape: Arc<Shape>) -> LocalSubscription {
        let subscriber = Subscriber {
            outbound: self.outbound.clone(),
            target: Arc::new(NextTarget::new(id)),
        };
        let edge = &self.edge;
        edge.index.insert(
            shape.clone(),
            subscriber.clone(),
            edge.interest.as_ref(),
            &edge.config.edge_id,
        );
        edge.subscription_added();
        LocalSubscription { shape, subscriber }
    }

    /// Stops delivery for `id` at once; unknown ids are ignored.
    fn unsubscribe(&mut self, id: &str) {
        if let Some(sub) = self.subscriptions.remove(id) {
            self.release(sub);
        }
    }

    fn release(&self, sub: LocalSubscription) {
        let edge = &self.edge;
        if edge.index.remove(
            sub.shape.id,
            &sub.subscriber,
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

/// The monotonic instant of wall-clock time `at` (now, if it has passed).
fn instant_of(at: SystemTime) -> Instant {
    Instant::now() + at.duration_since(SystemTime::now()).unwrap_or_default()
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
