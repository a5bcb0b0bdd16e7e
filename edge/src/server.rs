//! The HTTP side: the axum router with the WebSocket endpoint, and serving it until
//! shutdown.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::extract::ws::WebSocketUpgrade;
use axum::response::Response;
use axum::routing::any;
use futures_util::StreamExt;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::connection;
use crate::edge::Edge;

/// The only subprotocol served.
pub const SUBPROTOCOL: &str = "graphql-transport-ws";

/// How long [`Edge::serve`] waits for connections to finish closing after shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

impl Edge {
    /// The WebSocket endpoint at `config.path`.
    pub fn router(self: &Arc<Self>) -> Router {
        Router::new()
            .route(&self.config.path, any(upgrade))
            .with_state(self.clone())
    }

    /// Serves [`Edge::router`] on `listener` until `shutdown`; then stops accepting,
    /// closes every socket with 1001 and returns once they are closed (or after a
    /// grace period).
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        shutdown: CancellationToken,
    ) -> std::io::Result<()> {
        let closing = self.closing.clone();
        let served = axum::serve(listener, self.router())
            .with_graceful_shutdown(async move {
                shutdown.cancelled().await;
                closing.cancel();
            })
            .await;
        // Sockets close on `closing`, which a failed accept loop did not cancel.
        self.closing.cancel();
        self.tracker.close();
        if tokio::time::timeout(SHUTDOWN_GRACE, self.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                open = self.stats().connections,
                "connections still open after the shutdown grace period"
            );
        }
        served
    }
}

async fn upgrade(State(edge): State<Arc<Edge>>, ws: WebSocketUpgrade) -> Response {
    let max = edge.config.max_message_bytes;
    let ws = ws
        .max_message_size(max)
        .max_frame_size(max)
        .protocols([SUBPROTOCOL]);
    let accepted = ws.selected_protocol().is_some();
    let tracker = edge.tracker.clone();
    ws.on_upgrade(move |socket| {
        tracker.track_future(async move {
            let (sink, stream) = socket.split();
            connection::run(edge, stream, sink, accepted).await;
        })
    })
}
