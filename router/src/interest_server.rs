//! The `fanout.v1.Interest` gRPC service: edges stream which shapes they want.
//!
//! A stream starts with `hello{edge_id}`, then carries `add`/`remove` updates. The
//! router rebuilds each shape from its spec with its own copy of the schema and keeps
//! it in the channel index. When the stream ends, for whatever reason, everything that
//! edge said on it is forgotten — unless a newer stream of the same edge has replaced
//! it in the meantime.

use std::pin::Pin;
use std::sync::Arc;

use dashmap::DashMap;
use fanout_core::graphql::Schema;
use fanout_core::interest::InterestSink;
use fanout_core::shape::{Shape, ShapeId};
use fanout_proto::v1::interest_server::Interest;
use fanout_proto::v1::{
    InterestNotice, InterestUpdate, ShapeRejected, interest_notice, interest_update,
};
use futures_util::{Stream, StreamExt};
use tokio::sync::mpsc;
use tonic::{Request, Response, Status, Streaming};

use crate::index::ChannelIndex;

/// Notices queued per stream before the router stops telling the edge about rejects.
const NOTICE_QUEUE: usize = 256;

/// Serves interest streams into a [`ChannelIndex`].
#[derive(Clone)]
pub struct InterestService {
    index: Arc<ChannelIndex>,
    schema: Arc<Schema>,
    /// Edge → generation of its newest stream.
    generations: Arc<DashMap<String, u64>>,
}

impl std::fmt::Debug for InterestService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InterestService")
            .field("edges", &self.generations.len())
            .finish_non_exhaustive()
    }
}

impl InterestService {
    /// A service feeding `index`, rebuilding shapes against `schema`.
    pub fn new(index: Arc<ChannelIndex>, schema: Arc<Schema>) -> Self {
        Self {
            index,
            schema,
            generations: Arc::new(DashMap::new()),
        }
    }
}

type NoticeStream = Pin<Box<dyn Stream<Item = Result<InterestNotice, Status>> + Send>>;

#[tonic::async_trait]
impl Interest for InterestService {
    type StreamStream = NoticeStream;

    async fn stream(
        &self,
        request: Request<Streaming<InterestUpdate>>,
    ) -> Result<Response<Self::StreamStream>, Status> {
        let mut updates = request.into_inner();
        let first = updates
            .next()
            .await
            .ok_or_else(|| Status::invalid_argument("empty interest stream"))??;
        let Some(interest_update::Kind::Hello(hello)) = first.kind else {
            return Err(Status::invalid_argument(
                "an interest stream must start with hello",
            ));
        };
        if hello.edge_id.is_empty() {
            return Err(Status::invalid_argument("hello without edge_id"));
        }
        let edge = hello.edge_id;
        let generation = {
            let mut g = self.generations.entry(edge.clone()).or_insert(0);
            *g += 1;
            *g
        };
        // A new stream replaces the old one: start from a clean slate for this edge.
        self.index.drop_edge(&edge);
        tracing::info!(%edge, generation, "interest stream opened");
        let (notices, rx) = mpsc::channel(NOTICE_QUEUE);
        let service = self.clone();
        tokio::spawn(async move {
            while let Some(update) = updates.next().await {
                let Ok(update) = update else { break };
                service.apply(&edge, generation, update, &notices);
            }
            let current = service.generations.get(&edge).map(|g| *g);
            if current == Some(generation) {
                service.index.drop_edge(&edge);
                service
                    .generations
                    .remove_if(&edge, |_, g| *g == generation);
                tracing::info!(%edge, "interest stream closed; edge's interest dropped");
            }
        });
        let out = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|n| (Ok(n), rx))
        });
        Ok(Response::new(Box::pin(out)))
    }
}

impl InterestService {
    fn apply(
        &self,
        edge: &str,
        generation: u64,
        update: InterestUpdate,
        notices: &mpsc::Sender<InterestNotice>,
    ) {
        if self.generations.get(edge).map(|g| *g) != Some(generation) {
            return; // a newer stream of this edge owns its interest now
        }
        match update.kind {
            Some(interest_update::Kind::Add(spec)) => match Shape::from_spec(&self.schema, &spec) {
                Ok(shape) => {
                    if shape.id.0[..] != spec.id[..] {
                        let _ =
                            notices.try_send(reject(&spec.id, "shape id mismatch: schemas differ"));
                        return;
                    }
                    self.index.add(edge, shape);
                }
                Err(errors) => {
                    let reason = errors
                        .first()
                        .map(|e| e.message.clone())
                        .unwrap_or_else(|| "invalid shape".into());
                    tracing::warn!(%edge, %reason, "shape rejected");
                    let _ = notices.try_send(reject(&spec.id, &reason));
                }
            },
            Some(interest_update::Kind::Remove(r)) => {
                if let Some(id) = ShapeId::from_slice(&r.id) {
                    self.index.remove(edge, &r.channel, id);
                }
            }
            Some(interest_update::Kind::Hello(_)) | None => {}
        }
    }
}

fn reject(id: &[u8], reason: &str) -> InterestNotice {
    InterestNotice {
        kind: Some(interest_notice::Kind::Rejected(ShapeRejected {
            id: bytes::Bytes::copy_from_slice(id),
            reason: reason.to_owned(),
        })),
    }
}
