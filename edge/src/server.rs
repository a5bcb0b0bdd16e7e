//! The HTTP side: the axum router with the WebSocket endpoint, and serving it until
//! shutdown.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::extract::State;
use axum::extract::connect_info::{ConnectInfo, Connected};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::serve::{IncomingStream, Listener};
use fanout_core::security::bearer;
use hyper::upgrade::OnUpgrade;
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_util::sync::CancellationToken;

use crate::edge::Edge;
use crate::handshake::{Handshake, HandshakeError};
use crate::listener::{PeerAddr, TlsListener};
use crate::{limits, socket};

/// The only subprotocol served.
pub const SUBPROTOCOL: &str = "graphql-transport-ws";

/// The body of the 503 that refuses an upgrade while the edge drains.
pub const DRAINING_BODY: &str = "edge is draining; connect to another edge\n";

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
    /// closes every socket still open with 1001 (after a drain, see [`crate::drain`],
    /// there are normally none) and returns once they are closed (or after a grace
    /// period).
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        shutdown: CancellationToken,
    ) -> std::io::Result<()> {
        self.serve_on(crate::listener::NoDelayListener(listener), shutdown)
            .await
    }

    /// [`Edge::serve`] with TLS terminated on `listener` by `tls` (see [`crate::tls`]).
    pub async fn serve_tls(
        self: Arc<Self>,
        listener: TcpListener,
        tls: Arc<rustls::ServerConfig>,
        shutdown: CancellationToken,
    ) -> std::io::Result<()> {
        let listener = TlsListener::new(listener, tls)?;
        self.serve_on(listener, shutdown).await
    }

    async fn serve_on<L>(
        self: Arc<Self>,
        listener: L,
        shutdown: CancellationToken,
    ) -> std::io::Result<()>
    where
        L: Listener<Addr = std::net::SocketAddr>,
        PeerAddr: for<'a> Connected<IncomingStream<'a, L>>,
    {
        let edge = self.clone();
        let app = self
            .router()
            .into_make_service_with_connect_info::<PeerAddr>();
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                shutdown.cancelled().await;
                edge.close_connections();
            })
            .await;
        // A failed accept loop ends here without the graceful-shutdown signal.
        self.close_connections();
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

/// Initial read buffer of a WebSocket. tungstenite's default (128 KiB, zero-filled
/// at the upgrade) made an idle connection cost ~140 KB of RSS; client frames are
/// small (subscribe, ping, complete) and the buffer grows for a larger one, up to
/// the message size limit.
const READ_BUFFER_BYTES: usize = 512;

async fn upgrade(State(edge): State<Arc<Edge>>, mut request: Request) -> Response {
    let handshake = match Handshake::check(
        request.method(),
        request.version(),
        request.headers(),
        SUBPROTOCOL,
    ) {
        Ok(handshake) => handshake,
        Err(refusal) => return refusal.into_response(),
    };
    let Some(on_upgrade) = request.extensions_mut().remove::<OnUpgrade>() else {
        return HandshakeError::NotUpgradable.into_response();
    };
    if edge.is_draining() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::CONNECTION, "close")],
            DRAINING_BODY,
        )
            .into_response();
    }
    let headers = request.headers();
    // Origin (403) and connections per IP (429) are refused before upgrading.
    let peer = request
        .extensions()
        .get::<ConnectInfo<PeerAddr>>()
        .map(|info| info.0.0.ip());
    let ip_slot = match limits::admit(&edge, headers, peer) {
        Ok(slot) => slot,
        Err(refusal) => return refusal.into_response(),
    };
    let max = edge.config.max_message_bytes;
    let config = WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER_BYTES)
        .max_message_size(Some(max))
        .max_frame_size(Some(max));
    let accepted = handshake.protocol_accepted();
    // Used at `connection_init` when its payload carries no token.
    let upgrade_token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer);
    let tracker = edge.tracker.clone();
    tokio::spawn(tracker.track_future(async move {
        let _ip_slot = ip_slot;
        match on_upgrade.await {
            Ok(upgraded) => {
                socket::serve(edge, upgraded, config, accepted, upgrade_token).await;
            }
            Err(e) => tracing::debug!(error = %e, "WebSocket upgrade failed"),
        }
    }));
    handshake.accept()
}
