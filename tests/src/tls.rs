//! TLS clients trusting the test CA of `tests/fixtures/tls/` (see its `generate.sh`):
//! a rustls connector for `wss://` and a tonic channel for `https://`.

use std::sync::Arc;

use anyhow::{Context as _, Result};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use tokio_tungstenite::Connector;
use tonic::transport::{Certificate, Channel, ClientTlsConfig};

use crate::fixtures::fixture;
use crate::{STEP, within};

/// Arguments serving both listeners with the test server certificate.
pub fn server_args() -> Vec<String> {
    let cert = fixture("tls/server.pem").display().to_string();
    let key = fixture("tls/server.key").display().to_string();
    vec![
        "--tls-cert".into(),
        cert.clone(),
        "--tls-key".into(),
        key.clone(),
        "--grpc-tls-cert".into(),
        cert,
        "--grpc-tls-key".into(),
        key,
    ]
}

/// The test CA certificate, PEM.
pub fn ca_pem() -> Result<Vec<u8>> {
    let path = fixture("tls/ca.pem");
    std::fs::read(&path).with_context(|| format!("reading {}", path.display()))
}

/// A rustls client config (ring provider) trusting only the test CA.
pub fn client_config() -> Result<Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&ca_pem()?) {
        roots.add(cert.context("test CA PEM")?)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// A tokio-tungstenite connector trusting only the test CA.
pub fn connector() -> Result<Connector> {
    Ok(Connector::Rustls(client_config()?))
}

/// A gRPC channel to `url` (`https://127.0.0.1:Q`) trusting only the test CA.
pub async fn channel(url: &str) -> Result<Channel> {
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca_pem()?))
        .domain_name("localhost");
    let endpoint = Channel::from_shared(url.to_string())
        .context("bad gRPC URL")?
        .tls_config(tls)?;
    within(STEP, "gRPC TLS connect", endpoint.connect())
        .await?
        .with_context(|| format!("cannot connect to gRPC at {url}"))
}
