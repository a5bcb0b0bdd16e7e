//! The generator's WebSocket client (RFC 6455), for graphql-transport-ws.
//!
//! A load generator shares the machine with the server it measures, so every
//! microsecond it spends per frame is taken from the server and added to the latency
//! it reports. This client reads frames straight out of one buffer per connection:
//! no allocation, no copy and no waker bookkeeping per frame. It does what a client
//! of these servers needs and no more: text messages (fragmented ones too), answers
//! to pings, and close; no extensions.

use std::net::{IpAddr, SocketAddr};
use std::ops::Range;

use anyhow::{Context, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::handshake::client::generate_key;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Control, Data, OpCode};

/// Read buffer a connection starts with; it grows for larger frames.
const READ_BUFFER: usize = 8 * 1024;
/// A longer handshake response is refused.
const MAX_RESPONSE_HEAD: usize = 16 * 1024;
/// A longer message is refused (the benchmark's payloads are small).
const MAX_MESSAGE: usize = 16 * 1024 * 1024;

// Opcodes as tungstenite names them (RFC 6455 §5.2).
const OP_TEXT: OpCode = OpCode::Data(Data::Text);
const OP_BINARY: OpCode = OpCode::Data(Data::Binary);
const OP_CONTINUATION: OpCode = OpCode::Data(Data::Continue);
const OP_CLOSE: OpCode = OpCode::Control(Control::Close);
const OP_PING: OpCode = OpCode::Control(Control::Ping);
const OP_PONG: OpCode = OpCode::Control(Control::Pong);

/// What [`WsClient::next_message`] found in the buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Incoming {
    /// A whole text message; its bytes are [`WsClient::text`] of the range.
    Text(Range<usize>),
    /// The server closed the connection: code (if any) and reason.
    Close(Option<u16>, String),
}

/// One client connection.
pub struct WsClient {
    stream: TcpStream,
    buf: Vec<u8>,
    /// Bytes of `buf` already parsed.
    start: usize,
    /// A fragmented text message being put together.
    fragments: Option<Vec<u8>>,
    /// The last message put together from fragments ([`Incoming::Text`] points here
    /// when `in_fragments`).
    assembled: Vec<u8>,
    in_fragments: bool,
    /// State of the masking keys' generator (xorshift).
    mask_state: u64,
}

impl WsClient {
    /// Connects to `url` (`ws://host:port/path`) from `source` if given, asking for
    /// the `graphql-transport-ws` subprotocol, and checks the server's answer.
    pub async fn connect(url: &str, source: Option<IpAddr>) -> anyhow::Result<Self> {
        let rest = url
            .strip_prefix("ws://")
            .context("only ws:// URLs are supported")?;
        let (authority, path) = rest.find('/').map_or((rest, "/"), |i| rest.split_at(i));
        let addr = tokio::net::lookup_host(authority)
            .await
            .with_context(|| format!("resolving {authority}"))?
            .next()
            .context("host did not resolve")?;
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        if let Some(ip) = source {
            socket
                .bind(SocketAddr::new(ip, 0))
                .with_context(|| format!("binding to {ip}"))?;
        }
        let mut stream = socket.connect(addr).await?;
        stream.set_nodelay(true)?;
        let key = generate_key();
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {authority}\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: graphql-transport-ws\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await?;
        let mut buf = Vec::with_capacity(READ_BUFFER);
        let head_len = loop {
            if let Some(end) = find(&buf, b"\r\n\r\n") {
                break end + 4;
            }
            if buf.len() > MAX_RESPONSE_HEAD {
                bail!("handshake response longer than {MAX_RESPONSE_HEAD} bytes");
            }
            if stream.read_buf(&mut buf).await? == 0 {
                bail!("connection closed during the handshake");
            }
        };
        check_response(&buf[..head_len], &derive_accept_key(key.as_bytes()))?;
        let seed = (addr.port() as u64) << 32 ^ buf.len() as u64 ^ 0x9E37_79B9_7F4A_7C15;
        Ok(Self {
            stream,
            buf,
            start: head_len,
            fragments: None,
            assembled: Vec::new(),
            in_fragments: false,
            mask_state: seed | 1,
        })
    }

    /// The bytes of a text message returned by [`WsClient::next_message`].
    pub fn text(&self, range: Range<usize>) -> &[u8] {
        if self.in_fragments {
            &self.assembled[range]
        } else {
            &self.buf[range]
        }
    }

