//! What a queued `next` frame needs of its subscription: the frame's prefix and whether
//! the subscription is still active. Shared by the shape index (which queues frames)
//! and the connection's writer (which drops frames of a subscription completed since).

use std::sync::atomic::{AtomicBool, Ordering};

use crate::message;

/// One subscription, as seen from its queued frames.
#[derive(Debug)]
pub struct NextTarget {
    /// `{"id":"<id>","type":"next","payload":`, built once at subscribe time.
    prefix: Box<str>,
    active: AtomicBool,
}

impl NextTarget {
    /// An active subscription with operation id `id`.
    pub fn new(id: &str) -> Self {
        Self {
            prefix: message::next_prefix(id),
            active: AtomicBool::new(true),
        }
    }

    /// The text of this subscription's `next` frame for `payload`, in parts.
    pub fn frame_parts<'a>(&'a self, payload: &'a [u8]) -> [&'a [u8]; 3] {
        message::next_parts(&self.prefix, payload)
    }

    /// Whether frames should still be sent (one atomic load per frame).
    pub fn is_active(&self) -> bool {
        self.active.load(Ordering::Acquire)
    }

    /// Stops the frames of this subscription, queued ones included.
    pub fn deactivate(&self) {
        self.active.store(false, Ordering::Release);
    }
}
