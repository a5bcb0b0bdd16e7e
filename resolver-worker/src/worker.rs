//! The dedicated Python thread: owns the interpreter attachment, the imported
//! resolvers and the asyncio event loop, and runs batches of calls.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pyo3::exceptions::PyTimeoutError;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use tokio::sync::mpsc;

use crate::batch::Batch;
use crate::call::{EventInput, ResolveCall, ResolveOutcome};
use crate::config::PythonConfig;
use crate::convert;
use crate::error::{Error, Result};
use crate::loader;
use crate::module::{Context, ResolverTimeout};
use crate::stats::{ErrorKind, Stats};
use crate::watchdog::Watchdog;

/// What the Python thread tells [`crate::PythonRuntime::start`].
pub(crate) type Started = Result<Vec<String>>;

/// Body of the Python thread.
pub(crate) fn run(
    config: PythonConfig,
    mut batches: mpsc::Receiver<Batch>,
    started: std::sync::mpsc::Sender<Started>,
) {
    Python::attach(|py| {
        let mut worker = match Worker::start(py, &config) {
            Ok(worker) => worker,
            Err(e) => {
                let _ = started.send(Err(e));
                return;
            }
        };
        let watchdog = worker.watchdog.clone();
        let watchdog_thread = match std::thread::Builder::new()
            .name("fanout-py-watchdog".into())
            .spawn(move || watchdog.run())
        {
            Ok(handle) => handle,
            Err(e) => {
                worker.close(py);
                let _ = started.send(Err(Error::Spawn(e)));
                return;
            }
        };
        let fields = worker.resolvers.iter().map(|r| r.field.clone()).collect();
        if started.send(Ok(fields)).is_ok() {
            // Waiting for work releases the GIL (other runtimes' threads run meanwhile)
            // but keeps this thread's state, so each batch re-attaches cheaply.
            while let Some(batch) = py.detach(|| next_batch(&mut batches)) {
                worker.run_batch(py, batch);
            }
        }
        worker.watchdog.stop();
        worker.close(py);
        py.detach(|| {
            if watchdog_thread.join().is_err() {
                tracing::error!("the resolver watchdog thread panicked");
            }
        });
    });
}

/// How long the Python thread polls for the next batch before it sleeps. Under load
/// batches follow each other closely and a sleeping thread costs a wake-up (tens of
/// µs on a VM) per batch; idle, this burns at most this much CPU per batch.
const SPIN_BEFORE_SLEEP: Duration = Duration::from_micros(50);

/// The next batch, or `None` once every sender is gone.
fn next_batch(batches: &mut mpsc::Receiver<Batch>) -> Option<Batch> {
    let until = Instant::now() + SPIN_BEFORE_SLEEP;
    loop {
        match batches.try_recv() {
            Ok(batch) => return Some(batch),
            Err(mpsc::error::TryRecvError::Disconnected) => return None,
            Err(mpsc::error::TryRecvError::Empty) if Instant::now() < until => {
                std::hint::spin_loop();
            }
            Err(mpsc::error::TryRecvError::Empty) => return batches.blocking_recv(),
        }
    }
}

struct Resolver {
    field: String,
    func: Py<PyAny>,
}

struct Worker {
    resolvers: Vec<Resolver>,
    by_field: HashMap<String, usize>,
    module_name: String,
    timeout: Duration,
    event_loop: Py<PyAny>,
    asyncio: Py<PyModule>,
    isawaitable: Py<PyAny>,
    cancelled_error: Py<PyAny>,
    watchdog: Arc<Watchdog>,
    next_seq: u64,
}

