//! The floor for `fanout-bench`: the least any server must do to deliver the generator's
//! `chatMessage(room:)` frames, so that a figure can be read against what this machine's
//! kernel and the generator cost by themselves.
//!
//! It is not a GraphQL server. It accepts graphql-transport-ws connections (handshake,
//! `connection_init`, `subscribe`, `ping`), reads the room and the selected field's name
//! out of the document without parsing it, and registers each connection with one of
//! `WRITERS` plain threads. `POST /publish` hands the event's stamp to every writer; a
//! writer builds each of its connections' frames for the room into one buffer and writes
//! it with one `write` call. There is no queue, no task per connection, no JSON
//! projection, no limit and no back-pressure beyond spinning on a full socket buffer.
//!
//! Usage: `peer-floor [LISTEN] [WRITERS]` (defaults 127.0.0.1:8090 and 2, the cores of
//! the benchmark machine). WebSocket at any path; `POST /publish` with
//! `{"channel": "chat.<room>", "payload": {"text": "<stamp>", ...}}`.

use std::collections::HashMap;
use std::io::{ErrorKind, Write};
use std::mem::ManuallyDrop;
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, mpsc};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::http::HeaderValue;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What a writer thread is told, in order.
enum Job {
    /// Connection `conn` subscribed to `room` as operation `id`, selecting `key`.
    Subscribe {
        conn: u64,
        fd: RawFd,
        room: String,
        id: String,
        key: String,
    },
    /// Connection `conn` is going: forget it, then say so (its descriptor stays open
    /// until then).
    Drop {
        conn: u64,
        done: oneshot::Sender<()>,
    },
    /// An event on `room` whose selected field is `stamp`.
    Event { room: Arc<str>, stamp: Arc<str> },
}

/// One subscription's frame around the stamp: `{"id":…,"payload":{…{"key":"` and `"}}}}`.
struct Sub {
    prefix: Vec<u8>,
}

const SUFFIX: &[u8] = b"\"}}}}";

struct Target {
    /// The connection's socket, borrowed: its task closes it only after this writer
    /// has answered `Job::Drop` (one descriptor per connection, as in any server: two
    /// would halve the connections a process can hold).
    socket: ManuallyDrop<std::net::TcpStream>,
    subs: Vec<Sub>,
}

/// The writer threads' inboxes; connection `conn` belongs to writer `conn % len`.
struct Hub {
    writers: Vec<mpsc::Sender<Job>>,
    next_conn: AtomicU64,
}

impl Hub {
    fn writer_of(&self, conn: u64) -> &mpsc::Sender<Job> {
        &self.writers[(conn % self.writers.len() as u64) as usize]
    }
}

fn writer_loop(jobs: mpsc::Receiver<Job>) {
    let mut rooms: HashMap<String, HashMap<u64, Target>> = HashMap::new();
    let mut buf = Vec::with_capacity(64 * 1024);
    while let Ok(job) = jobs.recv() {
        match job {
            Job::Subscribe {
                conn,
                fd,
                room,
                id,
                key,
            } => {
                let prefix = format!(
                    r#"{{"id":"{id}","type":"next","payload":{{"data":{{"chatMessage":{{"{key}":""#
                )
                .into_bytes();
                rooms
                    .entry(room)
                    .or_default()
                    .entry(conn)
                    .or_insert_with(|| Target {
                        // SAFETY: `fd` is an open socket until this writer answers the
                        // connection's `Job::Drop`, and is never closed through here.
                        socket: ManuallyDrop::new(unsafe { std::net::TcpStream::from_raw_fd(fd) }),
                        subs: Vec::new(),
                    })
                    .subs
                    .push(Sub { prefix });
            }
            Job::Drop { conn, done } => {
                for targets in rooms.values_mut() {
                    targets.remove(&conn);
                }
                let _ = done.send(());
            }
            Job::Event { room, stamp } => {
                let Some(targets) = rooms.get_mut(&*room) else {
                    continue;
                };
                targets.retain(|_, target| {
                    buf.clear();
                    for sub in &target.subs {
                        let len = sub.prefix.len() + stamp.len() + SUFFIX.len();
                        frame_header(&mut buf, len);
                        buf.extend_from_slice(&sub.prefix);
                        buf.extend_from_slice(stamp.as_bytes());
                        buf.extend_from_slice(SUFFIX);
                    }
                    write_all(&target.socket, &buf).is_ok()
                });
            }
        }
    }
}

/// The header of an unmasked final text frame of `len` bytes (RFC 6455 §5.2).
fn frame_header(buf: &mut Vec<u8>, len: usize) {
    buf.push(0x81);
    if len < 126 {
        buf.push(len as u8);
    } else if len <= usize::from(u16::MAX) {
        buf.push(126);
        buf.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        buf.push(127);
        buf.extend_from_slice(&(len as u64).to_be_bytes());
    }
}