    /// The next whole message already read, if any; answers pings on the way.
    pub async fn next_message(&mut self) -> anyhow::Result<Option<Incoming>> {
        loop {
            let Some(frame) = parse_header(&self.buf[self.start..])? else {
                return Ok(None);
            };
            let body = self.start + frame.header_len..self.start + frame.header_len + frame.len;
            self.start = body.end;
            match OpCode::from(frame.opcode) {
                OP_TEXT | OP_BINARY if frame.fin => {
                    if self.fragments.is_some() {
                        bail!("a new message inside a fragmented one");
                    }
                    self.in_fragments = false;
                    return Ok(Some(Incoming::Text(body)));
                }
                OP_TEXT | OP_BINARY => {
                    if self.fragments.is_some() {
                        bail!("a new message inside a fragmented one");
                    }
                    self.fragments = Some(self.buf[body].to_vec());
                }
                OP_CONTINUATION => {
                    let Some(mut message) = self.fragments.take() else {
                        bail!("a continuation frame outside a fragmented message");
                    };
                    message.extend_from_slice(&self.buf[body]);
                    if message.len() > MAX_MESSAGE {
                        bail!("message longer than {MAX_MESSAGE} bytes");
                    }
                    if !frame.fin {
                        self.fragments = Some(message);
                        continue;
                    }
                    let len = message.len();
                    self.assembled = message;
                    self.in_fragments = true;
                    return Ok(Some(Incoming::Text(0..len)));
                }
                OP_PING => {
                    let data = self.buf[body].to_vec();
                    self.send(OP_PONG, &data).await?;
                }
                OP_PONG => {}
                OP_CLOSE => {
                    let data = &self.buf[body];
                    let code = (data.len() >= 2).then(|| u16::from_be_bytes([data[0], data[1]]));
                    let reason = String::from_utf8_lossy(data.get(2..).unwrap_or_default());
                    return Ok(Some(Incoming::Close(code, reason.into_owned())));
                }
                other => bail!("frame with reserved opcode {other}"),
            }
        }
    }

