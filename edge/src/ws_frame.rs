//! Server-to-client WebSocket frames (RFC 6455 §5.2), written straight into a
//! connection's write buffer.
//!
//! Every frame the edge sends is a whole message in one frame (FIN set) and, coming
//! from the server, unmasked. Encoding here rather than through tungstenite saves a
//! `next` frame its own allocation and one copy: the header, the subscription's
//! prefix and the shared payload go into the buffer that is written to the socket.

use axum::extract::ws::Message;

const FIN: u8 = 0x80;
const OP_TEXT: u8 = 0x1;
const OP_BINARY: u8 = 0x2;
const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;
const OP_PONG: u8 = 0xA;

/// Longest frame header: 2 bytes, then a 64-bit length.
pub const MAX_HEADER: usize = 10;

/// Appends the header of a final, unmasked frame of `opcode` carrying `len` bytes.
fn header(buf: &mut Vec<u8>, opcode: u8, len: usize) {
    buf.push(FIN | opcode);
    if len < 126 {
        // Fits the 7-bit length: checked just above.
        buf.push(len as u8);
    } else if let Ok(short) = u16::try_from(len) {
        buf.push(126);
        buf.extend_from_slice(&short.to_be_bytes());
    } else {
        buf.push(127);
        buf.extend_from_slice(&(len as u64).to_be_bytes());
    }
}

/// Appends one text frame whose text is the concatenation of `parts`.
pub fn text(buf: &mut Vec<u8>, parts: &[&[u8]]) {
    let len = parts.iter().map(|p| p.len()).sum();
    buf.reserve(MAX_HEADER + len);
    header(buf, OP_TEXT, len);
    for part in parts {
        buf.extend_from_slice(part);
    }
}

/// Appends `message` as one frame.
pub fn message(buf: &mut Vec<u8>, message: &Message) {
    let (opcode, payload): (u8, &[u8]) = match message {
        Message::Text(text) => (OP_TEXT, text.as_bytes()),
        Message::Binary(data) => (OP_BINARY, data),
        Message::Ping(data) => (OP_PING, data),
        Message::Pong(data) => (OP_PONG, data),
        Message::Close(frame) => {
            let (code, reason) = frame
                .as_ref()
                .map_or((None, &[][..]), |f| (Some(f.code), f.reason.as_bytes()));
            let len = code.map_or(0, |_| 2 + reason.len());
            buf.reserve(MAX_HEADER + len);
            header(buf, OP_CLOSE, len);
            if let Some(code) = code {
                buf.extend_from_slice(&code.to_be_bytes());
                buf.extend_from_slice(reason);
            }
            return;
        }
    };
    buf.reserve(MAX_HEADER + payload.len());
    header(buf, opcode, payload.len());
    buf.extend_from_slice(payload);
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::extract::ws::{CloseFrame, Utf8Bytes};
    use bytes::Bytes;
    use futures_util::StreamExt;
    use tokio_tungstenite::WebSocketStream;
    use tokio_tungstenite::tungstenite::Message as TsMessage;
    use tokio_tungstenite::tungstenite::protocol::Role;

    /// Decodes the first `n` messages of `bytes` with tungstenite, as a client would.
    async fn decode(bytes: Vec<u8>, n: usize) -> Vec<TsMessage> {
        let (mut server, client) = tokio::io::duplex(1 << 20);
        tokio::io::AsyncWriteExt::write_all(&mut server, &bytes)
            .await
            .expect("write");
        // The server end stays open: the client answers pings and closes into it.
        let mut ws = WebSocketStream::from_raw_socket(client, Role::Client, None).await;
        let mut out = Vec::new();
        for _ in 0..n {
            match ws.next().await {
                Some(Ok(m)) => out.push(m),
                other => panic!("after {out:?}: {other:?}"),
            }
        }
        drop(server);
        out
    }

    #[tokio::test]
    async fn frames_of_every_length_class_decode() {
        let mut buf = Vec::new();
        let lengths = [0usize, 1, 125, 126, 127, 65_535, 65_536, 200_000];
        for len in lengths {
            let body = "x".repeat(len);
            text(&mut buf, &[b"{", body.as_bytes(), b"}"]);
        }
        let got = decode(buf, lengths.len()).await;
        for (m, len) in got.iter().zip(lengths) {
            let TsMessage::Text(t) = m else {
                panic!("not text: {m:?}");
            };
            assert_eq!(t.len(), len + 2);
            assert!(t.starts_with('{') && t.ends_with('}'));
        }
    }

    #[tokio::test]
    async fn control_and_data_messages_decode() {
        let mut buf = Vec::new();
        message(&mut buf, &Message::Text(Utf8Bytes::from("héllo")));
        message(&mut buf, &Message::Binary(Bytes::from_static(&[0, 1, 2])));
        message(&mut buf, &Message::Ping(Bytes::from_static(b"p")));
        message(&mut buf, &Message::Pong(Bytes::from_static(b"q")));
        message(
            &mut buf,
            &Message::Close(Some(CloseFrame {
                code: 4400,
                reason: Utf8Bytes::from("bad"),
            })),
        );
        let got = decode(buf, 5).await;
        assert_eq!(got[0], TsMessage::text("héllo"));
        assert_eq!(got[1], TsMessage::binary(vec![0, 1, 2]));
        assert_eq!(got[2], TsMessage::Ping(Bytes::from_static(b"p")));
        assert_eq!(got[3], TsMessage::Pong(Bytes::from_static(b"q")));
        let TsMessage::Close(Some(close)) = &got[4] else {
            panic!("not a close: {:?}", got[4]);
        };
        assert_eq!(u16::from(close.code), 4400);
        assert_eq!(close.reason.as_str(), "bad");
    }

    #[tokio::test]
    async fn close_without_a_code_is_empty() {
        let mut buf = Vec::new();
        message(&mut buf, &Message::Close(None));
        assert_eq!(buf, [0x88, 0]);
    }
}
