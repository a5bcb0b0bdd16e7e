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
    /// The NATS server address or connect options were rejected.
    #[error("cannot connect to NATS at {url}")]
    NatsConnect {
        /// Server URL as configured.
        url: String,
        /// What async-nats reported.
        #[source]
        source: async_nats::ConnectError,
    },
    /// A NATS operation (publish, subscribe, flush) failed.
    #[error("NATS {op} on {subject} failed")]
    Nats {
        /// Which operation: `publish`, `subscribe`, `request`, `flush`.
        op: &'static str,
        /// Subject of the operation.
        subject: String,
        /// What async-nats reported.
        #[source]
        source: async_nats::Error,
    },
    /// A request got no reply within its timeout (responders exist but are slow, or the
    /// bus is disconnected).
    #[error("request on {subject} timed out")]
    RequestTimedOut {
        /// Subject of the request.
        subject: String,
    },
    /// A request found nobody subscribed to its subject.
    #[error("no responders on {subject}")]
    NoResponders {
        /// Subject of the request.
        subject: String,
    },
    /// A message header name is not a valid NATS header name.
    #[error("invalid header name {name:?}")]
    InvalidHeader {
        /// The rejected name.
        name: String,
    },
    /// A static membership entry is not `id=host:port`.
    #[error("invalid member {entry:?}: {reason}")]
    InvalidMember {
        /// The entry as given.
        entry: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Building a Kubernetes client failed (no in-cluster config or kubeconfig).
    #[error("kubernetes client: {0}")]
    Kubernetes(#[source] kube::Error),
}

/// Result with [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;