    /// Reads more from the socket; `false` once the server closed it. Cancel-safe.
    pub async fn fill(&mut self) -> anyhow::Result<bool> {
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        } else if self.start > 0 && self.buf.capacity() - self.buf.len() < READ_BUFFER / 2 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.reserve(READ_BUFFER / 2);
        Ok(self.stream.read_buf(&mut self.buf).await? > 0)
    }

    /// Sends one text message.
    pub async fn send_text(&mut self, text: &str) -> anyhow::Result<()> {
        self.send(OP_TEXT, text.as_bytes()).await
    }

    /// Sends a normal close (1000) and stops writing.
    pub async fn close(&mut self) -> anyhow::Result<()> {
        self.send(OP_CLOSE, &1000u16.to_be_bytes()).await?;
        self.stream.shutdown().await?;
        Ok(())
    }

    /// Writes one final frame of `opcode`, masked as a client must (RFC 6455 §5.3).
    async fn send(&mut self, opcode: OpCode, data: &[u8]) -> anyhow::Result<()> {
        let mut frame = Vec::with_capacity(data.len() + 14);
        frame.push(0x80 | u8::from(opcode));
        match data.len() {
            n if n < 126 => frame.push(0x80 | n as u8),
            n if n <= usize::from(u16::MAX) => {
                frame.push(0x80 | 126);
                frame.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                frame.push(0x80 | 127);
                frame.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        let mask = self.next_mask();
        frame.extend_from_slice(&mask);
        frame.extend(data.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.stream.write_all(&frame).await?;
        Ok(())
    }

    fn next_mask(&mut self) -> [u8; 4] {
        let mut x = self.mask_state;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.mask_state = x;
        (x as u32).to_be_bytes()
    }
}

/// A frame header read from the buffer.
#[derive(Debug)]
struct FrameHeader {
    fin: bool,
    opcode: u8,
    header_len: usize,
    len: usize,
}

/// The header of the frame at the start of `data`, once the whole frame is there.
fn parse_header(data: &[u8]) -> anyhow::Result<Option<FrameHeader>> {
    let [b0, b1, ..] = *data else {
        return Ok(None);
    };
    if b0 & 0x70 != 0 {
        bail!("frame with reserved bits set (no extension was negotiated)");
    }
    if b1 & 0x80 != 0 {
        bail!("masked frame from the server");
    }
    let (header_len, len) = match b1 & 0x7F {
        126 => {
            let Some(bytes) = data.get(2..4) else {
                return Ok(None);
            };
            (4, usize::from(u16::from_be_bytes([bytes[0], bytes[1]])))
        }
        127 => {
            let Some(bytes) = data.get(2..10) else {
                return Ok(None);
            };
            let mut len = [0u8; 8];
            len.copy_from_slice(bytes);
            (
                10,
                usize::try_from(u64::from_be_bytes(len)).unwrap_or(usize::MAX),
            )
        }
        n => (2, usize::from(n)),
    };
    if len > MAX_MESSAGE {
        bail!("frame longer than {MAX_MESSAGE} bytes");
    }
    if data.len() < header_len + len {
        return Ok(None);
    }
    Ok(Some(FrameHeader {
        fin: b0 & 0x80 != 0,
        opcode: b0 & 0x0F,
        header_len,
        len,
    }))
}

/// Checks the handshake response: 101, the accept key, and the subprotocol.
fn check_response(head: &[u8], accept: &str) -> anyhow::Result<()> {
    let head = std::str::from_utf8(head).context("handshake response is not UTF-8")?;
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap_or_default();
    if status.split(' ').nth(1) != Some("101") {
        bail!("handshake refused: {status}");
    }
    let header = |name: &str| {
        head.split("\r\n").skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    };
    if header("sec-websocket-accept") != Some(accept) {
        bail!("handshake response with a wrong Sec-WebSocket-Accept");
    }
    if header("sec-websocket-protocol") != Some("graphql-transport-ws") {
        bail!("the server did not accept the graphql-transport-ws subprotocol");
    }
    Ok(())
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
    use tokio_tungstenite::tungstenite::http::HeaderValue;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
    use tokio_tungstenite::tungstenite::protocol::frame::{CloseFrame, Frame};

    #[expect(
        clippy::result_large_err,
        reason = "the signature of tungstenite's handshake callback"
    )]
    fn with_protocol(_: &Request, mut response: Response) -> Result<Response, ErrorResponse> {
        response.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_static("graphql-transport-ws"),
        );
        Ok(response)
    }

    /// Against tungstenite's server: the handshake, whole and fragmented text
    /// messages, a ping answered, a masked text message sent, and the server's close.
    #[tokio::test]
    async fn talks_to_an_independent_server() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("ws://{}/graphql", listener.local_addr().expect("addr"));
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.expect("accept");
            let mut ws = tokio_tungstenite::accept_hdr_async(tcp, with_protocol)
                .await
                .expect("handshake");
            ws.send(Message::text("whole")).await.expect("send");
            let text = OpCode::Data(Data::Text);
            let more = OpCode::Data(Data::Continue);
            ws.send(Message::Frame(Frame::message("frag", text, false)))
                .await
                .expect("send");
            ws.send(Message::Ping("p".into())).await.expect("send");
            ws.send(Message::Frame(Frame::message("men", more, false)))
                .await
                .expect("send");
            ws.send(Message::Frame(Frame::message("ted", more, true)))
                .await
                .expect("send");
            let mut got = Vec::new();
            while let Some(Ok(message)) = ws.next().await {
                let text = message.is_text();
                got.push(message);
                if text {
                    break;
                }
            }
            ws.close(Some(CloseFrame {
                code: CloseCode::Library(4400),
                reason: "bye".into(),
            }))
            .await
            .expect("close");
            got
        });

        let mut client = WsClient::connect(&url, None).await.expect("connect");
        let mut texts = Vec::new();
        let close = loop {
            match client.next_message().await.expect("frame") {
                Some(Incoming::Text(range)) => {
                    texts.push(String::from_utf8_lossy(client.text(range)).into_owned());
                    if texts.len() == 2 {
                        client.send_text("hi").await.expect("send");
                    }
                }
                Some(Incoming::Close(code, reason)) => break (code, reason),
                None => assert!(client.fill().await.expect("read"), "closed early"),
            }
        };
        assert_eq!(texts, ["whole", "fragmented"]);
        assert_eq!(close, (Some(4400), "bye".to_owned()));
        let got = server.await.expect("server");
        assert_eq!(got, [Message::Pong("p".into()), Message::text("hi")]);
    }

    #[test]
    fn headers_of_every_length_class() {
        let short = [0x81, 3, b'a', b'b', b'c'];
        let h = parse_header(&short).ok().flatten().expect("whole frame");
        assert_eq!((h.fin, h.opcode, h.header_len, h.len), (true, 1, 2, 3));
        assert!(
            parse_header(&short[..4]).ok().flatten().is_none(),
            "partial"
        );
        let mut medium = vec![0x01, 126, 0x01, 0x00];
        medium.resize(4 + 256, b'x');
        let h = parse_header(&medium).ok().flatten().expect("whole frame");
        assert_eq!((h.fin, h.header_len, h.len), (false, 4, 256));
        let mut long = vec![0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0];
        long.resize(10 + 65536, 0);
        let h = parse_header(&long).ok().flatten().expect("whole frame");
        assert_eq!((h.opcode, h.header_len, h.len), (2, 10, 65536));
        assert!(parse_header(&[0x81, 0x83, 0, 0, 0, 0]).is_err(), "masked");
        assert!(parse_header(&[0xC1, 0]).is_err(), "RSV1 without extension");
    }

    #[test]
    fn handshake_response_is_checked() {
        let ok = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                  sec-websocket-accept: K\r\nSec-WebSocket-Protocol: graphql-transport-ws\r\n\r\n";
        assert!(check_response(ok.as_bytes(), "K").is_ok());
        assert!(check_response(ok.as_bytes(), "other").is_err());
        let refused = "HTTP/1.1 400 Bad Request\r\n\r\n";
        assert!(check_response(refused.as_bytes(), "K").is_err());
        let no_protocol = "HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: K\r\n\r\n";
        assert!(check_response(no_protocol.as_bytes(), "K").is_err());
    }
}
