//! `fanout publish CHANNEL JSON`: one event through the gRPC publish API, over TLS for
//! an `https://` server and with a publisher token when given.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use fanout_proto::v1::PublishRequest;
use fanout_proto::v1::publisher_client::PublisherClient;
use tonic::transport::{Certificate, Channel, ClientTlsConfig};

/// Arguments of `fanout publish`.
#[derive(Args)]
pub struct PublishArgs {
    /// Channel to publish to, for example `orders.42`.
    pub channel: String,
    /// The event as JSON.
    pub json: String,
    /// gRPC address of a router or of `fanout standalone`; `https://` uses TLS.
    #[arg(long, env = "FANOUT_SERVER", default_value = "http://127.0.0.1:50051")]
    pub server: String,
    /// Tenant of the event.
    #[arg(long, default_value = "")]
    pub tenant: String,
    /// Idempotency key: a retry with the same key is not delivered twice.
    #[arg(long, default_value = "")]
    pub idempotency_key: String,
    /// Publisher token, sent as `authorization: Bearer TOKEN`.
    #[arg(long, env = "FANOUT_PUBLISH_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// PEM file of the CA (or self-signed certificate) to trust for an `https://`
    /// server [default: the system's roots].
    #[arg(long, env = "FANOUT_CA", value_name = "FILE")]
    pub ca: Option<PathBuf>,
}

impl std::fmt::Debug for PublishArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublishArgs")
            .field("channel", &self.channel)
            .field("server", &self.server)
            .field("tenant", &self.tenant)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("ca", &self.ca)
            .finish_non_exhaustive()
    }
}

/// Entry point of the subcommand.
pub async fn main(args: PublishArgs) -> ExitCode {
    let mut client = match connect(&args).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: cannot connect to {}: {e:#}", args.server);
            return ExitCode::from(1);
        }
    };
    let mut request = tonic::Request::new(PublishRequest {
        channel: args.channel,
        payload: args.json.into_bytes().into(),
        tenant: args.tenant,
        headers: Default::default(),
        idempotency_key: args.idempotency_key,
    });
    if let Some(token) = &args.token {
        match format!("Bearer {token}").parse() {
            Ok(value) => {
                request.metadata_mut().insert("authorization", value);
            }
            Err(_) => {
                eprintln!("error: --token contains characters not allowed in a header");
                return ExitCode::from(1);
            }
        }
    }
    match client.publish(request).await {
        Ok(reply) => {
            let r = reply.into_inner();
            println!(
                "{}",
                serde_json::json!({"offset": r.offset, "epoch": r.epoch, "partition": r.partition})
            );
            ExitCode::SUCCESS
        }
        Err(status) => {
            eprintln!("error: {:?}: {}", status.code(), status.message());
            ExitCode::from(1)
        }
    }
}

async fn connect(args: &PublishArgs) -> anyhow::Result<PublisherClient<Channel>> {
    let mut endpoint = Channel::from_shared(args.server.clone()).context("invalid --server URL")?;
    if args.server.starts_with("https://") {
        let mut tls = ClientTlsConfig::new();
        tls = match &args.ca {
            Some(path) => {
                let pem = std::fs::read(path)
                    .with_context(|| format!("reading --ca {}", path.display()))?;
                tls.ca_certificate(Certificate::from_pem(pem))
            }
            None => tls.with_native_roots(),
        };
        endpoint = endpoint.tls_config(tls)?;
    } else if args.ca.is_some() {
        anyhow::bail!("--ca needs an https:// --server");
    }
    Ok(PublisherClient::new(endpoint.connect().await?))
}
