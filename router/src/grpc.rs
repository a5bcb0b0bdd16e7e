//! The `fanout.v1.Publisher` gRPC service, served with reflection and health, and with
//! publisher authentication, channel grants, publish rate limits and TLS when
//! configured ([`GrpcSecurity`]).
//!
//! Each publish is checked in this order, and refused with:
//! 1. authentication (`UNAUTHENTICATED`, see [`crate::publisher_auth`]);
//! 2. the publisher's channel grants (`PERMISSION_DENIED`);
//! 3. the publisher's rate (`RESOURCE_EXHAUSTED`, see [`crate::rate`]);
//! 4. validation (`INVALID_ARGUMENT`), then the partition owner.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use fanout_core::telemetry;
use fanout_proto::v1::publisher_server::{Publisher, PublisherServer};
use fanout_proto::v1::{PublishReply, PublishRequest};
use futures_util::{Stream, StreamExt};
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_util::sync::CancellationToken;
use tonic::transport::ServerTlsConfig;
use tonic::{Code, Request, Response, Status, Streaming};
use tracing::Instrument as _;

use crate::interest_server::InterestService;
use crate::publisher_auth::{self, PublisherAuth};
use crate::rate::PublishRate;
use crate::{Error, Result, Router};
use fanout_proto::v1::interest_server::InterestServer;

/// Security settings of the publish API. The default is open: no authentication, no
/// rate limit, plain-text HTTP/2.
#[derive(Debug, Default)]
pub struct GrpcSecurity {
    /// Publishers and their channel grants; empty means anyone may publish.
    pub publishers: PublisherAuth,
    /// Publish rate per publisher.
    pub rate: PublishRate,
    /// TLS termination (see [`crate::tls`]); `None` serves plain text.
    pub tls: Option<ServerTlsConfig>,
}

/// gRPC front of a [`Router`].
#[derive(Debug, Clone)]
pub struct PublisherService {
    router: Arc<Router>,
    auth: Arc<PublisherAuth>,
    rate: Arc<PublishRate>,
}

impl PublisherService {
    /// Serves `router` to anyone, without rate limits.
    pub fn new(router: Arc<Router>) -> Self {
        Self::with_security(router, PublisherAuth::default(), PublishRate::default())
    }

    /// Serves `router` to the publishers of `auth`, at most at `rate`.
    pub fn with_security(router: Arc<Router>, auth: PublisherAuth, rate: PublishRate) -> Self {
        Self {
            router,
            auth: Arc::new(auth),
            rate: Arc::new(rate),
        }
    }

    /// Authenticates a call; the publisher and its rate-limit key.
    fn authenticate<T>(&self, request: &Request<T>) -> Result<Caller, Status> {
        let publisher = self.auth.authenticate(request.metadata()).inspect_err(|_| {
            refused("unauthenticated");
            tracing::debug!(peer = ?request.remote_addr(), "publish refused: not authenticated");
        })?;
        let key = match publisher.name() {
            Some(name) => format!("publisher:{name}"),
            None => request.remote_addr().map_or_else(
                || "peer:unknown".to_owned(),
                |a: SocketAddr| format!("peer:{}", a.ip()),
            ),
        };
        Ok(Caller { publisher, key })
    }
}

/// An authenticated caller.
#[derive(Debug, Clone)]
struct Caller {
    publisher: publisher_auth::Publisher,
    key: String,
}

impl Caller {
    /// Grants, then rate, for one request.
    fn admit(&self, rate: &PublishRate, channel: &str) -> Result<(), Status> {
        self.publisher.check_channel(channel).inspect_err(|_| {
            refused("permission_denied");
            tracing::debug!(
                publisher = self.publisher.name(),
                channel,
                "publish refused: outside the publisher's grants"
            );
        })?;
        rate.check(self.publisher.name(), &self.key)
            .inspect_err(|_| {
                refused("rate_limited");
            })
    }
}

