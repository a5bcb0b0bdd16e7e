//! What a queued `next` frame needs of its subscription: the frame's prefix and whether
//! the subscription is still active. Shared by the shape index (which queues frames)
//! and the connection's writer (which drops frames of a subscription completed since).

use std::sync::Arc;
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

/// The subscriptions of one connection to one shape: who gets a frame of an event.
///
/// A connection's subscriptions of a shape get one queue item per event, not one per
/// subscription: a gateway that multiplexes many users' subscriptions over one socket
/// costs one queue push, one payload reference and one wake per event.
#[derive(Debug, Clone)]
pub enum NextTargets {
    /// The common case, without the list's allocation.
    One(Arc<NextTarget>),
    /// Two or more, in subscription order; a snapshot, replaced when one is added or
    /// removed (frames already queued keep the list they were queued with).
    Many(Arc<[Arc<NextTarget>]>),
}

impl NextTargets {
    /// The targets of `subscriptions`; `None` when there are none.
    pub fn of(subscriptions: &[Arc<NextTarget>]) -> Option<Self> {
        match subscriptions {
            [] => None,
            [one] => Some(Self::One(one.clone())),
            many => Some(Self::Many(many.into())),
        }
    }

    /// These targets and `target` after them.
    pub fn with(&self, target: Arc<NextTarget>) -> Self {
        let mut all = self.as_slice().to_vec();
        all.push(target);
        Self::Many(all.into())
    }

    /// These targets without `target` (compared by identity): `None` when it is not
    /// one of them, `Some(None)` when it was the only one.
    pub fn without(&self, target: &Arc<NextTarget>) -> Option<Option<Self>> {
        let all = self.as_slice();
        let at = all.iter().position(|t| Arc::ptr_eq(t, target))?;
        let rest: Vec<Arc<NextTarget>> = all[..at].iter().chain(&all[at + 1..]).cloned().collect();
        Some(Self::of(&rest))
    }

    /// The targets, in order.
    pub fn as_slice(&self) -> &[Arc<NextTarget>] {
        match self {
            Self::One(one) => std::slice::from_ref(one),
            Self::Many(many) => many,
        }
    }

    /// How many frames one event makes.
    pub fn len(&self) -> usize {
        self.as_slice().len()
    }

    /// Never true: a list has at least one target.
    pub fn is_empty(&self) -> bool {
        self.as_slice().is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_keep_their_order_and_say_how_many_frames_they_make() {
        assert!(NextTargets::of(&[]).is_none());
        let a = Arc::new(NextTarget::new("a"));
        let b = Arc::new(NextTarget::new("b"));
        let one = NextTargets::of(std::slice::from_ref(&a)).expect("one");
        assert!(matches!(one, NextTargets::One(_)));
        assert_eq!(one.len(), 1);
        let two = one.with(b.clone());
        assert_eq!(two.len(), 2);
        let reversed = NextTargets::of(&[b.clone(), a.clone()]).expect("two");
        let prefixes: Vec<Vec<u8>> = reversed
            .as_slice()
            .iter()
            .map(|t| t.frame_parts(b"1")[0].to_vec())
            .collect();
        assert_eq!(
            prefixes,
            [
                br#"{"id":"b","type":"next","payload":"#.to_vec(),
                br#"{"id":"a","type":"next","payload":"#.to_vec()
            ]
        );
        // Removal goes by identity: another target with the same id is not `a`.
        let same_id = Arc::new(NextTarget::new("a"));
        assert!(two.without(&same_id).is_none());
        let only_b = two.without(&a).flatten().expect("b is left");
        assert!(matches!(&only_b, NextTargets::One(t) if Arc::ptr_eq(t, &b)));
        assert!(matches!(only_b.without(&b), Some(None)));
    }
}
