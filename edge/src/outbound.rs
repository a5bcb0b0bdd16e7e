//! The outbound side of one connection: a bounded frame queue, a close signal that
//! bypasses the queue, and the writer that drains both into the socket.
//!
//! Producers (the protocol task and [`crate::Edge::deliver`]) never wait: a full queue
//! closes the connection with 4503 "Slow consumer". The close travels on its own
//! signal, so it reaches the writer even while the queue is full; if the close frame
//! cannot be written within [`CLOSE_WRITE_TIMEOUT`] the writer gives up and the socket
//! is dropped.

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes};
use bytes::Bytes;
use fanout_core::telemetry;
use tokio::sync::Notify;

use crate::close::CloseReason;
use crate::frame_queue::{FrameQueue, PushError, Weight};
use crate::frame_sink::FrameSink;
use crate::next_target::NextTargets;

/// How long the writer may take to get the close frame (and, unless the client is a
/// slow consumer, the frames queued before it) out.
pub const CLOSE_WRITE_TIMEOUT: Duration = Duration::from_secs(1);

/// Most frames written per flush when they queue up: a connection with many
/// subscriptions gets an event's frames in one write (100 subscriptions per socket
/// took two writes per event at 64).
const MAX_BATCH: usize = 256;

/// A batch stops growing once this many bytes are buffered (large payloads).
const MAX_BATCH_BYTES: usize = 128 * 1024;

/// One item of the outbound queue.
#[derive(Debug)]
pub enum Outgoing {
    /// A protocol frame (`connection_ack`, `pong`, `ping`, `error`, ...).
    Frame(Message),
    /// One event's `next` frames for a connection's subscriptions of one shape: each
    /// subscription's prefix, then the payload. A subscription completed after this was
    /// queued gets no frame.
    Next {
        /// The subscriptions.
        targets: NextTargets,
        /// The event's payload for the shape, shared by every subscriber of the shape.
        payload: Bytes,
    },
    /// Bytes the socket's reader wrote (tungstenite's answers to pings and to the
    /// client's close frame), already framed.
    Raw(Vec<u8>),
}

impl Outgoing {
    /// A text frame from a static string.
    pub fn text_static(text: &'static str) -> Self {
        Self::Frame(Message::Text(Utf8Bytes::from_static(text)))
    }

    /// A text frame.
    pub fn text(text: String) -> Self {
        Self::Frame(Message::Text(Utf8Bytes::from(text)))
    }
}

impl Weight for Outgoing {
    fn weight(&self) -> usize {
        match self {
            Self::Next { targets, .. } => targets.len(),
            Self::Frame(_) | Self::Raw(_) => 1,
        }
    }
}

/// First close reason wins; `wake` wakes whoever waits in [`CloseSignal::closed`] (the
/// protocol task). The writer does not wait here: it checks the reason (one atomic load)
/// whenever the queue's waker wakes it, and [`Shared::close`] wakes that too.
#[derive(Debug, Default)]
struct CloseSignal {
    reason: OnceLock<CloseReason>,
    wake: Notify,
}

impl CloseSignal {
    /// Sets the reason unless one is set, wakes the waiters; whether this call set it.
    fn close(&self, reason: CloseReason) -> bool {
        let first = self.reason.set(reason).is_ok();
        self.wake.notify_waiters();
        first
    }

    /// Whether a reason is set (one atomic load).
    fn is_closed(&self) -> bool {
        self.reason.get().is_some()
    }

    /// Resolves once a reason is set.
    async fn closed(&self) {
        loop {
            let notified = self.wake.notified();
            tokio::pin!(notified);
            // Registered before the check, so a close in between is not missed.
            notified.as_mut().enable();
            if self.reason.get().is_some() {
                return;
            }
            notified.await;
        }
    }
}

/// What the handles and the writer share: one allocation per connection.
#[derive(Debug)]
struct Shared {
    queue: FrameQueue<Outgoing>,
    signal: CloseSignal,
}

impl Shared {
    /// Sets the close reason unless one is set and wakes the writer (which waits on the
    /// queue's waker) and everyone waiting in [`Outbound::closed`]; whether this call
    /// set it.
    fn close(&self, reason: CloseReason) -> bool {
        let first = self.signal.close(reason);
        self.queue.wake();
        first
    }

