//! Interrupting resolvers that run past the timeout.
//!
//! The Python thread publishes which call is running and its deadline in atomics (no
//! lock per call). A watchdog thread sleeps until that deadline; if the same call is
//! still running then, it takes the GIL and raises `fanout.ResolverTimeout` (a
//! `TimeoutError`) in the Python thread with `PyThreadState_SetAsyncExc`. CPython
//! delivers it at the next bytecode, so a pure-Python loop stops; a call blocked in C
//! (`time.sleep`) sees it only when it returns. Every check that decides to inject,
//! and every change of the running call, happens with the GIL held, so an exception
//! is never injected into a later call; one left pending when its call ends is
//! cleared.

use std::os::raw::{c_int, c_long};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use pyo3::prelude::*;
use pyo3::types::PyType;

use crate::module::ResolverTimeout;

/// Extra time an `async def` resolver gets beyond `asyncio.wait_for`'s own timeout
/// before the watchdog interrupts it (it only matters for coroutines that block the
/// event loop).
const ASYNC_GRACE: Duration = Duration::from_millis(100);

/// The longest the watchdog sleeps between two looks while a batch is running.
const MAX_POLL: Duration = Duration::from_millis(50);

/// Shared between the Python thread and the watchdog thread.
pub(crate) struct Watchdog {
    timeout: Duration,
    origin: Instant,
    /// `threading.get_ident()` of the Python thread.
    python_thread: u64,
    /// Sequence number of the running call, 0 when none.
    running: AtomicU64,
    /// Deadline of the running call, in nanoseconds since `origin`.
    deadline: AtomicU64,
    /// Sequence number of a call that had an exception injected, 0 when none.
    injected: AtomicU64,
    state: Mutex<State>,
    wake: Condvar,
}

#[derive(Default)]
struct State {
    busy: bool,
    stop: bool,
}

impl Watchdog {
    pub(crate) fn new(timeout: Duration, python_thread: u64) -> Self {
        Self {
            timeout,
            origin: Instant::now(),
            python_thread,
            running: AtomicU64::new(0),
            deadline: AtomicU64::new(u64::MAX),
            injected: AtomicU64::new(0),
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
        }
    }

    fn nanos(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.origin).as_nanos()).unwrap_or(u64::MAX)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A batch starts: the watchdog starts looking. It is not woken for it (that was a
    /// thread wake-up per batch): idle, it looks every `min(timeout, 50 ms)`, so it
    /// always sees a call before the call's deadline.
    pub(crate) fn begin_batch(&self) {
        self.lock().busy = true;
    }

    /// The batch is done: the watchdog sleeps until the next one.
    pub(crate) fn end_batch(&self) {
        self.lock().busy = false;
    }

    /// Call `seq` starts at `started` (Python thread, GIL held).
    pub(crate) fn begin_call(&self, seq: u64, started: Instant) {
        self.deadline
            .store(self.nanos(started + self.timeout), Ordering::Release);
        self.running.store(seq, Ordering::Release);
    }

    /// The running call turned out to be a coroutine: `asyncio.wait_for` enforces the
    /// timeout from now, the watchdog only backs it up.
    pub(crate) fn extend_call(&self) {
        let deadline = Instant::now() + self.timeout + ASYNC_GRACE;
        self.deadline.store(self.nanos(deadline), Ordering::Release);
    }

    /// Call `seq` is over (Python thread, GIL held by `py`).
    pub(crate) fn end_call(&self, py: Python<'_>, _seq: u64) {
        self.running.store(0, Ordering::Release);
        if self.injected.swap(0, Ordering::AcqRel) != 0 {
            // The injected exception may still be pending if the call finished before
            // reaching another bytecode: clear it so that it cannot hit the next call.
            set_async_exc(py, self.python_thread, None);
        }
    }

    /// Ends [`Self::run`].
    pub(crate) fn stop(&self) {
        self.lock().stop = true;
        self.wake.notify_one();
    }

    /// The watchdog thread's loop.
    pub(crate) fn run(&self) {
        let poll = self.timeout.min(MAX_POLL).max(Duration::from_millis(1));
        let mut state = self.lock();
        loop {
            if state.stop {
                return;
            }
            if !state.busy {
                state = self
                    .wake
                    .wait_timeout(state, poll)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
                continue;
            }
            let seq = self.running.load(Ordering::Acquire);
            let deadline = self.deadline.load(Ordering::Acquire);
            let now = self.nanos(Instant::now());
            let wait = if seq == 0 {
                poll
            } else if now >= deadline {
                drop(state);
                self.interrupt(seq);
                state = self.lock();
                continue;
            } else {
                Duration::from_nanos(deadline - now)
            };
            state = self
                .wake
                .wait_timeout(state, wait)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Raises `ResolverTimeout` in call `seq` if it is still running past its deadline.
    fn interrupt(&self, seq: u64) {
        let injected = Python::attach(|py| {
            // With the GIL held the Python thread is not between calls' bookkeeping.
            if self.running.load(Ordering::Acquire) != seq {
                return false;
            }
            let now = Instant::now();
            if self.nanos(now) < self.deadline.load(Ordering::Acquire) {
                return false;
            }
            let exc = py.get_type::<ResolverTimeout>();
            set_async_exc(py, self.python_thread, Some(&exc));
            self.injected.store(seq, Ordering::Release);
            // If the resolver swallows it, try again one timeout later.
            self.deadline
                .store(self.nanos(now + self.timeout), Ordering::Release);
            true
        });
        if injected {
            tracing::warn!(
                timeout_ms = self.timeout.as_millis() as u64,
                "resolver ran past its timeout; raising TimeoutError in it"
            );
        }
    }
}

/// Sets (or with `None`, clears) the asynchronous exception of the Python thread
/// whose `threading.get_ident()` is `thread`.
#[allow(unsafe_code)]
fn set_async_exc(_py: Python<'_>, thread: u64, exc: Option<&Bound<'_, PyType>>) -> c_int {
    let exc = exc.map_or(std::ptr::null_mut(), |e| e.as_ptr());
    // SAFETY: `_py` proves this thread holds the GIL, which the function requires.
    // `exc` is null (meaning "clear") or a pointer to an exception type that the caller's
    // `Bound` keeps alive for the duration of the call; CPython takes its own
    // reference. An identifier of a thread that has gone is harmless (returns 0). The
    // identifier is an `unsigned long` in CPython; the binding declares `long`, and
    // CPython compares the bit pattern, so the wrapping cast is intended.
    unsafe { pyo3::ffi::PyThreadState_SetAsyncExc(thread as c_long, exc) }
}
