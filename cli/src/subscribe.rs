//! `fanout subscribe`: a small graphql-transport-ws client that prints each `next`
//! payload as one JSON line.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use futures_util::{SinkExt, StreamExt};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use serde_json::{Value, json};
use tokio_tungstenite::Connector;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

/// A server message with its payload kept as raw JSON text.
#[derive(serde::Deserialize)]
struct Frame<'a> {
    #[serde(borrow)]
    payload: Option<&'a serde_json::value::RawValue>,
}

/// Arguments of `fanout subscribe`.
#[derive(Debug, Args)]
pub struct SubscribeArgs {
    /// The subscription document, for example `subscription { chatMessage(room: "lobby") { from text } }`.
    pub query: String,
    /// Variables as a JSON object.
    #[arg(long)]
    pub variables: Option<String>,
    /// Operation to run when the document has several.
    #[arg(long)]
    pub operation_name: Option<String>,
    /// WebSocket endpoint.
    #[arg(
        long,
        env = "FANOUT_URL",
        default_value = "ws://127.0.0.1:8080/graphql"
    )]
    pub url: String,
    /// JWT sent as `token` in `connection_init`.
    #[arg(long, env = "FANOUT_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Exit after this many events.
    #[arg(long)]
    pub count: Option<u64>,
    /// PEM file of the CA (or self-signed certificate) to trust for a `wss://` URL
    /// [default: the system's roots].
    #[arg(long, env = "FANOUT_CA", value_name = "FILE")]
    pub ca: Option<PathBuf>,
}

/// Entry point of the subcommand.
pub async fn main(args: SubscribeArgs) -> ExitCode {
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

async fn run(args: SubscribeArgs) -> anyhow::Result<()> {
    let variables: Option<Value> = match &args.variables {
        None => None,
        Some(text) => {
            let v: Value = serde_json::from_str(text)
                .map_err(|e| anyhow::anyhow!("--variables is not valid JSON: {e}"))?;
            anyhow::ensure!(v.is_object(), "--variables must be a JSON object");
            Some(v)
        }
    };
    let mut request = args.url.as_str().into_client_request()?;
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        HeaderValue::from_static("graphql-transport-ws"),
    );
    let connector = if args.url.starts_with("wss://") {
        Some(tls_connector(args.ca.as_deref())?)
    } else if args.ca.is_some() {
        anyhow::bail!("--ca needs a wss:// --url");
    } else {
        None
    };
    let (mut ws, _) =
        tokio_tungstenite::connect_async_tls_with_config(request, None, false, connector)
            .await
            .map_err(|e| anyhow::anyhow!("cannot connect to {}: {e}", args.url))?;
    let init_payload = match &args.token {
        Some(t) => json!({ "token": t }),
        None => json!({}),
    };
    ws.send(Message::text(
        json!({"type": "connection_init", "payload": init_payload}).to_string(),
    ))
    .await?;
    let mut subscribed = false;
    let mut received = 0u64;
    if args.count == Some(0) {
        return Ok(());
    }
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(3600), ws.next())
            .await
            .map_err(|_| anyhow::anyhow!("no message for an hour"))?;
        let msg = match msg {
            None => anyhow::bail!("connection closed"),
            Some(m) => m?,
        };
        let text = match msg {
            Message::Text(t) => t,
            Message::Close(frame) => {
                let (code, reason) = frame
                    .map(|f| (u16::from(f.code), f.reason.to_string()))
                    .unwrap_or((1005, String::new()));
                anyhow::bail!("server closed the connection: {code} {reason}");
            }
            _ => continue,
        };
        let v: Value = serde_json::from_str(&text)?;
        match v["type"].as_str() {
            Some("connection_ack") if !subscribed => {
                subscribed = true;
                let mut payload = json!({ "query": args.query });
                if let Some(vars) = &variables {
                    payload["variables"] = vars.clone();
                }
                if let Some(op) = &args.operation_name {
                    payload["operationName"] = json!(op);
                }
                ws.send(Message::text(
                    json!({"id": "1", "type": "subscribe", "payload": payload}).to_string(),
                ))
                .await?;
            }
            Some("ping") => {
                ws.send(Message::text(json!({"type": "pong"}).to_string()))
                    .await?;
            }
            Some("next") => {
                // Print the payload exactly as the server sent it (field order included).
                let raw: Frame<'_> = serde_json::from_str(&text)?;
                println!("{}", raw.payload.map(|p| p.get()).unwrap_or("null"));
                received += 1;
                if args.count.is_some_and(|n| received >= n) {
                    let _ = ws
                        .send(Message::text(
                            json!({"id": "1", "type": "complete"}).to_string(),
                        ))
                        .await;
                    let _ = ws.close(None).await;
                    return Ok(());
                }
            }
            Some("error") => anyhow::bail!("subscription refused: {}", v["payload"]),
            Some("complete") => return Ok(()),
            _ => {}
        }
    }
}

/// A rustls connector trusting `ca` (PEM certificates), or the system's roots.
fn tls_connector(ca: Option<&Path>) -> anyhow::Result<Connector> {
    let mut roots = rustls::RootCertStore::empty();
    match ca {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|e| anyhow::anyhow!("--ca {}: {e}", path.display()))?;
            anyhow::ensure!(
                !certs.is_empty(),
                "--ca {}: no PEM certificate in the file",
                path.display()
            );
            for cert in certs {
                roots
                    .add(cert)
                    .map_err(|e| anyhow::anyhow!("--ca {}: {e}", path.display()))?;
            }
        }
        None => {
            let native = rustls_native_certs::load_native_certs();
            let (added, _) = roots.add_parsable_certificates(native.certs);
            anyhow::ensure!(
                added > 0,
                "no system root certificates found; use --ca FILE"
            );
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Connector::Rustls(Arc::new(config)))
}
