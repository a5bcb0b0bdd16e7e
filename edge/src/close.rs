//! Why a connection ends: every close code the edge sends, mapped in one place.
//!
//! The codes and texts follow the `graphql-transport-ws` protocol (PROTOCOL.md of the
//! `graphql-ws` library) plus the WebSocket codes 1001, 1009 and 1012 and Fanout's own 4503
//! (slow consumer), 4504 (keepalive timeout) and 4430 (connections per tenant).

use std::borrow::Cow;

/// Longest close reason a WebSocket close frame can carry, in bytes.
pub const MAX_REASON_BYTES: usize = 123;

/// The reason a connection is closed by the server (or was closed by the peer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// The client closed the socket or it broke; no close frame is sent.
    PeerClosed,
    /// 1001: the edge is shutting down (a connection its drain did not reach).
    GoingAway,
    /// 1012 (Service Restart): the edge is draining; reconnect (to another edge).
    ServiceRestart,
    /// 1009: a message exceeded `max_message_bytes`.
    MessageTooBig,
    /// 4400: a message the protocol does not allow; the reason is fixed text, never
    /// client input.
    InvalidMessage(&'static str),
    /// 4401: `subscribe` before `connection_ack`.
    Unauthorized,
    /// 4403: authentication failed.
    Forbidden,
    /// 4403: the connection's token expired.
    TokenExpired,
    /// 4406: the client did not offer `graphql-transport-ws`.
    SubprotocolNotAcceptable,
    /// 4408: no `connection_init` within `init_timeout`.
    InitTimeout,
    /// 4409: `subscribe` with the id of an active subscription.
    DuplicateSubscriber(String),
    /// 4429: a second `connection_init`.
    TooManyInitRequests,
    /// 4430: the tenant already holds `max_connections_per_tenant` connections
    /// (Fanout's own code; reconnecting later may succeed).
    TenantConnectionLimit,
    /// 4500: an internal failure.
    Internal,
    /// 4503: the outbound queue overflowed.
    SlowConsumer,
    /// 4504: no `pong` within `pong_timeout` of a server `ping`.
    KeepaliveTimeout,
}

impl CloseReason {
    /// The close code sent to the client.
    pub fn code(&self) -> u16 {
        match self {
            Self::PeerClosed => 1000,
            Self::GoingAway => 1001,
            Self::ServiceRestart => 1012,
            Self::MessageTooBig => 1009,
            Self::InvalidMessage(_) => 4400,
            Self::Unauthorized => 4401,
            Self::Forbidden | Self::TokenExpired => 4403,
            Self::SubprotocolNotAcceptable => 4406,
            Self::InitTimeout => 4408,
            Self::DuplicateSubscriber(_) => 4409,
            Self::TooManyInitRequests => 4429,
            Self::TenantConnectionLimit => 4430,
            Self::Internal => 4500,
            Self::SlowConsumer => 4503,
            Self::KeepaliveTimeout => 4504,
        }
    }

    /// The close reason text, at most [`MAX_REASON_BYTES`] long.
    pub fn reason(&self) -> Cow<'static, str> {
        let text: Cow<'static, str> = match self {
            Self::PeerClosed => "".into(),
            Self::GoingAway => "Server shutting down".into(),
            Self::ServiceRestart => "server draining, reconnect".into(),
            Self::MessageTooBig => "Message too big".into(),
            Self::InvalidMessage(why) => (*why).into(),
            Self::Unauthorized => "Unauthorized".into(),
            Self::Forbidden => "Forbidden".into(),
            Self::TokenExpired => "Forbidden: token expired".into(),
            Self::SubprotocolNotAcceptable => "Subprotocol not acceptable".into(),
            Self::InitTimeout => "Connection initialisation timeout".into(),
            Self::DuplicateSubscriber(id) => format!("Subscriber for {id} already exists").into(),
            Self::TooManyInitRequests => "Too many initialisation requests".into(),
            Self::TenantConnectionLimit => "Too many connections for this tenant".into(),
            Self::Internal => "Internal server error".into(),
            Self::SlowConsumer => "Slow consumer".into(),
            Self::KeepaliveTimeout => "Keepalive timeout".into(),
        };
        truncate(text)
    }

    /// Whether a close frame should be sent (not when the peer already went away).
    pub fn sends_frame(&self) -> bool {
        !matches!(self, Self::PeerClosed)
    }

    /// Whether frames still queued should be written before the close frame. A slow
    /// consumer is cut off at once; everything else gets what was already queued.
    pub fn flushes_queue(&self) -> bool {
        !matches!(self, Self::SlowConsumer | Self::PeerClosed)
    }

    /// Short, stable label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::PeerClosed => "peer_closed",
            Self::GoingAway => "going_away",
            Self::ServiceRestart => "service_restart",
            Self::MessageTooBig => "message_too_big",
            Self::InvalidMessage(_) => "invalid_message",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::TokenExpired => "token_expired",
            Self::SubprotocolNotAcceptable => "subprotocol_not_acceptable",
            Self::InitTimeout => "init_timeout",
            Self::DuplicateSubscriber(_) => "duplicate_subscriber",
            Self::TooManyInitRequests => "too_many_init_requests",
            Self::TenantConnectionLimit => "tenant_connection_limit",
            Self::Internal => "internal",
            Self::SlowConsumer => "slow_consumer",
            Self::KeepaliveTimeout => "keepalive_timeout",
        }
    }

    /// Whether this close is the client's fault (counted as a protocol error).
    pub fn is_protocol_error(&self) -> bool {
        matches!(
            self,
            Self::MessageTooBig
                | Self::InvalidMessage(_)
                | Self::Unauthorized
                | Self::SubprotocolNotAcceptable
                | Self::InitTimeout
                | Self::DuplicateSubscriber(_)
                | Self::TooManyInitRequests
        )
    }
}

/// Cuts `text` to [`MAX_REASON_BYTES`] on a character boundary.
fn truncate(text: Cow<'static, str>) -> Cow<'static, str> {
    if text.len() <= MAX_REASON_BYTES {
        return text;
    }
    let mut end = MAX_REASON_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(text[..end].to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_reasons_follow_the_protocol() {
        assert_eq!(CloseReason::InitTimeout.code(), 4408);
        assert_eq!(
            CloseReason::InitTimeout.reason(),
            "Connection initialisation timeout"
        );
        assert_eq!(CloseReason::TooManyInitRequests.code(), 4429);
        assert_eq!(
            CloseReason::DuplicateSubscriber("a1".into()).reason(),
            "Subscriber for a1 already exists"
        );
        assert_eq!(CloseReason::TokenExpired.code(), 4403);
        assert_eq!(CloseReason::ServiceRestart.code(), 1012);
    }

    #[test]
    fn long_reasons_are_cut_on_a_char_boundary() {
        let id = "é".repeat(200);
        let reason = CloseReason::DuplicateSubscriber(id).reason();
        assert!(reason.len() <= MAX_REASON_BYTES);
        assert!(reason.starts_with("Subscriber for é"));
    }
}