impl Worker {
    fn start(py: Python<'_>, config: &PythonConfig) -> Result<Self> {
        let setup =
            |doing: &str, e: PyErr| Error::Setup(format!("{doing}: {}", loader::summarize(py, &e)));
        let asyncio = py
            .import("asyncio")
            .map_err(|e| setup("importing asyncio", e))?;
        // The loop exists before the resolvers file runs, so that import-time code
        // that asks for the current event loop gets the one resolvers will run on.
        let event_loop =
            new_event_loop(&asyncio).map_err(|e| setup("creating the event loop", e))?;
        let loaded = loader::load(py, config)?;
        let lookups = || -> PyResult<(Py<PyAny>, Py<PyAny>, u64)> {
            Ok((
                py.import("inspect")?.getattr("isawaitable")?.unbind(),
                asyncio.getattr("CancelledError")?.unbind(),
                py.import("threading")?
                    .call_method0("get_ident")?
                    .extract()?,
            ))
        };
        let (isawaitable, cancelled_error, thread_ident) =
            lookups().map_err(|e| setup("looking up helpers", e))?;
        let mut by_field = HashMap::new();
        let mut resolvers = Vec::with_capacity(loaded.registrations.len());
        for registration in loaded.registrations {
            tracing::debug!(field = %registration.field, file = %registration.file, line = registration.line, "registered Python resolver");
            by_field.insert(registration.field.clone(), resolvers.len());
            resolvers.push(Resolver {
                field: registration.field,
                func: registration.func,
            });
        }
        Ok(Self {
            resolvers,
            by_field,
            module_name: loaded.module_name,
            timeout: config.timeout,
            event_loop: event_loop.unbind(),
            asyncio: asyncio.unbind(),
            isawaitable,
            cancelled_error,
            watchdog: Arc::new(Watchdog::new(config.timeout, thread_ident)),
            next_seq: 0,
        })
    }

    fn close(&mut self, py: Python<'_>) {
        if let Err(e) = self.event_loop.bind(py).call_method0("close") {
            tracing::debug!(error = %e, "closing the resolver event loop failed");
        }
        loader::unload(py, &self.module_name);
    }

    fn run_batch(&mut self, py: Python<'_>, batch: Batch) {
        let Batch {
            event,
            calls,
            results,
            done,
        } = batch;
        let mut stats = Stats::new(self.resolvers.len());
        if results.is_abandoned() {
            // The caller reported these calls as timed out while they were queued.
            self.count_abandoned(&mut stats, calls.iter());
            stats.emit(self.resolvers.iter().map(|r| r.field.as_str()));
            return;
        }
        if done.is_closed() {
            return; // the caller's future was dropped: nobody wants the answer
        }
        self.watchdog.begin_batch();
        // The event becomes a Python object once for the whole batch.
        let event_obj = match convert::json_to_py(py, &event.payload) {
            Ok(obj) => Some(obj),
            Err(e) => {
                tracing::error!(error = %e, "event payload could not be converted to Python");
                None
            }
        };
        let mut calls = calls.into_iter();
        while let Some(call) = calls.next() {
            let index = self.by_field.get(&call.field).copied();
            let outcome = match (index, &event_obj) {
                (None, _) => ResolveOutcome::NoResolver,
                (Some(_), None) => {
                    ResolveOutcome::Error("event could not be passed to the resolver".into())
                }
                (Some(index), Some(event_obj)) => {
                    self.call_one(py, index, event_obj, &event, call, &mut stats)
                }
            };
            let timed_out = outcome == ResolveOutcome::Timeout;
            if !results.push(outcome) {
                // The caller reported this call and the rest as timed out.
                if let (Some(index), false) = (index, timed_out) {
                    stats.count_timeout(index);
                }
                self.count_abandoned(&mut stats, calls.as_slice().iter());
                break;
            }
            if done.is_closed() {
                break;
            }
        }
        self.watchdog.end_batch();
        stats.emit(self.resolvers.iter().map(|r| r.field.as_str()));
        let _ = done.send(());
    }

