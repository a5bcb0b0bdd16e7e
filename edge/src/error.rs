//! Errors of `fanout-edge`.
//!
//! Protocol violations by a client are not errors of this crate: they end one
//! connection with a close code (see [`crate::close`]). These are the failures a caller
//! of the library sees.

/// Errors raised by the edge.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Accepting or serving TCP connections failed.
    #[error("edge I/O error")]
    Io(#[from] std::io::Error),
    /// The bus refused a subscription or failed.
    #[error("bus error")]
    Bus(#[from] fanout_core::Error),
    /// The bus ended the delivery subscription while the edge was still running.
    #[error("the delivery subscription on {subject} ended")]
    DeliveryStreamEnded {
        /// Subject the deliveries arrived on.
        subject: String,
    },
}

impl Error {
    /// Short, stable label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Io(_) => "io",
            Self::Bus(_) => "bus",
            Self::DeliveryStreamEnded { .. } => "delivery_stream_ended",
        }
    }
}

/// Result with [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;
