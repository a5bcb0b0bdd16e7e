//! Where a connection's writer puts its frames: [`SocketWriter`] encodes them into one
//! buffer and writes it to the socket.
//!
//! The writer hands a batch of queued items to [`FrameSink::push`] (no I/O), then
//! awaits [`FrameSink::flush`]: a batch becomes one socket write. A flush that is
//! cancelled (the connection is closing) keeps what it did not write, so the close
//! frame that follows starts on a frame boundary.

use std::future::Future;
use std::io;

use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::outbound::Outgoing;
use crate::ws_frame;

/// Frames buffered by the writer until the next flush.
pub trait FrameSink {
    /// Buffers `item` for the next flush; does no I/O. A `next` frame of a subscription
    /// completed since it was queued is dropped here.
    fn push(&mut self, item: Outgoing);

    /// Bytes buffered and not written yet (0 where the sink does not count them).
    fn buffered(&self) -> usize;

    /// Writes everything buffered. If the future is dropped before it completes, what
    /// was not written stays buffered for the next flush.
    fn flush(&mut self) -> impl Future<Output = io::Result<()>> + Send;
}

/// Capacity a write buffer starts with; it grows for a larger batch.
const INITIAL_BUFFER: usize = 4096;

/// Bytes of a `next` frame besides its payload, for sizing the buffer once per event
/// rather than growing it frame by frame: the header and a prefix with a short id.
const FRAME_OVERHEAD: usize = ws_frame::MAX_HEADER + 48;

/// A [`FrameSink`] over the write half of a socket.
///
/// The buffer exists only while there is something to write: an idle connection holds
/// none, and one that took a burst gives the memory back after writing it.
#[derive(Debug)]
pub struct SocketWriter<W> {
    io: W,
    buf: Vec<u8>,
    /// Bytes of `buf` already written.
    written: usize,
}

impl<W> SocketWriter<W> {
    /// A writer with nothing buffered.
    pub fn new(io: W) -> Self {
        Self {
            io,
            buf: Vec::new(),
            written: 0,
        }
    }
}

impl<W: AsyncWrite + Unpin + Send> FrameSink for SocketWriter<W> {
    fn push(&mut self, item: Outgoing) {
        if self.buf.capacity() == 0 {
            self.buf.reserve(INITIAL_BUFFER);
        }
        match item {
            Outgoing::Frame(message) => ws_frame::message(&mut self.buf, &message),
            Outgoing::Next { targets, payload } => {
                let targets = targets.as_slice();
                self.buf
                    .reserve(targets.len() * (payload.len() + FRAME_OVERHEAD));
                for target in targets {
                    if target.is_active() {
                        ws_frame::text(&mut self.buf, &target.frame_parts(&payload));
                    }
                }
            }
            Outgoing::Raw(bytes) => self.buf.extend_from_slice(&bytes),
        }
    }

    fn buffered(&self) -> usize {
        self.buf.len() - self.written
    }

    async fn flush(&mut self) -> io::Result<()> {
        while self.written < self.buf.len() {
            let n = self.io.write(&self.buf[self.written..]).await?;
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            self.written += n;
        }
        self.io.flush().await?;
        self.buf = Vec::new();
        self.written = 0;
        Ok(())
    }
}

#[cfg(test)]
pub use message_sink::MessageSink;

#[cfg(test)]
mod message_sink {
    use std::collections::VecDeque;
    use std::io;

    use axum::extract::ws::{Message, Utf8Bytes};
    use futures_util::{Sink, SinkExt};

    use super::FrameSink;
    use crate::outbound::Outgoing;

    /// A [`FrameSink`] that hands whole messages to a [`Sink`], for tests that read what
    /// the connection sends from a channel.
    pub struct MessageSink<Si> {
        sink: Si,
        pending: VecDeque<Message>,
    }

    impl<Si> MessageSink<Si> {
        pub fn new(sink: Si) -> Self {
            Self {
                sink,
                pending: VecDeque::new(),
            }
        }
    }

