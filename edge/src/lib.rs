//! `fanout-edge`: the WebSocket side of Fanout.
//!
//! An edge holds client connections speaking `graphql-transport-ws` (the protocol of
//! the `graphql-ws` library), keeps the local index of which shapes its subscribers
//! want, reports that interest to routers, and turns deliveries from the bus into
//! `next` frames.
//!
//! A tour of the modules, in the order a frame travels:
//! - [`server`]: the axum router with the WebSocket endpoint and [`Edge::serve`]
//!   (message size limits, upgrades refused with 503 while draining, shutdown with
//!   1001 for connections still open); [`handshake`]: the opening handshake and
//!   subprotocol negotiation.
//! - [`socket`]: an upgraded socket split into tungstenite's reader and the writer's
//!   half.
//! - [`drain`]: [`Edge::drain`], closing every connection with 1012 spread over the
//!   drain window before the edge stops.
//! - [`connection`]: one socket = a protocol reader and an outbound writer, joined.
//! - [`protocol`]: the `graphql-transport-ws` state machine ([`protocol::Session`]):
//!   init and auth, ping/pong keepalive, subscribe/complete, token expiry.
//! - [`message`]: parsing client messages, writing server messages.
//! - [`authorize`]: the `@auth` check at subscribe time.
//! - [`close`]: every close code and reason, in one place.
//! - [`outbound`]: the bounded per-connection queue, the out-of-band close signal and
//!   the writer that batches frames per flush; [`frame_sink`]: the writer's buffer,
//!   one socket write per batch; [`ws_frame`]: WebSocket framing of what it sends;
//!   [`next_target`]: a subscription as its queued frames see it.
//! - [`frame_queue`]: the queue under it, which allocates nothing while empty.
//! - [`interest_client`]: [`interest_client::ClusterInterest`], the interest sink of
//!   cluster mode: gRPC `Interest` streams to the routers that own each channel.
//! - [`shape_index`]: local shape → subscribers, with interest add/remove.
//! - [`delivery`]: bus → [`reorder`] (sequence order per router) → [`Edge::deliver`]
//!   → frames.
//! - [`edge`]: the shared [`Edge`] and its [`EdgeStats`].
//! - [`config`]: [`EdgeConfig`] and its defaults.
//! - [`limits`]: connection caps per IP and tenant, subscribe rate, query complexity
//!   ([`limits::EdgeLimits`]); [`origin`]: the allowed-`Origin` check.
//! - [`listener`]: plain and TLS listeners ([`listener::TlsListener`]) and the peer
//!   address handlers see; [`tls`]: loading a certificate and key.
//! - [`error`]: the crate's [`Error`].

pub mod authorize;
pub mod close;
pub mod config;
pub mod connection;
pub mod delivery;
pub mod drain;
pub mod edge;
pub mod error;
pub mod frame_queue;
pub mod frame_sink;
pub mod handshake;
pub mod interest_client;
pub mod limits;
pub mod listener;
pub mod message;
pub mod next_target;
pub mod origin;
pub mod outbound;
pub mod protocol;
pub mod reorder;
pub mod server;
pub mod shape_index;
pub mod socket;
pub mod tls;
pub mod ws_frame;

pub use close::CloseReason;
pub use config::EdgeConfig;
pub use edge::{Edge, EdgeStats};
pub use error::{Error, Result};
pub use server::SUBPROTOCOL;
