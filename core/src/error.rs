//! Errors of `fanout-core`.

/// Errors raised by shared Fanout components.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The bus is closed or disconnected.
    #[error("bus unavailable: {0}")]
    BusUnavailable(String),
    /// A message on the bus could not be decoded.
    #[error("malformed bus message on {subject}")]
    MalformedMessage {
        /// Subject the message arrived on.
        subject: String,
        /// Decoding failure.
        #[source]
        source: prost::DecodeError,
    },
    /// JSON (de)serialization failed.
    #[error("invalid JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// Result with [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;
