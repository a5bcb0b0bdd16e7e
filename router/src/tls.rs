//! TLS termination for the gRPC listener: a certificate chain and key from PEM files,
//! checked when loaded so a bad file is a startup error, not a failure at first connect.

use std::path::{Path, PathBuf};

use tonic::transport::{Identity, Server, ServerTlsConfig};

/// Why the gRPC TLS settings could not be loaded. Never carries key material.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The certificate and key do not form a usable identity.
    #[error("TLS certificate {cert} with key {key} is not usable")]
    Invalid {
        /// Certificate file.
        cert: PathBuf,
        /// Key file.
        key: PathBuf,
        /// Why.
        #[source]
        source: tonic::transport::Error,
    },
}

/// A TLS config serving `cert` (PEM chain, leaf first) with `key` (PEM private key).
pub fn server_tls(cert: &Path, key: &Path) -> Result<ServerTlsConfig, TlsError> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|source| TlsError::Read {
            path: path.to_owned(),
            source,
        })
    };
    let config = ServerTlsConfig::new().identity(Identity::from_pem(read(cert)?, read(key)?));
    // Building an acceptor parses the PEM and checks the key against the certificate.
    Server::builder()
        .tls_config(config.clone())
        .map_err(|source| TlsError::Invalid {
            cert: cert.to_owned(),
            key: key.to_owned(),
            source,
        })?;
    Ok(config)
}