/// Writes all of `bytes` to a non-blocking socket, spinning while its buffer is full.
fn write_all(socket: &std::net::TcpStream, mut bytes: &[u8]) -> std::io::Result<()> {
    let mut socket = socket;
    while !bytes.is_empty() {
        match socket.write(bytes) {
            Ok(0) => return Err(ErrorKind::WriteZero.into()),
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == ErrorKind::WouldBlock => std::thread::yield_now(),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The room of `chatMessage(room: "…")` and the name the selection gives `text`.
fn room_and_key(query: &str) -> Option<(String, String)> {
    let rest = &query[query.find("chatMessage")?..];
    let after = &rest[rest.find("room:")? + "room:".len()..];
    let start = after.find('"')? + 1;
    let len = after[start..].find('"')?;
    let room = after[start..start + len].to_string();
    let selection = &after[start + len..];
    let open = selection.find('{')? + 1;
    let close = open + selection[open..].find('}')?;
    let field = selection[open..close].trim();
    let key = match field.split_once(':') {
        Some((alias, _)) => alias.trim(),
        None => field,
    };
    Some((room, key.to_string()))
}

async fn serve(stream: TcpStream, hub: Arc<Hub>) -> Result<(), BoxError> {
    let mut head = [0u8; 5];
    let mut seen = 0;
    while seen < head.len() {
        let n = stream.peek(&mut head).await?;
        if n == seen {
            return Ok(());
        }
        seen = n;
    }
    if &head == b"POST " {
        publish(stream, &hub).await
    } else {
        websocket(stream, &hub).await
    }
}

// The handshake callback's error type is tungstenite's, large by its design.
#[allow(clippy::result_large_err)]
async fn websocket(stream: TcpStream, hub: &Hub) -> Result<(), BoxError> {
    stream.set_nodelay(true)?;
    // The writer thread writes to the same descriptor; it is non-blocking, which
    // `write_all` handles.
    let fd = stream.as_raw_fd();
    let mut ws =
        tokio_tungstenite::accept_hdr_async(stream, |_: &Request, mut response: Response| {
            response.headers_mut().insert(
                "Sec-WebSocket-Protocol",
                HeaderValue::from_static("graphql-transport-ws"),
            );
            Ok(response)
        })
        .await?;
    let conn = hub.next_conn.fetch_add(1, Ordering::Relaxed);
    let served = session(&mut ws, hub, conn, fd).await;
    let (done, dropped) = oneshot::channel();
    hub.writer_of(conn).send(Job::Drop { conn, done })?;
    // The descriptor is closed (with `ws`) only once the writer has let go of it.
    let _ = dropped.await;
    served
}

async fn session(
    ws: &mut tokio_tungstenite::WebSocketStream<TcpStream>,
    hub: &Hub,
    conn: u64,
    fd: RawFd,
) -> Result<(), BoxError> {
    while let Some(message) = ws.next().await {
        let text = match message? {
            Message::Text(text) => text,
            Message::Close(_) => break,
            _ => continue,
        };
        let frame: Value = serde_json::from_str(&text)?;
        match frame["type"].as_str() {
            Some("connection_init") => {
                ws.send(Message::text(r#"{"type":"connection_ack"}"#))
                    .await?;
            }
            Some("ping") => ws.send(Message::text(r#"{"type":"pong"}"#)).await?,
            Some("subscribe") => {
                let id = frame["id"].as_str().unwrap_or_default().to_string();
                let query = frame["payload"]["query"].as_str().unwrap_or_default();
                match room_and_key(query) {
                    Some((room, key)) => hub.writer_of(conn).send(Job::Subscribe {
                        conn,
                        fd,
                        room,
                        id,
                        key,
                    })?,
                    None => {
                        let error = json!({"id": id, "type": "error", "payload": [
                            {"message": "the floor serves chatMessage(room:) { field } only"}
                        ]});
                        ws.send(Message::text(error.to_string())).await?;
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// Keep-alive `POST /publish`: each event goes to every writer; answers 204.
async fn publish(stream: TcpStream, hub: &Hub) -> Result<(), BoxError> {
    stream.set_nodelay(true)?;
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    let mut line = String::new();
    loop {
        line.clear();
        if read.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let mut length = 0usize;
        loop {
            line.clear();
            if read.read_line(&mut line).await? == 0 {
                return Ok(());
            }
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse()?;
            }
        }
        let mut body = vec![0; length];
        read.read_exact(&mut body).await?;
        let event: Value = serde_json::from_slice(&body)?;
        let room = event["channel"]
            .as_str()
            .and_then(|c| c.strip_prefix("chat."));
        let stamp = event["payload"]["text"].as_str();
        let (Some(room), Some(stamp)) = (room, stamp) else {
            write
                .write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                .await?;
            continue;
        };
        let (room, stamp): (Arc<str>, Arc<str>) = (room.into(), stamp.into());
        for writer in &hub.writers {
            writer.send(Job::Event {
                room: room.clone(),
                stamp: stamp.clone(),
            })?;
        }
        write.write_all(b"HTTP/1.1 204 No Content\r\n\r\n").await?;
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let listen = args.next().unwrap_or_else(|| "127.0.0.1:8090".into());
    let writers: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(2).max(1);
    let hub = Arc::new(Hub {
        writers: (0..writers)
            .map(|_| {
                let (tx, rx) = mpsc::channel();
                std::thread::spawn(move || writer_loop(rx));
                tx
            })
            .collect(),
        next_conn: AtomicU64::new(0),
    });
    let listener = TcpListener::bind(&listen).await?;
    eprintln!("floor peer on {listen} with {writers} writer threads");
    loop {
        let (stream, _) = listener.accept().await?;
        let hub = hub.clone();
        tokio::spawn(async move {
            if let Err(e) = serve(stream, hub).await {
                eprintln!("connection: {e}");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_room_and_key_with_and_without_alias() {
        assert_eq!(
            room_and_key(r#"subscription { chatMessage(room: "bench3") { text } }"#),
            Some(("bench3".into(), "text".into()))
        );
        assert_eq!(
            room_and_key(r#"subscription { chatMessage(room: "b") { s5: text } }"#),
            Some(("b".into(), "s5".into()))
        );
        assert_eq!(
            room_and_key(r#"subscription { orderUpdated(id: "x") { note } }"#),
            None
        );
    }
}
