//! A `graphql-transport-ws` client for tests, over tokio-tungstenite.
//!
//! Strict by default: reading a message of the wrong type or id is an error naming what
//! arrived. Server `ping` messages are answered with `pong` unless
//! [`GqlClient::set_auto_pong`] turns that off (to test the pong timeout).

use std::time::Duration;

use anyhow::{Context as _, Result, anyhow, bail};
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::{Bytes, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::{STEP, within};

/// The subprotocol of `graphql-ws`.
pub const SUBPROTOCOL: &str = "graphql-transport-ws";

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How a connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Closed {
    /// A close frame with this code and reason.
    Frame(u16, String),
    /// A close frame without a code.
    NoCode,
    /// The TCP connection ended (or was reset) without a close frame.
    Eof(String),
}

impl Closed {
    /// The close code, if a close frame carried one.
    pub fn code(&self) -> Option<u16> {
        match self {
            Closed::Frame(code, _) => Some(*code),
            _ => None,
        }
    }
}

/// One thing read from the socket.
#[derive(Debug)]
pub enum Incoming {
    /// A text frame that parsed as JSON.
    Json(Value),
    /// A text frame that is not JSON.
    Text(String),
    /// A binary frame.
    Binary(Vec<u8>),
    /// The end of the connection.
    Closed(Closed),
}

/// A `graphql-transport-ws` client connection.
pub struct GqlClient {
    ws: Ws,
    auto_pong: bool,
    closed: Option<Closed>,
    last_text: String,
}

impl GqlClient {
    /// Opens a WebSocket offering `graphql-transport-ws` and checks that the server
    /// accepted that subprotocol.
    pub async fn connect(url: &str) -> Result<GqlClient> {
        Self::connect_with_headers(url, &[]).await
    }

    /// Like [`GqlClient::connect`], with extra handshake headers.
    pub async fn connect_with_headers(url: &str, headers: &[(&str, &str)]) -> Result<GqlClient> {
        Self::connect_with(url, headers, None).await
    }

    /// Like [`GqlClient::connect_with_headers`], through `connector` (for `wss://`
    /// with a test CA, see [`crate::tls`]).
    pub async fn connect_with(
        url: &str,
        headers: &[(&str, &str)],
        connector: Option<tokio_tungstenite::Connector>,
    ) -> Result<GqlClient> {
        let mut request = url.into_client_request().context("bad WebSocket URL")?;
        let h = request.headers_mut();
        h.insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_static(SUBPROTOCOL),
        );
        for (name, value) in headers {
            let name: tokio_tungstenite::tungstenite::http::HeaderName =
                name.parse().context("bad header name")?;
            h.insert(
                name,
                HeaderValue::from_str(value).context("bad header value")?,
            );
        }
        let (ws, response) = within(STEP, "WebSocket handshake", async {
            tokio_tungstenite::connect_async_tls_with_config(request, None, false, connector).await
        })
        .await?
        .with_context(|| format!("WebSocket handshake with {url} failed"))?;
        let accepted = response
            .headers()
            .get("Sec-WebSocket-Protocol")
            .and_then(|v| v.to_str().ok());
        if accepted != Some(SUBPROTOCOL) {
            bail!("server accepted subprotocol {accepted:?}, expected {SUBPROTOCOL:?}");
        }
        Ok(GqlClient {
            ws,
            auto_pong: true,
            closed: None,
            last_text: String::new(),
        })
    }

    /// Opens a WebSocket with a hand-written upgrade request offering `protocol` (or no
    /// `Sec-WebSocket-Protocol` header at all), without checking what the server answers.
    /// Fails if the server does not switch protocols (HTTP 101).
    pub async fn connect_raw(url: &str, protocol: Option<&str>) -> Result<GqlClient> {
        let (addr, path) = split_ws_url(url)?;
        let mut tcp = within(STEP, "TCP connect", TcpStream::connect(addr))
            .await?
            .with_context(|| format!("cannot connect to {addr}"))?;
        let mut req = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        );
        if let Some(p) = protocol {
            req.push_str(&format!("Sec-WebSocket-Protocol: {p}\r\n"));
        }
        req.push_str("\r\n");
        tcp.write_all(req.as_bytes()).await?;
        // Read the response head byte by byte so no WebSocket frame is consumed.
        let head = within(STEP, "upgrade response", async {
            let mut head = Vec::new();
            while !head.ends_with(b"\r\n\r\n") {
                let b = tcp
                    .read_u8()
                    .await
                    .context("connection closed in upgrade response")?;
                head.push(b);
                if head.len() > 16 * 1024 {
                    bail!("upgrade response head too long");
                }
            }
            Ok::<_, anyhow::Error>(head)
        })
        .await??;
        let head = String::from_utf8_lossy(&head).to_string();
        let status = head.split_whitespace().nth(1).unwrap_or("");
        if status != "101" {
            bail!("server did not switch protocols: {head}");
        }
        let ws =
            WebSocketStream::from_raw_socket(MaybeTlsStream::Plain(tcp), Role::Client, None).await;
        Ok(GqlClient {
            ws,
            auto_pong: true,
            closed: None,
            last_text: String::new(),
        })
    }

    /// Connects and completes `connection_init` / `connection_ack` without a payload.
    pub async fn connect_init(url: &str) -> Result<GqlClient> {
        let mut c = Self::connect(url).await?;
        c.init(None).await?;
        Ok(c)
    }

    /// Connects and initializes with `{"token": token}`.
    pub async fn connect_with_token(url: &str, token: &str) -> Result<GqlClient> {
        let mut c = Self::connect(url).await?;
        c.init(Some(json!({ "token": token }))).await?;
        Ok(c)
    }

    /// The text of the last text frame read, as sent (for checking field order).
    pub fn last_text(&self) -> &str {
        &self.last_text
    }

    /// Whether `ping` messages from the server are answered automatically.
    pub fn set_auto_pong(&mut self, on: bool) {
        self.auto_pong = on;
    }

    /// Sends one text frame.
    pub async fn send_text(&mut self, text: impl Into<String>) -> Result<()> {
        let text: String = text.into();
        within(
            STEP,
            "sending a text frame",
            self.ws.send(Message::text(text)),
        )
        .await?
        .context("sending a text frame")
    }

    /// Sends `value` as one JSON text frame.
    pub async fn send_json(&mut self, value: &Value) -> Result<()> {
        self.send_text(value.to_string()).await
    }

    /// Sends one binary frame.
    pub async fn send_binary(&mut self, data: Vec<u8>) -> Result<()> {
        within(
            STEP,
            "sending a binary frame",
            self.ws.send(Message::Binary(Bytes::from(data))),
        )
        .await?
        .context("sending a binary frame")
    }

    /// Sends `connection_init` (with `payload` if given) and waits for `connection_ack`;
    /// returns the ack's payload (or null).
    pub async fn init(&mut self, payload: Option<Value>) -> Result<Value> {
        let mut msg = json!({ "type": "connection_init" });
        if let Some(p) = payload {
            msg["payload"] = p;
        }
        self.send_json(&msg).await?;
        let ack = self.recv().await.context("waiting for connection_ack")?;
        if ack["type"] != "connection_ack" {
            bail!("expected connection_ack, got {ack}");
        }
        Ok(ack.get("payload").cloned().unwrap_or(Value::Null))
    }

    /// Sends `subscribe` with `query` and optional `variables`.
    pub async fn subscribe(
        &mut self,
        id: &str,
        query: &str,
        variables: Option<Value>,
    ) -> Result<()> {
        let mut payload = json!({ "query": query });
        if let Some(v) = variables {
            payload["variables"] = v;
        }
        self.send_json(&json!({ "id": id, "type": "subscribe", "payload": payload }))
            .await
    }

    /// Sends `complete` for `id`.
    pub async fn complete(&mut self, id: &str) -> Result<()> {
        self.send_json(&json!({ "id": id, "type": "complete" }))
            .await
    }

    /// Sends a client `ping` and waits for the `pong`.
    pub async fn ping(&mut self) -> Result<()> {
        self.send_json(&json!({ "type": "ping" })).await?;
        let pong = self.recv().await.context("waiting for pong")?;
        if pong["type"] != "pong" {
            bail!("expected pong, got {pong}");
        }
        Ok(())
    }

    /// Reads the next frame within `limit`, answering server pings when auto-pong is on.
    pub async fn read_within(&mut self, limit: Duration) -> Result<Incoming> {
        if let Some(c) = &self.closed {
            return Ok(Incoming::Closed(c.clone()));
        }
        // One deadline for the whole call: pings answered along the way do not extend it.
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let frame = within(left, "a WebSocket frame", self.ws.next())
                .await
                .map_err(|_| anyhow!("timed out after {limit:?} waiting for a WebSocket frame"))?;
            let incoming = match frame {
                None => Incoming::Closed(Closed::Eof("stream ended".into())),
                Some(Err(e)) => Incoming::Closed(Closed::Eof(e.to_string())),
                Some(Ok(Message::Text(t))) => {
                    self.last_text = t.as_str().to_string();
                    match serde_json::from_str::<Value>(t.as_str()) {
                        Ok(v) => Incoming::Json(v),
                        Err(_) => Incoming::Text(t.as_str().to_string()),
                    }
                }
                Some(Ok(Message::Binary(b))) => Incoming::Binary(b.to_vec()),
                Some(Ok(Message::Close(Some(f)))) => Incoming::Closed(Closed::Frame(
                    u16::from(f.code),
                    f.reason.as_str().to_string(),
                )),
                Some(Ok(Message::Close(None))) => Incoming::Closed(Closed::NoCode),
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
            };
            match &incoming {
                Incoming::Json(v) if v["type"] == "ping" && self.auto_pong => {
                    self.send_json(&json!({ "type": "pong" })).await?;
                    continue;
                }
                Incoming::Closed(c) => self.closed = Some(c.clone()),
                _ => {}
            }
            return Ok(incoming);
        }
    }

    /// Reads the next protocol message (within [`STEP`]); a close or non-JSON frame is
    /// an error.
    pub async fn recv(&mut self) -> Result<Value> {
        self.recv_within(STEP).await
    }

    /// Reads the next protocol message within `limit`.
    pub async fn recv_within(&mut self, limit: Duration) -> Result<Value> {
        match self.read_within(limit).await? {
            Incoming::Json(v) => Ok(v),
            Incoming::Text(t) => bail!("server sent a non-JSON text frame: {t:?}"),
            Incoming::Binary(b) => bail!("server sent a binary frame of {} bytes", b.len()),
            Incoming::Closed(c) => bail!("connection closed while a message was expected: {c:?}"),
        }
    }

    /// Reads the next message, which must be `next` for `id`; returns its payload.
    pub async fn next_payload(&mut self, id: &str) -> Result<Value> {
        let msg = self
            .recv()
            .await
            .with_context(|| format!("waiting for next of {id:?}"))?;
        if msg["type"] != "next" || msg["id"] != id {
            bail!("expected next for {id:?}, got {msg}");
        }
        Ok(msg["payload"].clone())
    }

    /// Reads the next message, which must be `error` for `id`; returns its payload (the
    /// list of GraphQL errors).
    pub async fn expect_error(&mut self, id: &str) -> Result<Vec<Value>> {
        let msg = self
            .recv()
            .await
            .with_context(|| format!("waiting for error of {id:?}"))?;
        if msg["type"] != "error" || msg["id"] != id {
            bail!("expected error for {id:?}, got {msg}");
        }
        match &msg["payload"] {
            Value::Array(errors) if !errors.is_empty() => Ok(errors.clone()),
            other => bail!("error payload must be a non-empty list of GraphQL errors, got {other}"),
        }
    }

    /// Reads the next message, which must be `complete` for `id`.
    pub async fn expect_complete(&mut self, id: &str) -> Result<()> {
        let msg = self
            .recv()
            .await
            .with_context(|| format!("waiting for complete of {id:?}"))?;
        if msg["type"] != "complete" || msg["id"] != id {
            bail!("expected complete for {id:?}, got {msg}");
        }
        Ok(())
    }

    /// Reads until the connection ends (within `limit`); any message before the close is
    /// an error. Returns how it ended.
    /// Server `ping` messages (seen when auto-pong is off) are skipped.
    pub async fn expect_closed_within(&mut self, limit: Duration) -> Result<Closed> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self
                .read_within(left)
                .await
                .context("waiting for the server to close")?
            {
                Incoming::Closed(c) => return Ok(c),
                Incoming::Json(v) if v["type"] == "ping" => continue,
                Incoming::Json(v) => bail!("expected the connection to close, got message {v}"),
                Incoming::Text(t) => bail!("expected the connection to close, got text {t:?}"),
                Incoming::Binary(_) => {
                    bail!("expected the connection to close, got a binary frame")
                }
            }
        }
    }

    /// Expects a close frame with `code` (within [`STEP`]); returns its reason.
    pub async fn expect_close(&mut self, code: u16) -> Result<String> {
        self.expect_close_within(code, STEP).await
    }

    /// Expects a close frame with `code` within `limit`; returns its reason.
    pub async fn expect_close_within(&mut self, code: u16, limit: Duration) -> Result<String> {
        match self.expect_closed_within(limit).await? {
            Closed::Frame(c, reason) if c == code => Ok(reason),
            other => Err(anyhow!(
                "expected close code {code}, connection ended with {other:?}"
            )),
        }
    }

    /// Reads messages until the connection ends, collecting them; fails after `limit`.
    pub async fn drain_until_closed(&mut self, limit: Duration) -> Result<(Vec<Value>, Closed)> {
        let deadline = tokio::time::Instant::now() + limit;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self
                .read_within(left)
                .await
                .with_context(|| format!("connection still open after {} messages", seen.len()))?
            {
                Incoming::Json(v) => seen.push(v),
                Incoming::Text(_) | Incoming::Binary(_) => {}
                Incoming::Closed(c) => return Ok((seen, c)),
            }
        }
    }

    /// Asserts that nothing arrives within `quiet` (the connection staying open).
    pub async fn expect_silence(&mut self, quiet: Duration) -> Result<()> {
        match self.read_within(quiet).await {
            Err(_) => Ok(()),
            Ok(Incoming::Json(v)) => bail!("expected no message, got {v}"),
            Ok(other) => bail!("expected no message, got {other:?}"),
        }
    }

    /// Sends a WebSocket ping frame (not the protocol's `ping` message) and waits for
    /// the pong frame, which must carry the same data (RFC 6455 §5.5.3).
    pub async fn ws_ping(&mut self, data: &[u8]) -> Result<()> {
        let ping = Message::Ping(Bytes::copy_from_slice(data));
        within(STEP, "sending a ping frame", self.ws.send(ping)).await??;
        loop {
            match within(STEP, "a pong frame", self.ws.next()).await? {
                Some(Ok(Message::Pong(got))) => {
                    if got.as_ref() != data {
                        bail!("pong carried {got:?}, the ping {data:?}");
                    }
                    return Ok(());
                }
                Some(Ok(Message::Ping(_))) => continue,
                other => bail!("expected a pong frame, got {other:?}"),
            }
        }
    }

    /// Starts the close handshake with `code` and returns the code of the server's
    /// answering close frame (`None` for a close frame without one).
    pub async fn close_with(mut self, code: u16) -> Result<Option<u16>> {
        let frame = tokio_tungstenite::tungstenite::protocol::CloseFrame {
            code: code.into(),
            reason: "bye".into(),
        };
        within(STEP, "sending a close frame", self.ws.close(Some(frame))).await??;
        loop {
            match within(STEP, "the answering close frame", self.ws.next()).await? {
                Some(Ok(Message::Close(frame))) => return Ok(frame.map(|f| u16::from(f.code))),
                Some(Ok(_)) => continue,
                other => bail!("expected the server's close frame, got {other:?}"),
            }
        }
    }

    /// Sends a normal close frame and waits briefly for the server's answer.
    pub async fn close(mut self) -> Result<()> {
        within(STEP, "closing the WebSocket", self.ws.close(None))
            .await?
            .ok();
        let _ = self.read_within(Duration::from_secs(2)).await;
        Ok(())
    }

    /// Drops the TCP connection without a close handshake.
    pub fn abort(self) {
        drop(self);
    }
}

/// Splits `ws://host:port/path` into (`host:port`, `/path`).
pub fn split_ws_url(url: &str) -> Result<(&str, &str)> {
    let rest = url
        .strip_prefix("ws://")
        .ok_or_else(|| anyhow!("not a ws:// URL: {url}"))?;
    Ok(match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    })
}