    /// The writer's wait: polls `poll` until it is ready, or returns `None` once a close
    /// is requested (checked first, as in a biased select). One registration with the
    /// queue's waker stands for both, since a push and a close both wake it.
    async fn unless_closed<T>(
        &self,
        mut poll: impl FnMut(&mut Context<'_>) -> Poll<T>,
    ) -> Option<T> {
        std::future::poll_fn(|cx| {
            self.queue.register(cx);
            if self.signal.is_closed() {
                return Poll::Ready(None);
            }
            poll(cx).map(Some)
        })
        .await
    }
}

/// Handle to a connection's outbound queue; cheap to clone.
#[derive(Debug, Clone)]
pub struct Outbound {
    shared: Arc<Shared>,
}

/// The writer's end of an [`Outbound`]. Dropping it closes the queue.
#[derive(Debug)]
pub struct OutboundRx {
    shared: Arc<Shared>,
}

impl Drop for OutboundRx {
    fn drop(&mut self) {
        self.shared.queue.close();
    }
}

impl Outbound {
    /// A queue of `capacity` frames (at least one).
    pub fn new(capacity: usize) -> (Self, OutboundRx) {
        let shared = Arc::new(Shared {
            queue: FrameQueue::new(capacity),
            signal: CloseSignal::default(),
        });
        (
            Self {
                shared: shared.clone(),
            },
            OutboundRx { shared },
        )
    }

    /// Queues `item` without waiting. On a full queue the connection is closed as a
    /// slow consumer. Returns whether the item was queued.
    pub fn send(&self, item: Outgoing) -> bool {
        let queued = self.enqueue(item).is_some();
        if queued {
            self.shared.queue.wake();
        }
        queued
    }

    /// Like [`Outbound::send`], but leaves waking the writer to `wakes`: a producer
    /// that queues frames for many connections (a batch of deliveries) wakes each
    /// writer once, after the whole batch, so that a connection's frames of the batch go
    /// out in one socket write instead of one write per frame.
    pub fn send_batched(&self, item: Outgoing, wakes: &mut PendingWakes) -> bool {
        match self.enqueue(item) {
            Some(true) => {
                wakes.0.push(self.clone());
                true
            }
            Some(false) => true,
            None => false,
        }
    }

    /// Queues `item` without waking the writer: `Some(needs_wake)` once queued, `None`
    /// when refused (closed, or full, which closes the connection as a slow consumer).
    fn enqueue(&self, item: Outgoing) -> Option<bool> {
        if self.is_closed() {
            return None;
        }
        match self.shared.queue.push_unwoken(item) {
            Ok(needs_wake) => Some(needs_wake),
            Err(PushError::Full) => {
                if self.close(CloseReason::SlowConsumer) {
                    metrics::counter!(telemetry::EDGE_SLOW_CONSUMER_CLOSES).increment(1);
                }
                None
            }
            Err(PushError::Closed) => None,
        }
    }

    /// Names the connection: the same for every handle of one queue, and different for
    /// two queues alive at the same time (a handle keeps its queue alive).
    pub fn connection_id(&self) -> usize {
        Arc::as_ptr(&self.shared).addr()
    }

    /// Frames waiting in the queue now.
    pub fn queued(&self) -> usize {
        self.shared.queue.len()
    }

    /// Asks the writer to close the socket with `reason`; the first reason wins.
    /// Returns whether this call set the reason.
    pub fn close(&self, reason: CloseReason) -> bool {
        self.shared.close(reason)
    }

    /// Whether a close was requested (one atomic load: this runs per subscriber per
    /// event).
    pub fn is_closed(&self) -> bool {
        self.shared.signal.is_closed()
    }

    /// The reason given to [`Outbound::close`], once it was called.
    pub fn reason(&self) -> Option<CloseReason> {
        self.shared.signal.reason.get().cloned()
    }

