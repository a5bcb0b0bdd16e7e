//! A peer for `fanout-bench`: the bundled example's `chatMessage(room:)` subscription
//! served over graphql-transport-ws by async-graphql on axum, with a tiny
//! `POST /publish` endpoint (`{"channel": "chat.<room>", "payload": {...}}`).
//!
//! Usage: `peer-async-graphql [LISTEN]` (default 127.0.0.1:8090). WebSocket at /graphql.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_graphql::{Context, EmptyMutation, Object, Schema, SimpleObject, Subscription};
use async_graphql_axum::GraphQLSubscription;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use futures_util::{Stream, StreamExt};
use serde::Deserialize;
use tokio::sync::broadcast;
use tokio_stream::wrappers::BroadcastStream;

/// Events buffered per room for a subscriber that falls behind; beyond it, it misses some.
const ROOM_BUFFER: usize = 4096;

#[derive(Clone, SimpleObject, Deserialize)]
struct ChatMessage {
    room: String,
    from: String,
    text: String,
}

/// One broadcast channel per room.
#[derive(Default, Clone)]
struct Rooms(Arc<Mutex<HashMap<String, broadcast::Sender<Arc<ChatMessage>>>>>);

impl Rooms {
    fn sender(&self, room: &str) -> broadcast::Sender<Arc<ChatMessage>> {
        let mut rooms = self.0.lock().unwrap_or_else(|e| e.into_inner());
        rooms
            .entry(room.to_string())
            .or_insert_with(|| broadcast::channel(ROOM_BUFFER).0)
            .clone()
    }
}

struct Query;

#[Object]
impl Query {
    /// GraphQL needs a query root; this peer only serves subscriptions.
    async fn health(&self) -> Option<String> {
        Some("ok".into())
    }
}

struct SubscriptionRoot;

#[Subscription]
impl SubscriptionRoot {
    /// Messages of one chat room, passed through as published.
    async fn chat_message(
        &self,
        ctx: &Context<'_>,
        room: String,
    ) -> impl Stream<Item = Option<ChatMessage>> + use<> {
        let rx = ctx.data_unchecked::<Rooms>().sender(&room).subscribe();
        BroadcastStream::new(rx)
            .filter_map(|m| async move { m.ok().map(|m| Some((*m).clone())) })
    }
}

#[derive(Deserialize)]
struct Publish {
    channel: String,
    payload: ChatMessage,
}

async fn publish(State(rooms): State<Rooms>, Json(body): Json<Publish>) -> StatusCode {
    let Some(room) = body.channel.strip_prefix("chat.") else {
        return StatusCode::NOT_FOUND;
    };
    // No subscriber is not an error: the event just reaches nobody.
    let _ = rooms.sender(room).send(Arc::new(body.payload));
    StatusCode::NO_CONTENT
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let listen = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8090".into());
    let rooms = Rooms::default();
    let schema = Schema::build(Query, EmptyMutation, SubscriptionRoot)
        .data(rooms.clone())
        .finish();
    let app = Router::new()
        .route_service("/graphql", GraphQLSubscription::new(schema))
        .route("/publish", post(publish))
        .with_state(rooms);
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    eprintln!("async-graphql peer on {listen}");
    axum::serve(listener, app).await
}
