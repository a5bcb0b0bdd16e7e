//! A bounded single-consumer queue of outbound frames that costs nothing while empty.
//!
//! Every connection has one. tokio's `mpsc` allocates a block of 32 slots per channel
//! up front (about 1.5 KB per connection for [`crate::outbound::Outgoing`]), which is
//! most of an idle connection's footprint; this queue holds a `VecDeque` that grows on
//! demand and gives its memory back once a burst has been written out.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::task::{Context, Poll};

use futures_util::task::AtomicWaker;

/// How many frames a queued item stands for: the queue's capacity and length count
/// frames, and one item may carry several (an event for several subscriptions of one
/// connection).
pub trait Weight {
    /// Frames in this item (at least one).
    fn weight(&self) -> usize {
        1
    }
}

/// A queue that drained at this many slots or more frees them, so a connection that
/// once received a burst does not keep the burst's memory while idle.
const SHRINK_ABOVE: usize = 64;

/// Why [`FrameQueue::push`] refused an item.
#[derive(Debug, PartialEq, Eq)]
pub enum PushError {
    /// The item would take the queue past `capacity` frames.
    Full,
    /// The consumer is gone.
    Closed,
}

/// The queue; shared by the producers and the one consumer.
#[derive(Debug)]
pub struct FrameQueue<T> {
    items: Mutex<Slots<T>>,
    /// Frames queued, readable without the lock.
    len: AtomicUsize,
    capacity: usize,
    /// The consumer's waker. A few atomics per wait and wake, where a `Notify` takes a
    /// lock to register its waiter and again to drop it: this runs per connection and
    /// event. The consumer registers before it looks, so no push is missed.
    ready: AtomicWaker,
}

#[derive(Debug)]
struct Slots<T> {
    queue: VecDeque<T>,
    /// Frames in `queue`: the sum of the items' weights.
    frames: usize,
    closed: bool,
}

impl<T: Weight> FrameQueue<T> {
    /// An empty queue of at most `capacity` frames (at least one); allocates nothing.
    pub fn new(capacity: usize) -> Self {
        Self {
            items: Mutex::new(Slots {
                queue: VecDeque::new(),
                frames: 0,
                closed: false,
            }),
            len: AtomicUsize::new(0),
            capacity: capacity.max(1),
            ready: AtomicWaker::new(),
        }
    }

    /// Appends `item` without waiting and wakes the consumer.
    pub fn push(&self, item: T) -> Result<(), PushError> {
        self.push_unwoken(item)?;
        self.wake();
        Ok(())
    }

    /// Appends `item` without waiting and without waking the consumer, so that several
    /// items (of several events) reach it in one wake-up and one socket write. Returns
    /// `true` when the queue was empty before: the consumer may be asleep, and the
    /// caller must call [`FrameQueue::wake`] once it has queued what it has. After a
    /// `false` the consumer still holds an earlier item and will come back for this one.
    pub fn push_unwoken(&self, item: T) -> Result<bool, PushError> {
        let mut slots = self.items.lock().unwrap_or_else(PoisonError::into_inner);
        if slots.closed {
            return Err(PushError::Closed);
        }
        let was_empty = slots.queue.is_empty();
        let frames = slots.frames + item.weight();
        // An item heavier than the whole capacity still goes into an empty queue: a
        // connection with more subscriptions of a shape than the queue holds frames is
        // not a slow consumer for that.
        if frames > self.capacity && !was_empty {
            return Err(PushError::Full);
        }
        slots.queue.push_back(item);
        slots.frames = frames;
        self.len.store(frames, Ordering::Relaxed);
        Ok(was_empty)
    }

    /// Wakes the consumer if it waits (one that does not finds the items when it looks).
    pub fn wake(&self) {
        self.ready.wake();
    }

    /// Registers the consumer's waker for the next [`FrameQueue::wake`]. Register first,
    /// then look (pop, or check whatever else the wake stands for), so that a push in
    /// between is not missed. Only the one consumer may call this.
    pub fn register(&self, cx: &Context<'_>) {
        self.ready.register(cx.waker());
    }

    /// Takes the oldest item, if any.
    pub fn pop(&self) -> Option<T> {
        let mut slots = self.items.lock().unwrap_or_else(PoisonError::into_inner);
        let item = slots.queue.pop_front()?;
        slots.frames = slots.frames.saturating_sub(item.weight());
        if slots.queue.is_empty() && slots.queue.capacity() >= SHRINK_ABOVE {
            slots.queue = VecDeque::new();
        }
        self.len.store(slots.frames, Ordering::Relaxed);
        Some(item)
    }

    /// Waits for an item and takes it. Only the one consumer may call this.
    pub async fn next(&self) -> T {
        std::future::poll_fn(|cx| {
            self.register(cx);
            self.pop().map_or(Poll::Pending, Poll::Ready)
        })
        .await
    }