/// The caller's `traceparent` metadata, if any.
fn traceparent(metadata: &tonic::metadata::MetadataMap) -> Option<String> {
    metadata
        .get(fanout_core::trace::TRACEPARENT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// The `publish` span of one event (exported only when span export is on).
fn publish_span(channel: &str) -> tracing::Span {
    tracing::debug_span!(
        target: fanout_core::trace::SPAN_TARGET,
        "publish",
        otel.kind = "server",
        channel,
        offset = tracing::field::Empty,
    )
}

fn refused(reason: &'static str) {
    metrics::counter!(telemetry::ROUTER_PUBLISH_REFUSALS, "reason" => reason).increment(1);
}

type ReplyStream = Pin<Box<dyn Stream<Item = Result<PublishReply, Status>> + Send>>;

#[tonic::async_trait]
impl Publisher for PublisherService {
    async fn publish(
        &self,
        request: Request<PublishRequest>,
    ) -> Result<Response<PublishReply>, Status> {
        let caller = self.authenticate(&request)?;
        let incoming = traceparent(request.metadata());
        let mut request = request.into_inner();
        let span = publish_span(&request.channel);
        fanout_core::trace::publish(&span, &mut request.headers, incoming.as_deref());
        caller.admit(&self.rate, &request.channel)?;
        let reply = self
            .router
            .publish(request)
            .instrument(span.clone())
            .await?;
        span.record("offset", reply.offset);
        Ok(Response::new(reply))
    }

    type PublishStreamStream = ReplyStream;

    /// Replies come back in request order. The call is authenticated once; each request
    /// is checked against the grants and the rate. A refused or invalid request ends
    /// the stream with its status, naming its position; requests before it were
    /// published.
    async fn publish_stream(
        &self,
        request: Request<Streaming<PublishRequest>>,
    ) -> Result<Response<Self::PublishStreamStream>, Status> {
        let caller = self.authenticate(&request)?;
        let incoming = traceparent(request.metadata());
        let service = self.clone();
        let requests = request.into_inner();
        let replies = futures_util::stream::unfold(
            (requests, service, caller, 0usize, false),
            move |(mut requests, service, caller, index, done)| {
                let incoming = incoming.clone();
                async move {
                    if done {
                        return None;
                    }
                    let next = requests.next().await?;
                    let item = match next {
                        Ok(mut req) => match caller.admit(&service.rate, &req.channel) {
                            Err(status) => Err(Status::new(
                                status.code(),
                                format!("request #{index}: {}", status.message()),
                            )),
                            Ok(()) => {
                                let span = publish_span(&req.channel);
                                fanout_core::trace::publish(
                                    &span,
                                    &mut req.headers,
                                    incoming.as_deref(),
                                );
                                let published =
                                    service.router.publish(req).instrument(span.clone()).await;
                                if let Ok(reply) = &published {
                                    span.record("offset", reply.offset);
                                }
                                published.map_err(|e| match e {
                                    Error::InvalidRequest(m) => Status::new(
                                        Code::InvalidArgument,
                                        format!("request #{index}: {m}"),
                                    ),
                                    other => other.into(),
                                })
                            }
                        },
                        Err(status) => Err(status),
                    };
                    let failed = item.is_err();
                    Some((item, (requests, service, caller, index + 1, failed)))
                }
            },
        );
        Ok(Response::new(Box::pin(replies)))
    }
}

/// Serves the publish API with server reflection and `grpc.health.v1` on `listener`
/// until `shutdown` fires, open to anyone and in plain text.
pub async fn serve(
    router: Arc<Router>,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<()> {
    serve_with(router, listener, GrpcSecurity::default(), shutdown).await
}

/// [`serve`] with publisher authentication, rate limits and TLS from `security`.
/// Health and reflection stay unauthenticated (they reveal no events).
pub async fn serve_with(
    router: Arc<Router>,
    listener: TcpListener,
    security: GrpcSecurity,
    shutdown: CancellationToken,
) -> Result<()> {
    serve_all(router, None, listener, security, shutdown).await
}

/// [`serve_with`] plus the `fanout.v1.Interest` service edges stream their interest
/// to (cluster mode).
pub async fn serve_cluster(
    router: Arc<Router>,
    interest: InterestService,
    listener: TcpListener,
    security: GrpcSecurity,
    shutdown: CancellationToken,
) -> Result<()> {
    serve_all(router, Some(interest), listener, security, shutdown).await
}

async fn serve_all(
    router: Arc<Router>,
    interest: Option<InterestService>,
    listener: TcpListener,
    security: GrpcSecurity,
    shutdown: CancellationToken,
) -> Result<()> {
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_serving::<PublisherServer<PublisherService>>()
        .await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(fanout_proto::v1::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| Error::Unavailable(format!("reflection: {e}")))?;
    let mut builder = tonic::transport::Server::builder();
    if let Some(tls) = security.tls {
        builder = builder.tls_config(tls).map_err(Error::Transport)?;
    }
    let service = PublisherService::with_security(router, security.publishers, security.rate);
    builder
        .add_service(PublisherServer::new(service))
        .add_optional_service(interest.map(InterestServer::new))
        .add_service(health)
        .add_service(reflection)
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown.cancelled())
        .await
        .map_err(Error::Transport)
}