    fn count_abandoned<'a>(&self, stats: &mut Stats, calls: impl Iterator<Item = &'a ResolveCall>) {
        for call in calls {
            if let Some(&index) = self.by_field.get(&call.field) {
                stats.count_timeout(index);
            }
        }
    }

    fn call_one(
        &mut self,
        py: Python<'_>,
        index: usize,
        event_obj: &Bound<'_, PyAny>,
        event: &Arc<EventInput>,
        call: ResolveCall,
        stats: &mut Stats,
    ) -> ResolveOutcome {
        let started = Instant::now();
        self.next_seq += 1;
        let seq = self.next_seq;
        let result = self.invoke(py, index, event_obj, event, call, seq, started);
        self.watchdog.end_call(py, seq);
        let (outcome, kind) = self.classify(py, index, result);
        stats.record(&self.resolvers[index].field, index, started.elapsed(), kind);
        outcome
    }

    #[allow(clippy::too_many_arguments)]
    fn invoke<'py>(
        &mut self,
        py: Python<'py>,
        index: usize,
        event_obj: &Bound<'py, PyAny>,
        event: &Arc<EventInput>,
        call: ResolveCall,
        seq: u64,
        started: Instant,
    ) -> PyResult<Bound<'py, PyAny>> {
        let args = convert::map_to_py(py, &call.args)?;
        // A shallow copy per call: a resolver that sets a key on `event` does not
        // change what the next resolver of the batch sees.
        let event_arg = match event_obj.cast::<PyDict>() {
            Ok(dict) => dict.copy()?.into_any(),
            Err(_) => event_obj.clone(),
        };
        let ctx = Bound::new(py, Context::new(call.security, event.clone()))?;
        self.watchdog.begin_call(seq, started);
        let value = self.resolvers[index]
            .func
            .bind(py)
            .call1((event_arg, args, ctx))?;
        if value.is_none()
            || value.cast::<PyDict>().is_ok()
            || !self.isawaitable.bind(py).call1((&value,))?.is_truthy()?
        {
            return Ok(value);
        }
        self.watchdog.extend_call();
        self.run_awaitable(py, value)
    }

    /// `loop.run_until_complete(asyncio.wait_for(awaitable, timeout))`.
    fn run_awaitable<'py>(
        &mut self,
        py: Python<'py>,
        awaitable: Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let asyncio = self.asyncio.bind(py);
        let limited = asyncio
            .getattr("wait_for")?
            .call1((awaitable, self.timeout.as_secs_f64()))?;
        let result = self
            .event_loop
            .bind(py)
            .call_method1("run_until_complete", (limited,));
        if result.is_err() {
            self.repair_event_loop(py);
        }
        result
    }

    /// After an interrupted `run_until_complete`, makes sure the loop can run again.
    fn repair_event_loop(&mut self, py: Python<'_>) {
        let event_loop = self.event_loop.bind(py);
        let broken = |method: &str| {
            event_loop
                .call_method0(method)
                .and_then(|r| r.is_truthy())
                .unwrap_or(true)
        };
        if !broken("is_running") && !broken("is_closed") {
            return;
        }
        tracing::warn!("the resolver event loop was left unusable; replacing it");
        match new_event_loop(self.asyncio.bind(py)) {
            Ok(new_loop) => self.event_loop = new_loop.unbind(),
            Err(e) => tracing::error!(error = %e, "could not create a new event loop"),
        }
    }

    fn classify(
        &self,
        py: Python<'_>,
        index: usize,
        result: PyResult<Bound<'_, PyAny>>,
    ) -> (ResolveOutcome, Option<ErrorKind>) {
        let field = &self.resolvers[index].field;
        match result {
            Ok(value) if value.is_none() => (ResolveOutcome::Skip, None),
            Ok(value) => match convert::py_to_json(&value) {
                Ok(json) => (ResolveOutcome::Value(json), None),
                Err(e) => {
                    tracing::warn!(field = %field, error = %e, "resolver returned a value that is not JSON");
                    (
                        ResolveOutcome::Error(format!(
                            "resolver returned a value that is not JSON: {e}"
                        )),
                        Some(ErrorKind::BadReturn),
                    )
                }
            },
            Err(e) if self.is_timeout(py, &e) => {
                tracing::warn!(field = %field, timeout_ms = self.timeout.as_millis() as u64, "resolver timed out");
                (ResolveOutcome::Timeout, Some(ErrorKind::Timeout))
            }
            Err(e) => {
                let traceback = loader::format_traceback(py, &e);
                tracing::warn!(field = %field, %traceback, "resolver raised");
                (
                    ResolveOutcome::Error(format!("resolver raised {}", loader::summarize(py, &e))),
                    Some(ErrorKind::Raised),
                )
            }
        }
    }

    /// Our injected `ResolverTimeout`, or `asyncio.wait_for`'s `TimeoutError` (which it
    /// raises `from` the `CancelledError` of the cancelled coroutine).
    fn is_timeout(&self, py: Python<'_>, err: &PyErr) -> bool {
        err.is_instance_of::<ResolverTimeout>(py)
            || (err.is_instance_of::<PyTimeoutError>(py)
                && err
                    .cause(py)
                    .is_some_and(|cause| cause.is_instance(py, self.cancelled_error.bind(py))))
    }
}

fn new_event_loop<'py>(asyncio: &Bound<'py, PyModule>) -> PyResult<Bound<'py, PyAny>> {
    let event_loop = asyncio.call_method0("new_event_loop")?;
    asyncio.call_method1("set_event_loop", (&event_loop,))?;
    Ok(event_loop)
}
