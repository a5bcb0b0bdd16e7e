//! The crate's one error type.

use std::path::PathBuf;

/// Result with this crate's [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why the Python runtime could not start.
///
/// Errors raised by resolvers while serving events are not errors of this type: they
/// become [`ResolveOutcome::Error`](crate::ResolveOutcome::Error) for the subscribers of
/// that one shape.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The resolvers file does not exist or cannot be read.
    #[error("cannot read resolvers file {path}")]
    ResolversFile {
        /// The configured path.
        path: PathBuf,
        /// What the file system said.
        #[source]
        source: std::io::Error,
    },
    /// Importing the resolvers file failed: a syntax error, a failed import, an
    /// exception raised at import time, or an invalid `@fanout.resolver` registration.
    #[error("{file}:{line}: {message}")]
    Import {
        /// The Python file where the problem is (usually the resolvers file).
        file: String,
        /// Line in `file`, 1-based; 0 when Python did not say.
        line: usize,
        /// Python's message, e.g. `SyntaxError: invalid syntax`.
        message: String,
    },
    /// The virtualenv is missing or has no `site-packages` directory.
    #[error("virtualenv {path}: {reason}")]
    Virtualenv {
        /// The virtualenv directory.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The virtualenv was made for a different Python version than the embedded one.
    #[error(
        "virtualenv {path} is for Python {venv}, but the embedded interpreter is Python {interpreter}"
    )]
    VirtualenvVersion {
        /// The virtualenv directory.
        path: PathBuf,
        /// Python version of the virtualenv (`major.minor`).
        venv: String,
        /// Python version of the embedded interpreter (`major.minor`).
        interpreter: String,
    },
    /// Setting up the interpreter failed outside the user's code (for example the
    /// asyncio event loop could not be created).
    #[error("Python set-up failed: {0}")]
    Setup(String),
    /// The dedicated Python thread could not be spawned.
    #[error("cannot spawn the Python thread")]
    Spawn(#[source] std::io::Error),
    /// The Python thread ended before it finished starting.
    #[error("the Python thread stopped while starting")]
    ThreadStopped,
}
