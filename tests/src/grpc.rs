//! gRPC clients: `fanout.v1.Publisher`, `grpc.health.v1.Health` and server reflection.

use std::collections::HashMap;

use anyhow::{Context as _, Result, bail};
use fanout_proto::v1::publisher_client::PublisherClient;
use fanout_proto::v1::{PublishReply, PublishRequest};
use serde_json::Value;
use tonic::transport::Channel;

use crate::{STEP, within};

/// Opens a gRPC channel to `url` (`http://127.0.0.1:Q`).
pub async fn channel(url: &str) -> Result<Channel> {
    let endpoint = Channel::from_shared(url.to_string()).context("bad gRPC URL")?;
    within(STEP, "gRPC connect", endpoint.connect())
        .await?
        .with_context(|| format!("cannot connect to gRPC at {url}"))
}

/// A publisher connected to a Fanout gRPC endpoint.
#[derive(Clone)]
pub struct Publisher {
    client: PublisherClient<Channel>,
}

impl Publisher {
    /// Connects to `url`.
    pub async fn connect(url: &str) -> Result<Publisher> {
        Ok(Publisher {
            client: PublisherClient::new(channel(url).await?),
        })
    }

    /// Publishes `event` on `channel`; any gRPC error fails.
    pub async fn publish(&mut self, channel: &str, event: &Value) -> Result<PublishReply> {
        let req = request(channel, event.to_string().into_bytes());
        self.try_publish(req)
            .await?
            .with_context(|| format!("publish to {channel} failed"))
    }

    /// Publishes `event` on `channel` with a tenant and headers.
    pub async fn publish_with(
        &mut self,
        channel: &str,
        event: &Value,
        tenant: &str,
        headers: &[(&str, &str)],
    ) -> Result<PublishReply> {
        let mut req = request(channel, event.to_string().into_bytes());
        req.tenant = tenant.to_string();
        req.headers = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<HashMap<_, _>>();
        self.try_publish(req)
            .await?
            .with_context(|| format!("publish to {channel} failed"))
    }

    /// Sends `req`; the outer error is a timeout, the inner one the gRPC status.
    pub async fn try_publish(
        &mut self,
        req: PublishRequest,
    ) -> Result<Result<PublishReply, tonic::Status>> {
        let reply = within(STEP, "gRPC Publish", self.client.publish(req)).await?;
        Ok(reply.map(tonic::Response::into_inner))
    }

    /// Publishes all `events` on `channel` over one `PublishStream`; returns the replies.
    pub async fn publish_stream(
        &mut self,
        channel: &str,
        events: &[Value],
    ) -> Result<Vec<PublishReply>> {
        let reqs: Vec<PublishRequest> = events
            .iter()
            .map(|e| request(channel, e.to_string().into_bytes()))
            .collect();
        let n = reqs.len();
        let mut stream = within(
            STEP,
            "gRPC PublishStream open",
            self.client.publish_stream(futures_util::stream::iter(reqs)),
        )
        .await?
        .context("PublishStream failed")?
        .into_inner();
        let mut replies = Vec::with_capacity(n);
        while replies.len() < n {
            match within(STEP, "PublishStream reply", stream.message()).await? {
                Ok(Some(r)) => replies.push(r),
                Ok(None) => bail!("PublishStream ended after {} of {n} replies", replies.len()),
                Err(status) => bail!(
                    "PublishStream failed after {} replies: {status}",
                    replies.len()
                ),
            }
        }
        Ok(replies)
    }
}

/// A `PublishRequest` for `channel` with raw `payload` bytes.
pub fn request(channel: &str, payload: Vec<u8>) -> PublishRequest {
    PublishRequest {
        channel: channel.to_string(),
        payload: payload.into(),
        ..Default::default()
    }
}

/// The `grpc.health.v1` status of `service` ("" for the whole server), as its name
/// (`SERVING`, `NOT_SERVING`, ...).
pub async fn health_status(url: &str, service: &str) -> Result<String> {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;

    let mut client = HealthClient::new(channel(url).await?);
    let reply = within(
        STEP,
        "gRPC health check",
        client.check(HealthCheckRequest {
            service: service.to_string(),
        }),
    )
    .await?
    .with_context(|| format!("health check of {service:?} failed"))?
    .into_inner();
    Ok(ServingStatus::try_from(reply.status)
        .map(|s| s.as_str_name().to_string())
        .unwrap_or_else(|_| format!("unknown({})", reply.status)))
}

/// The services listed by gRPC server reflection (v1, falling back to v1alpha).
pub async fn reflection_services(url: &str) -> Result<Vec<String>> {
    match reflection_v1(url).await {
        Ok(services) => Ok(services),
        Err(v1) => reflection_v1alpha(url)
            .await
            .with_context(|| format!("reflection v1 failed too: {v1:#}")),
    }
}

async fn reflection_v1(url: &str) -> Result<Vec<String>> {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    let mut client = ServerReflectionClient::new(channel(url).await?);
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = within(
        STEP,
        "reflection v1",
        client.server_reflection_info(futures_util::stream::iter(vec![req])),
    )
    .await?
    .context("reflection v1 call failed")?
    .into_inner();
    let reply = within(STEP, "reflection v1 reply", stream.message())
        .await?
        .context("reflection v1 stream failed")?
        .context("reflection v1 sent no reply")?;
    match reply.message_response {
        Some(MessageResponse::ListServicesResponse(list)) => {
            Ok(list.service.into_iter().map(|s| s.name).collect())
        }
        other => bail!("unexpected reflection v1 reply: {other:?}"),
    }
}

async fn reflection_v1alpha(url: &str) -> Result<Vec<String>> {
    use tonic_reflection::pb::v1alpha::ServerReflectionRequest;
    use tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1alpha::server_reflection_response::MessageResponse;

    let mut client = ServerReflectionClient::new(channel(url).await?);
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = within(
        STEP,
        "reflection v1alpha",
        client.server_reflection_info(futures_util::stream::iter(vec![req])),
    )
    .await?
    .context("reflection v1alpha call failed")?
    .into_inner();
    let reply = within(STEP, "reflection v1alpha reply", stream.message())
        .await?
        .context("reflection v1alpha stream failed")?
        .context("reflection v1alpha sent no reply")?;
    match reply.message_response {
        Some(MessageResponse::ListServicesResponse(list)) => {
            Ok(list.service.into_iter().map(|s| s.name).collect())
        }
        other => bail!("unexpected reflection v1alpha reply: {other:?}"),
    }
}