    impl<Si> FrameSink for MessageSink<Si>
    where
        Si: Sink<Message> + Unpin + Send,
        Si::Error: std::fmt::Debug,
    {
        fn push(&mut self, item: Outgoing) {
            match item {
                Outgoing::Frame(message) => self.pending.push_back(message),
                Outgoing::Next { targets, payload } => {
                    for target in targets.as_slice() {
                        if target.is_active() {
                            let text = target.frame_parts(&payload).concat();
                            let text = String::from_utf8_lossy(&text).into_owned();
                            self.pending.push_back(Message::Text(Utf8Bytes::from(text)));
                        }
                    }
                }
                Outgoing::Raw(_) => {}
            }
        }

        fn buffered(&self) -> usize {
            0
        }

        async fn flush(&mut self) -> io::Result<()> {
            let broken = |e: Si::Error| io::Error::other(format!("{e:?}"));
            while let Some(message) = self.pending.pop_front() {
                self.sink.feed(message).await.map_err(broken)?;
            }
            self.sink.flush().await.map_err(broken)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::next_target::{NextTarget, NextTargets};
    use axum::extract::ws::Message;
    use bytes::Bytes;
    use futures_util::StreamExt;
    use tokio_tungstenite::WebSocketStream;
    use tokio_tungstenite::tungstenite::Message as TsMessage;
    use tokio_tungstenite::tungstenite::protocol::Role;

    #[tokio::test]
    async fn batch_is_written_as_frames_and_completed_subscriptions_are_skipped() {
        let (server, client) = tokio::io::duplex(1 << 16);
        let mut writer = SocketWriter::new(server);
        let live = Arc::new(NextTarget::new("1"));
        let done = Arc::new(NextTarget::new("2"));
        let payload = Bytes::from_static(br#"{"data":{"n":1}}"#);
        writer.push(Outgoing::text_static(r#"{"type":"connection_ack"}"#));
        writer.push(Outgoing::Next {
            targets: NextTargets::One(live.clone()),
            payload: payload.clone(),
        });
        writer.push(Outgoing::Next {
            targets: NextTargets::One(done.clone()),
            payload: payload.clone(),
        });
        done.deactivate();
        // One event for both subscriptions: only the active one gets a frame.
        let both = NextTargets::of(&[done, live]).expect("two targets");
        writer.push(Outgoing::Next {
            targets: both,
            payload: Bytes::from_static(br#"{"data":{"n":2}}"#),
        });
        writer.flush().await.expect("flush");
        assert_eq!(writer.buf.capacity(), 0, "buffer released after the write");
        writer.push(Outgoing::Frame(Message::Close(None)));
        writer.flush().await.expect("flush");
        drop(writer);
        let mut ws = WebSocketStream::from_raw_socket(client, Role::Client, None).await;
        let mut got = Vec::new();
        while let Some(Ok(m)) = ws.next().await {
            got.push(m);
        }
        assert_eq!(got.len(), 5, "{got:?}");
        assert_eq!(got[0], TsMessage::text(r#"{"type":"connection_ack"}"#));
        let want = r#"{"id":"1","type":"next","payload":{"data":{"n":1}}}"#;
        assert_eq!(got[1], TsMessage::text(want));
        // Pushed while its subscription was active; the one pushed after is dropped.
        assert_eq!(
            got[2],
            TsMessage::text(r#"{"id":"2","type":"next","payload":{"data":{"n":1}}}"#)
        );
        assert_eq!(
            got[3],
            TsMessage::text(r#"{"id":"1","type":"next","payload":{"data":{"n":2}}}"#)
        );
        assert!(matches!(got[4], TsMessage::Close(None)));
    }

    #[tokio::test]
    async fn cancelled_flush_keeps_the_rest_for_the_next_one() {
        // A pipe smaller than the batch: the first flush cannot finish until read.
        let (server, mut client) = tokio::io::duplex(64);
        let mut writer = SocketWriter::new(server);
        let body = "y".repeat(1000);
        writer.push(Outgoing::text(body.clone()));
        let cancelled = tokio::time::timeout(std::time::Duration::from_millis(20), writer.flush());
        assert!(cancelled.await.is_err(), "the pipe is full");
        assert!(writer.written > 0 && writer.written < writer.buf.len());
        let reader = tokio::spawn(async move {
            let mut all = Vec::new();
            tokio::io::AsyncReadExt::read_to_end(&mut client, &mut all)
                .await
                .expect("read");
            all
        });
        writer.flush().await.expect("flush");
        drop(writer);
        let all = reader.await.expect("reader");
        // Header: 0x81, 126, then the 16-bit length; then the text, whole.
        assert_eq!(all.len(), 4 + 1000);
        assert_eq!(&all[..4], &[0x81, 126, 0x03, 0xE8]);
        assert!(all[4..].iter().all(|&b| b == b'y'));
    }
}
