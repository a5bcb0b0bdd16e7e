//! [`PythonRuntime`]: the handle async code uses to run resolvers on the Python thread.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use fanout_core::gauge_mirror::GaugeMirror;
use tokio::sync::{mpsc, oneshot};

use crate::batch::{Batch, BatchResults};
use crate::call::{EventInput, ResolveCall, ResolveOutcome};
use crate::config::PythonConfig;
use crate::error::{Error, Result};
use crate::worker;

/// Batches that may wait for the Python thread; senders wait (asynchronously) beyond.
pub const QUEUE_CAPACITY: usize = 1024;

/// Added to `timeout × calls` before a caller stops waiting for a batch.
pub const BATCH_GRACE: Duration = Duration::from_millis(250);

/// Embedded CPython running the resolvers of one resolvers file.
///
/// One long-lived OS thread owns the interpreter attachment for its whole life and runs
/// every Python call; async callers hand it batches over a bounded channel and await a
/// reply, so no tokio thread ever runs Python. Cloning is cheap; the thread stops after
/// the last clone is dropped and the queued batches are done.
#[derive(Clone)]
pub struct PythonRuntime {
    inner: Arc<Inner>,
}

struct Inner {
    batches: mpsc::Sender<Batch>,
    fields: Vec<String>,
    field_set: HashSet<String>,
    timeout: Duration,
    /// Publishes the queue depth gauge in order, so a stale depth never stays.
    gauges: GaugeMirror,
}

impl fmt::Debug for PythonRuntime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PythonRuntime")
            .field("fields", &self.inner.fields)
            .field("timeout", &self.inner.timeout)
            .finish_non_exhaustive()
    }
}

impl PythonRuntime {
    /// Starts the Python thread, imports the resolvers file and registers its
    /// `@fanout.resolver` functions.
    ///
    /// Blocks until the import is done. Import problems (syntax errors, failed imports,
    /// exceptions at import, duplicate resolvers) are [`Error::Import`] with the file,
    /// line and Python's message.
    pub fn start(config: PythonConfig) -> Result<Self> {
        let timeout = config.timeout;
        let (batches, receiver) = mpsc::channel(QUEUE_CAPACITY);
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("fanout-python".into())
            .spawn(move || worker::run(config, receiver, started_tx))
            .map_err(Error::Spawn)?;
        let mut fields = started_rx.recv().map_err(|_| Error::ThreadStopped)??;
        fields.sort();
        let field_set = fields.iter().cloned().collect();
        Ok(Self {
            inner: Arc::new(Inner {
                batches,
                fields,
                field_set,
                timeout,
                gauges: GaugeMirror::default(),
            }),
        })
    }

    /// The Subscription fields that have a Python resolver, sorted.
    pub fn resolver_fields(&self) -> Vec<String> {
        self.inner.fields.clone()
    }

    /// Whether `field` has a Python resolver.
    pub fn has_resolver(&self, field: &str) -> bool {
        self.inner.field_set.contains(field)
    }

    /// The per-call timeout.
    pub fn timeout(&self) -> Duration {
        self.inner.timeout
    }

    /// Sets the resolver queue depth gauge: batches waiting for the Python thread.
    fn report_queue_depth(&self) {
        self.inner.gauges.publish(|| {
            let queued = self.inner.batches.max_capacity() - self.inner.batches.capacity();
            metrics::gauge!(fanout_core::telemetry::RESOLVER_QUEUE_DEPTH).set(queued as f64);
        });
    }

    /// Runs one resolver call per entry of `calls` for `event`, on the Python thread.
    ///
    /// Returns one outcome per call, in order. Waits at most `timeout × calls.len()`
    /// plus [`BATCH_GRACE`] (queueing included); calls unfinished by then are
    /// [`ResolveOutcome::Timeout`] and the Python thread skips those not yet started.
    pub async fn resolve_batch(
        &self,
        event: Arc<EventInput>,
        calls: Vec<ResolveCall>,
    ) -> Vec<ResolveOutcome> {
        let count = calls.len();
        let has_resolver: Vec<bool> = calls.iter().map(|c| self.has_resolver(&c.field)).collect();
        if !has_resolver.contains(&true) {
            return vec![ResolveOutcome::NoResolver; count];
        }
        let budget = u32::try_from(count)
            .ok()
            .and_then(|n| self.inner.timeout.checked_mul(n))
            .and_then(|d| d.checked_add(BATCH_GRACE))
            .unwrap_or(Duration::from_secs(3600));
        let results = Arc::new(BatchResults::new(count));
        let (done, finished) = oneshot::channel();
        let batch = Batch {
            event,
            calls,
            results: results.clone(),
            done,
        };
        let waited = tokio::time::timeout(budget, async {
            self.inner.batches.send(batch).await.map_err(|_| ())?;
            self.report_queue_depth();
            let result = finished.await.map_err(|_| ());
            self.report_queue_depth();
            result
        })
        .await;
        let (mut outcomes, unfinished) = match waited {
            Ok(Ok(())) => (results.abandon(), ResolveOutcome::Timeout),
            Ok(Err(())) => (
                results.abandon(),
                ResolveOutcome::Error("resolver worker stopped".into()),
            ),
            Err(_elapsed) => {
                tracing::warn!(
                    calls = count,
                    budget_ms = budget.as_millis() as u64,
                    "resolver batch timed out"
                );
                (results.abandon(), ResolveOutcome::Timeout)
            }
        };
        for &with_resolver in &has_resolver[outcomes.len().min(count)..] {
            outcomes.push(if with_resolver {
                unfinished.clone()
            } else {
                ResolveOutcome::NoResolver
            });
        }
        outcomes
    }
}
