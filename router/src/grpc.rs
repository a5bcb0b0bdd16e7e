//! The `fanout.v1.Publisher` gRPC service, served with reflection and health.

use std::pin::Pin;
use std::sync::Arc;

use fanout_proto::v1::publisher_server::{Publisher, PublisherServer};
use fanout_proto::v1::{PublishReply, PublishRequest};
use futures_util::{Stream, StreamExt};
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status, Streaming};

use crate::{Error, Result, Router};

/// gRPC front of a [`Router`].
#[derive(Debug, Clone)]
pub struct PublisherService {
    router: Arc<Router>,
}

impl PublisherService {
    /// Serves `router`.
    pub fn new(router: Arc<Router>) -> Self {
        Self { router }
    }
}

type ReplyStream = Pin<Box<dyn Stream<Item = Result<PublishReply, Status>> + Send>>;

#[tonic::async_trait]
impl Publisher for PublisherService {
    async fn publish(
        &self,
        request: Request<PublishRequest>,
    ) -> Result<Response<PublishReply>, Status> {
        let reply = self.router.publish(request.into_inner()).await?;
        Ok(Response::new(reply))
    }

    type PublishStreamStream = ReplyStream;

    /// Replies come back in request order. An invalid request ends the stream with
    /// `INVALID_ARGUMENT` naming its position; requests before it were published.
    async fn publish_stream(
        &self,
        request: Request<Streaming<PublishRequest>>,
    ) -> Result<Response<Self::PublishStreamStream>, Status> {
        let router = self.router.clone();
        let requests = request.into_inner();
        let replies = futures_util::stream::unfold(
            (requests, router, 0usize, false),
            |(mut requests, router, index, done)| async move {
                if done {
                    return None;
                }
                let next = requests.next().await?;
                let item = match next {
                    Ok(req) => router.publish(req).await.map_err(|e| match e {
                        Error::InvalidRequest(m) => {
                            Status::invalid_argument(format!("request #{index}: {m}"))
                        }
                        other => other.into(),
                    }),
                    Err(status) => Err(status),
                };
                let failed = item.is_err();
                Some((item, (requests, router, index + 1, failed)))
            },
        );
        Ok(Response::new(Box::pin(replies)))
    }
}

/// Serves the publish API with server reflection and `grpc.health.v1` on `listener`
/// until `shutdown` fires.
pub async fn serve(
    router: Arc<Router>,
    listener: TcpListener,
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
    tonic::transport::Server::builder()
        .add_service(PublisherServer::new(PublisherService::new(router)))
        .add_service(health)
        .add_service(reflection)
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown.cancelled())
        .await
        .map_err(Error::Transport)
}