    /// Frames queued now.
    pub fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The consumer is gone: later pushes fail and the queued items are dropped.
    pub fn close(&self) {
        let mut slots = self.items.lock().unwrap_or_else(PoisonError::into_inner);
        slots.closed = true;
        slots.queue = VecDeque::new();
        slots.frames = 0;
        self.len.store(0, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    impl Weight for i32 {}
    impl Weight for &str {}

    /// An item standing for `.0` frames.
    #[derive(Debug, PartialEq)]
    struct Frames(usize);

    impl Weight for Frames {
        fn weight(&self) -> usize {
            self.0
        }
    }

    #[test]
    fn capacity_counts_frames_not_items() {
        let q = FrameQueue::new(10);
        assert_eq!(q.push(Frames(4)), Ok(()));
        assert_eq!(q.push(Frames(6)), Ok(()));
        assert_eq!(q.len(), 10);
        assert_eq!(q.push(Frames(1)), Err(PushError::Full));
        assert_eq!(q.pop(), Some(Frames(4)));
        assert_eq!(q.len(), 6);
        assert_eq!(q.push(Frames(5)), Err(PushError::Full));
        assert_eq!(q.push(Frames(4)), Ok(()));
        while q.pop().is_some() {}
        assert_eq!(q.len(), 0);
        // Heavier than the capacity: accepted into an empty queue only.
        assert_eq!(q.push(Frames(25)), Ok(()));
        assert_eq!(q.len(), 25);
        assert_eq!(q.push(Frames(1)), Err(PushError::Full));
    }

    #[test]
    fn keeps_order_and_refuses_past_capacity() {
        let q = FrameQueue::new(2);
        assert_eq!(q.push(1), Ok(()));
        assert_eq!(q.push(2), Ok(()));
        assert_eq!(q.push(3), Err(PushError::Full));
        assert_eq!(q.len(), 2);
        assert_eq!(q.pop(), Some(1));
        assert_eq!(q.push(4), Ok(()));
        assert_eq!(q.pop(), Some(2));
        assert_eq!(q.pop(), Some(4));
        assert_eq!(q.pop(), None);
        assert!(q.is_empty());
    }

    #[test]
    fn allocates_nothing_until_used_and_frees_a_drained_burst() {
        let q = FrameQueue::new(1000);
        assert_eq!(q.items.lock().map(|s| s.queue.capacity()).ok(), Some(0));
        for i in 0..500 {
            assert_eq!(q.push(i), Ok(()));
        }
        while q.pop().is_some() {}
        assert_eq!(q.items.lock().map(|s| s.queue.capacity()).ok(), Some(0));
    }

    #[test]
    fn closed_queue_refuses_and_drops() {
        let q = FrameQueue::new(4);
        assert_eq!(q.push("a"), Ok(()));
        q.close();
        assert_eq!(q.len(), 0);
        assert_eq!(q.push("b"), Err(PushError::Closed));
        assert_eq!(q.pop(), None);
    }

    #[tokio::test]
    async fn consumer_wakes_for_a_push_from_another_task() {
        let q = Arc::new(FrameQueue::new(4));
        let producer = q.clone();
        let handle = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            producer.push(7)
        });
        let got = tokio::time::timeout(Duration::from_secs(5), q.next()).await;
        assert_eq!(got.ok(), Some(7));
        assert_eq!(handle.await.ok(), Some(Ok(())));
    }

    #[test]
    fn unwoken_push_says_when_the_consumer_needs_a_wake() {
        let q = FrameQueue::new(4);
        assert_eq!(q.push_unwoken(1), Ok(true));
        assert_eq!(q.push_unwoken(2), Ok(false));
        assert_eq!(q.pop(), Some(1));
        assert_eq!(q.push_unwoken(3), Ok(false));
        assert_eq!(q.pop(), Some(2));
        assert_eq!(q.pop(), Some(3));
        assert_eq!(q.push_unwoken(4), Ok(true));
    }

    #[tokio::test]
    async fn unwoken_items_arrive_with_the_wake() {
        let q = Arc::new(FrameQueue::new(8));
        let consumer = q.clone();
        let handle = tokio::spawn(async move {
            let first = consumer.next().await;
            (first, consumer.pop())
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(q.push_unwoken(1), Ok(true));
        assert_eq!(q.push_unwoken(2), Ok(false));
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!handle.is_finished(), "consumer woke without a wake");
        q.wake();
        let got = tokio::time::timeout(Duration::from_secs(5), handle).await;
        assert_eq!(got.ok().and_then(Result::ok), Some((1, Some(2))));
    }

    #[tokio::test]
    async fn push_before_waiting_is_not_lost() {
        let q = FrameQueue::new(4);
        assert_eq!(q.push(1), Ok(()));
        assert_eq!(q.push(2), Ok(()));
        assert_eq!(q.next().await, 1);
        assert_eq!(q.next().await, 2);
        assert!(
            tokio::time::timeout(Duration::from_millis(20), q.next())
                .await
                .is_err()
        );
    }
}
