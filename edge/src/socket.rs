//! An upgraded socket, split in two: tungstenite reads the client's frames from the
//! read half; the connection's writer ([`SocketWriter`]) owns the write half and
//! frames what it sends itself.
//!
//! tungstenite also writes while reading (the pong to a WebSocket ping, the answer to
//! the client's close frame). Those bytes go through [`ReadSide`] into the outbound
//! queue as [`Outgoing::Raw`], so that one writer, in order, puts every byte on the
//! socket.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes};
use futures_util::StreamExt;
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf, ReadHalf};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

use crate::connection;
use crate::edge::Edge;
use crate::frame_sink::SocketWriter;
use crate::outbound::{Outbound, Outgoing};

/// Serves one upgraded connection until it closes (see [`connection::run`]).
pub async fn serve(
    edge: Arc<Edge>,
    upgraded: Upgraded,
    config: WebSocketConfig,
    subprotocol_accepted: bool,
    upgrade_token: Option<String>,
) {
    let (read, write) = tokio::io::split(TokioIo::new(upgraded));
    let (outbound, rx) = Outbound::new(edge.config.outbound_queue);
    let read_side = ReadSide {
        read,
        outbound: outbound.clone(),
    };
    let inbound = WebSocketStream::from_raw_socket(read_side, Role::Server, Some(config))
        .await
        .filter_map(|read| std::future::ready(read.map(into_axum).transpose()));
    let inbound = Box::pin(inbound);
    connection::run(
        edge,
        (outbound, rx),
        inbound,
        SocketWriter::new(write),
        subprotocol_accepted,
        upgrade_token,
    )
    .await;
}

/// The client's message as the protocol handles it; `None` for a raw frame, which
/// tungstenite never returns from a read.
fn into_axum(message: WsMessage) -> Option<Message> {
    Some(match message {
        WsMessage::Text(text) => Message::Text(Utf8Bytes::from(text.as_str())),
        WsMessage::Binary(data) => Message::Binary(data),
        WsMessage::Ping(data) => Message::Ping(data),
        WsMessage::Pong(data) => Message::Pong(data),
        WsMessage::Close(frame) => Message::Close(frame.map(|f| CloseFrame {
            code: f.code.into(),
            reason: Utf8Bytes::from(f.reason.as_str()),
        })),
        WsMessage::Frame(_) => return None,
    })
}

/// The read half, as the read-and-write stream tungstenite expects: reads come from
/// the socket, each write is queued for the writer as it is. (Queued at the write, not
/// at a flush: tungstenite does not flush its answer to a close frame.)
struct ReadSide {
    read: ReadHalf<TokioIo<Upgraded>>,
    outbound: Outbound,
}

impl AsyncRead for ReadSide {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.read).poll_read(cx, buf)
    }
}

impl AsyncWrite for ReadSide {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        // tungstenite writes whole frames. Refused only when the connection is
        // closing or too far behind, which closes it: nothing more is written then.
        self.outbound.send(Outgoing::Raw(buf.to_vec()));
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
