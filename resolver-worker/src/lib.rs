//! Fanout's resolver worker: Python resolvers in embedded CPython (pyo3).
//!
//! A tour, in the order an event goes through:
//!
//! - [`config`]: [`PythonConfig`] (resolvers file, virtualenv, timeout) and finding a
//!   virtualenv's `site-packages` for the running interpreter's version.
//! - [`runtime`]: [`PythonRuntime`], the cloneable handle. `resolve_batch` sends one
//!   event and its calls to the Python thread and awaits the outcomes, never longer
//!   than `timeout × calls` plus a grace.
//! - `worker`: the dedicated Python thread. It stays attached to the interpreter for
//!   its whole life (releasing the GIL only while it waits for work), converts each
//!   event to Python once per batch, builds a `fanout.Context` per call, runs `async def`
//!   resolvers on its own asyncio loop, and counts the calls in metrics.
//! - `batch`: a batch and the outcomes it shares with the waiting caller.
//! - `stats`: resolver metrics, gathered per batch.
//! - `watchdog`: interrupts resolvers that run past the timeout by raising
//!   `TimeoutError` in the Python thread (`PyThreadState_SetAsyncExc`).
//! - `module`: the `fanout` Python module (`@fanout.resolver`, `fanout.Context`),
//!   built in Rust; registrations are collected per import, not globally, so several
//!   runtimes can share the process.
//! - `loader`: `sys.path`, importing the resolvers file under a unique module name,
//!   and file:line descriptions of import errors.
//! - `convert`: JSON ⇄ Python objects.
//! - [`resolve_loop`]: [`Worker`], the bus side: takes resolve tasks from the
//!   `fanout.resolve` queue group, calls the runtime once per shape, renders payloads and
//!   sends one delivery per edge.
//! - [`check`]: `fanout check` diagnostics for a resolvers file.
//! - [`call`]: what goes in ([`EventInput`], [`ResolveCall`]) and comes out
//!   ([`ResolveOutcome`]) of a call.
//! - [`error`]: the crate's [`Error`].
//!
//! ```python
//! import fanout
//!
//! @fanout.resolver("orderUpdated")
//! def order_updated(event: dict, args: dict, ctx: fanout.Context) -> dict | None:
//!     return None if event["status"] == "draft" else {**event, "total": event["cents"] / 100}
//! ```

mod batch;
pub mod call;
pub mod check;
pub mod config;
mod convert;
pub mod error;
mod loader;
mod module;
pub mod resolve_loop;
pub mod runtime;
mod stats;
mod watchdog;
mod worker;

pub use call::{EventInput, ResolveCall, ResolveOutcome};
pub use check::{Diagnostic, check_config, check_resolvers};
pub use config::{DEFAULT_TIMEOUT, PythonConfig};
pub use error::{Error, Result};
pub use resolve_loop::Worker;
pub use runtime::PythonRuntime;