    /// Resolves once a close was requested.
    pub async fn closed(&self) {
        self.shared.signal.closed().await;
    }
}

/// Writers with frames queued by [`Outbound::send_batched`] and not yet woken.
/// Dropping the list wakes them, so no frame can be left behind unwoken.
#[derive(Debug, Default)]
pub struct PendingWakes(Vec<Outbound>);

impl PendingWakes {
    /// Writers waiting to be woken.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether no writer waits.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Wakes every writer in the list and empties it.
    pub fn wake_all(&mut self) {
        for outbound in self.0.drain(..) {
            outbound.shared.queue.wake();
        }
    }
}

impl Drop for PendingWakes {
    fn drop(&mut self) {
        self.wake_all();
    }
}

impl OutboundRx {
    /// Writes queued frames to `sink` until a close is requested, then writes the close
    /// frame (bounded by [`CLOSE_WRITE_TIMEOUT`]) and returns.
    pub async fn write_to<Si: FrameSink>(self, mut sink: Si) {
        let queue = &self.shared.queue;
        let signal = &self.shared.signal;
        loop {
            let taken = self
                .shared
                .unless_closed(|_| queue.pop().map_or(Poll::Pending, Poll::Ready))
                .await;
            let Some(first) = taken else { break };
            sink.push(first);
            for _ in 1..MAX_BATCH {
                if sink.buffered() >= MAX_BATCH_BYTES {
                    break;
                }
                match queue.pop() {
                    Some(item) => sink.push(item),
                    None => break,
                }
            }
            let flush = sink.flush();
            tokio::pin!(flush);
            let flushed = self
                .shared
                .unless_closed(|cx| flush.as_mut().poll(cx))
                .await;
            let Some(written) = flushed else { break };
            if let Err(e) = written {
                tracing::debug!(error = %e, "socket write failed");
                self.shared.close(CloseReason::PeerClosed);
                return;
            }
        }
        let reason = signal
            .reason
            .get()
            .cloned()
            .unwrap_or(CloseReason::GoingAway);
        if reason.flushes_queue() {
            while let Some(item) = queue.pop() {
                sink.push(item);
            }
        } else {
            // A slow consumer, or a client that closed: only what the reader wrote
            // (after a client's close frame, the answer to it); data frames are dropped.
            while let Some(item) = queue.pop() {
                if matches!(item, Outgoing::Raw(_)) {
                    sink.push(item);
                }
            }
        }
        if reason.sends_frame() {
            sink.push(Outgoing::Frame(Message::Close(Some(CloseFrame {
                code: reason.code(),
                reason: Utf8Bytes::from(reason.reason().into_owned()),
            }))));
        }
        // Also finishes a batch whose write the close interrupted.
        match tokio::time::timeout(CLOSE_WRITE_TIMEOUT, sink.flush()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::debug!(error = %e, "close frame not written"),
            Err(_) => tracing::debug!("close frame not written in time; dropping the socket"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame_sink::MessageSink;
    use crate::next_target::NextTarget;
    use tokio::sync::mpsc;
    use tokio_util::sync::PollSender;

    fn next(n: u32, target: &Arc<NextTarget>) -> Outgoing {
        Outgoing::Next {
            targets: NextTargets::One(target.clone()),
            payload: Bytes::from(n.to_string()),
        }
    }

    fn next_text(id: &str, n: u32) -> Message {
        Message::Text(format!(r#"{{"id":"{id}","type":"next","payload":{n}}}"#).into())
    }

    fn sink(tx: mpsc::Sender<Message>) -> MessageSink<PollSender<Message>> {
        MessageSink::new(PollSender::new(tx))
    }

    #[tokio::test]
    async fn full_queue_closes_as_slow_consumer() {
        let (out, _rx) = Outbound::new(2);
        assert!(out.send(Outgoing::text_static("a")));
        assert!(out.send(Outgoing::text_static("b")));
        assert!(!out.send(Outgoing::text_static("c")));
        assert_eq!(out.reason(), Some(CloseReason::SlowConsumer));
        // Later reasons do not replace the first.
        assert!(!out.close(CloseReason::Internal));
        assert_eq!(out.reason(), Some(CloseReason::SlowConsumer));
    }

    #[tokio::test]
    async fn an_event_for_several_subscriptions_counts_as_that_many_frames() {
        let (out, _rx) = Outbound::new(4);
        let targets: Vec<Arc<NextTarget>> = ["a", "b", "c"]
            .into_iter()
            .map(|id| Arc::new(NextTarget::new(id)))
            .collect();
        let event = || Outgoing::Next {
            targets: NextTargets::of(&targets).expect("targets"),
            payload: Bytes::from_static(b"1"),
        };
        assert!(out.send(event()));
        assert_eq!(out.queued(), 3);
        assert!(!out.send(event()), "6 frames do not fit in 4");
        assert_eq!(out.reason(), Some(CloseReason::SlowConsumer));
    }

    #[tokio::test]
    async fn writer_skips_completed_subscriptions_and_sends_close() {
        let (out, rx) = Outbound::new(8);
        let (tx, mut frames) = mpsc::channel::<Message>(16);
        let live = Arc::new(NextTarget::new("a"));
        let done = Arc::new(NextTarget::new("b"));
        assert!(out.send(next(1, &live)));
        assert!(out.send(next(2, &done)));
        done.deactivate();
        assert!(out.send(next(3, &live)));
        out.close(CloseReason::InitTimeout);
        tokio::time::timeout(Duration::from_secs(5), rx.write_to(sink(tx)))
            .await
            .expect("writer finishes");
        let mut got = Vec::new();
        while let Ok(m) = frames.try_recv() {
            got.push(m);
        }
        assert_eq!(got.len(), 3, "{got:?}");
        assert_eq!(got[0], next_text("a", 1));
        assert_eq!(got[1], next_text("a", 3));
        let Message::Close(Some(frame)) = &got[2] else {
            panic!("expected close, got {:?}", got[2]);
        };
        assert_eq!(frame.code, 4408);
    }

    #[tokio::test]
    async fn close_wakes_a_writer_waiting_on_an_empty_queue() {
        let (out, rx) = Outbound::new(8);
        let (tx, mut frames) = mpsc::channel::<Message>(16);
        let writer = tokio::spawn(rx.write_to(sink(tx)));
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!writer.is_finished(), "nothing to write, no close yet");
        out.close(CloseReason::GoingAway);
        tokio::time::timeout(Duration::from_secs(5), writer)
            .await
            .expect("the close wakes the writer")
            .expect("writer task");
        let Ok(Message::Close(Some(frame))) = frames.try_recv() else {
            panic!("expected the close frame");
        };
        assert_eq!(frame.code, 1001);
    }

    #[tokio::test]
    async fn slow_consumer_close_skips_the_queue() {
        let (out, rx) = Outbound::new(1);
        let (tx, mut frames) = mpsc::channel::<Message>(16);
        assert!(out.send(Outgoing::text_static("queued")));
        assert!(!out.send(Outgoing::text_static("overflow")));
        tokio::time::timeout(Duration::from_secs(5), rx.write_to(sink(tx)))
            .await
            .expect("writer finishes");
        let Ok(Message::Close(Some(frame))) = frames.try_recv() else {
            panic!("expected only a close frame");
        };
        assert_eq!(frame.code, 4503);
        assert_eq!(frame.reason.as_str(), "Slow consumer");
    }

    #[tokio::test]
    async fn after_a_client_close_only_the_readers_answer_is_written() {
        let (out, rx) = Outbound::new(8);
        let (server, client) = tokio::io::duplex(1 << 16);
        let live = Arc::new(NextTarget::new("a"));
        assert!(out.send(next(1, &live)));
        // tungstenite's answer to the client's close frame: close, code 1000.
        assert!(out.send(Outgoing::Raw(vec![0x88, 2, 0x03, 0xE8])));
        out.close(CloseReason::PeerClosed);
        let writer = crate::frame_sink::SocketWriter::new(server);
        tokio::time::timeout(Duration::from_secs(5), rx.write_to(writer))
            .await
            .expect("writer finishes");
        let mut written = Vec::new();
        let mut client = client;
        tokio::io::AsyncReadExt::read_to_end(&mut client, &mut written)
            .await
            .expect("read");
        assert_eq!(written, [0x88, 2, 0x03, 0xE8]);
    }

    /// Records how many items and bytes each flush carried.
    #[derive(Default)]
    struct BatchLog {
        items: usize,
        bytes: usize,
        flushed: Arc<std::sync::Mutex<Vec<(usize, usize)>>>,
    }

    impl FrameSink for BatchLog {
        fn push(&mut self, item: Outgoing) {
            self.items += 1;
            if let Outgoing::Raw(bytes) = item {
                self.bytes += bytes.len();
            }
        }
        fn buffered(&self) -> usize {
            self.bytes
        }
        async fn flush(&mut self) -> std::io::Result<()> {
            if let Ok(mut log) = self.flushed.lock() {
                log.push((self.items, self.bytes));
            }
            (self.items, self.bytes) = (0, 0);
            Ok(())
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_batch_is_bounded_by_frames_and_by_bytes() {
        // The writer takes each burst as it arrives; the close comes after both.
        let (out, rx) = Outbound::new(1024);
        let sink = BatchLog::default();
        let flushed = sink.flushed.clone();
        let writer = tokio::spawn(rx.write_to(sink));
        for _ in 0..300 {
            assert!(out.send(Outgoing::Raw(vec![0; 10])));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        for _ in 0..10 {
            assert!(out.send(Outgoing::Raw(vec![0; 50 * 1024])));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        out.close(CloseReason::GoingAway);
        tokio::time::timeout(Duration::from_secs(5), writer)
            .await
            .expect("writer finishes")
            .expect("writer task");
        let log = flushed.lock().map(|log| log.clone()).unwrap_or_default();
        let items: Vec<usize> = log.iter().map(|(n, _)| *n).collect();
        // 300 small frames: 256, then the rest; 50 KiB frames: three per batch (the
        // third passes 128 KiB); then the close frame on its own.
        assert_eq!(items, [256, 44, 3, 3, 3, 1, 1], "{log:?}");
    }

    #[tokio::test]
    async fn batched_frames_go_out_in_one_flush_after_the_wake() {
        let (out, rx) = Outbound::new(8);
        let (tx, mut frames) = mpsc::channel::<Message>(16);
        let writer = tokio::spawn(rx.write_to(sink(tx)));
        // The writer found the queue empty and waits.
        tokio::time::sleep(Duration::from_millis(10)).await;
        let live = Arc::new(NextTarget::new("a"));
        let mut wakes = PendingWakes::default();
        assert!(out.send_batched(next(1, &live), &mut wakes));
        assert!(out.send_batched(next(2, &live), &mut wakes));
        assert_eq!(wakes.len(), 1, "one wake per connection");
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert!(frames.try_recv().is_err(), "written before the wake");
        wakes.wake_all();
        assert!(wakes.is_empty());
        for n in [1, 2] {
            let got = tokio::time::timeout(Duration::from_secs(5), frames.recv()).await;
            assert_eq!(got.ok().flatten(), Some(next_text("a", n)));
        }
        out.close(CloseReason::GoingAway);
        let _ = tokio::time::timeout(Duration::from_secs(5), writer).await;
    }

    #[tokio::test]
    async fn dropped_wake_list_still_wakes() {
        let (out, rx) = Outbound::new(8);
        let (tx, mut frames) = mpsc::channel::<Message>(16);
        let writer = tokio::spawn(rx.write_to(sink(tx)));
        {
            let mut wakes = PendingWakes::default();
            assert!(out.send_batched(Outgoing::text_static("x"), &mut wakes));
        }
        let got = tokio::time::timeout(Duration::from_secs(5), frames.recv()).await;
        assert_eq!(got.ok().flatten(), Some(Message::Text("x".into())));
        out.close(CloseReason::GoingAway);
        let _ = tokio::time::timeout(Duration::from_secs(5), writer).await;
    }

    #[tokio::test(start_paused = true)]
    async fn stuck_socket_is_dropped_after_the_close_timeout() {
        let (out, rx) = Outbound::new(4);
        // A sink that never becomes ready: the peer stopped reading.
        let sink = futures_util::sink::unfold((), |(), _m: Message| async {
            std::future::pending::<Result<(), std::convert::Infallible>>().await
        });
        let sink = MessageSink::new(Box::pin(sink));
        assert!(out.send(Outgoing::text_static("x")));
        let writer = tokio::spawn(rx.write_to(sink));
        tokio::task::yield_now().await;
        out.close(CloseReason::SlowConsumer);
        tokio::time::timeout(Duration::from_secs(5), writer)
            .await
            .expect("writer gives up")
            .expect("writer task");
    }
}
