//! `fanout publish CHANNEL JSON`: one event through the gRPC publish API.

use std::process::ExitCode;

use clap::Args;
use fanout_proto::v1::PublishRequest;
use fanout_proto::v1::publisher_client::PublisherClient;

/// Arguments of `fanout publish`.
#[derive(Debug, Args)]
pub struct PublishArgs {
    /// Channel to publish to, for example `orders.42`.
    pub channel: String,
    /// The event as JSON.
    pub json: String,
    /// gRPC address of a router or of `fanout standalone`.
    #[arg(long, env = "FANOUT_SERVER", default_value = "http://127.0.0.1:50051")]
    pub server: String,
    /// Tenant of the event.
    #[arg(long, default_value = "")]
    pub tenant: String,
    /// Idempotency key: a retry with the same key is not delivered twice.
    #[arg(long, default_value = "")]
    pub idempotency_key: String,
}

/// Entry point of the subcommand.
pub async fn main(args: PublishArgs) -> ExitCode {
    let mut client = match PublisherClient::connect(args.server.clone()).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: cannot connect to {}: {e}", args.server);
            return ExitCode::from(1);
        }
    };
    let request = PublishRequest {
        channel: args.channel,
        payload: args.json.into_bytes().into(),
        tenant: args.tenant,
        headers: Default::default(),
        idempotency_key: args.idempotency_key,
    };
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
