//! Errors of the router.

/// Errors raised by the router.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The publish request is invalid (shown to the publisher as `INVALID_ARGUMENT`).
    #[error("{0}")]
    InvalidRequest(String),
    /// The router is shutting down or a partition owner stopped.
    #[error("router unavailable: {0}")]
    Unavailable(String),
    /// A bus operation failed.
    #[error(transparent)]
    Bus(#[from] fanout_core::Error),
    /// The gRPC server failed.
    #[error("gRPC server failed")]
    Transport(#[source] tonic::transport::Error),
}

impl Error {
    /// Short label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::InvalidRequest(_) => "invalid_request",
            Error::Unavailable(_) => "unavailable",
            Error::Bus(_) => "bus",
            Error::Transport(_) => "transport",
        }
    }
}

impl From<Error> for tonic::Status {
    fn from(e: Error) -> Self {
        match e {
            Error::InvalidRequest(m) => tonic::Status::invalid_argument(m),
            Error::Unavailable(m) => tonic::Status::unavailable(m),
            Error::Bus(_) | Error::Transport(_) => tonic::Status::unavailable("bus unavailable"),
        }
    }
}

/// Result with [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;
