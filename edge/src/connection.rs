//! One WebSocket connection: the protocol reader and the outbound writer, joined so
//! that either ending stops the other.
//!
//! The writer is a task of its own: each is polled only when it is woken, so a
//! delivery wakes the writer without also polling the reader (5 % of the edge's CPU
//! in a broadcast when they shared one task). They share no waker: tungstenite owns
//! only the read half (see [`crate::socket`]).
//!
//! [`run`] is generic over the inbound message [`Stream`] and the [`FrameSink`], so the
//! whole connection (protocol, queueing, close handshake) runs in tests over channels.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::Message;
use fanout_core::telemetry;
use futures_util::{FutureExt, Stream, StreamExt};

use crate::close::CloseReason;
use crate::edge::Edge;
use crate::frame_sink::FrameSink;
use crate::outbound::{Outbound, OutboundRx};
use crate::protocol::Session;

/// How long to wait for the client's side of the close handshake.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Serves one connection until it closes. `subprotocol_accepted` is false when the
/// client did not offer `graphql-transport-ws`: the socket is then closed with 4406.
/// `upgrade_token` is the bearer token of the upgrade request's `Authorization` header.
/// `queue` is the connection's outbound queue (see [`Outbound::new`]).
pub async fn run<St, Si, E>(
    edge: Arc<Edge>,
    queue: (Outbound, OutboundRx),
    inbound: St,
    sink: Si,
    subprotocol_accepted: bool,
    upgrade_token: Option<String>,
) where
    St: Stream<Item = Result<Message, E>> + Unpin,
    E: std::error::Error + 'static,
    Si: FrameSink + Send + 'static,
{
    let (outbound, rx) = queue;
    // Read once more after it ended (below), which a plain stream may not allow.
    let mut inbound = inbound.fuse();
    let _counted = edge.connection_opened(&outbound);
    // Upgraded while the drain was starting: the drain may not have seen it.
    if edge.is_draining() {
        crate::drain::close_for_drain(&outbound);
    }
    // Likewise for a shutdown that listed the open connections before this one.
    if edge.closing.is_cancelled() {
        outbound.close(CloseReason::GoingAway);
    }
    let writer = edge.tracker.spawn(rx.write_to(sink));
    let reader = async {
        let reason = if subprotocol_accepted {
            let mut session =
                Session::new(edge.clone(), outbound.clone()).with_upgrade_token(upgrade_token);
            let reason = session.run(&mut inbound).await;
            // Frees every subscription and its interest before the close handshake.
            drop(session);
            reason
        } else {
            CloseReason::SubprotocolNotAcceptable
        };
        if reason.is_protocol_error() {
            metrics::counter!(
                telemetry::EDGE_PROTOCOL_ERRORS,
                "code" => reason.code().to_string()
            )
            .increment(1);
        }
        tracing::debug!(code = reason.code(), reason = %reason.reason(), "closing connection");
        if reason == CloseReason::PeerClosed {
            // The reader answers a client's close frame on its next read; that answer
            // is queued now, before the writer is told to close.
            let _ = inbound.next().now_or_never();
        }
        outbound.close(reason);
        // Read on until the client answers the close frame (or goes away), so the
        // handshake completes; bounded in case it never does.
        let _ = tokio::time::timeout(CLOSE_GRACE, async {
            while let Some(Ok(_)) = inbound.next().await {}
        })
        .await;
    };
    reader.await;
    // The writer ends once the close frame is out (or could not be written in time).
    if let Err(e) = writer.await {
        tracing::warn!(error = %e, "connection writer failed");
    }
}
