//! A batch: one event, its calls, and the outcomes shared with the waiting caller.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::oneshot;

use crate::call::{EventInput, ResolveCall, ResolveOutcome};

/// One event and the calls to run for it.
pub(crate) struct Batch {
    pub event: Arc<EventInput>,
    pub calls: Vec<ResolveCall>,
    pub results: Arc<BatchResults>,
    /// Completed (or dropped) when the batch is over.
    pub done: oneshot::Sender<()>,
}

/// Outcomes of a batch, filled in call order by the Python thread, so that a caller
/// that stops waiting still gets those that finished.
pub(crate) struct BatchResults {
    inner: Mutex<Results>,
}

struct Results {
    outcomes: Vec<ResolveOutcome>,
    abandoned: bool,
}

impl BatchResults {
    pub(crate) fn new(calls: usize) -> Self {
        Self {
            inner: Mutex::new(Results {
                outcomes: Vec::with_capacity(calls),
                abandoned: false,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Results> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Appends an outcome; false when the caller has stopped waiting.
    pub(crate) fn push(&self, outcome: ResolveOutcome) -> bool {
        let mut results = self.lock();
        if results.abandoned {
            return false;
        }
        results.outcomes.push(outcome);
        true
    }

    pub(crate) fn is_abandoned(&self) -> bool {
        self.lock().abandoned
    }

    /// The caller stops waiting: takes what finished; later outcomes are dropped.
    pub(crate) fn abandon(&self) -> Vec<ResolveOutcome> {
        let mut results = self.lock();
        results.abandoned = true;
        std::mem::take(&mut results.outcomes)
    }
}
