//! `NatsBus` against a real `nats-server` (core NATS, no JetStream) on a free loopback
//! port: pub/sub with headers, queue groups, request/reply, surviving a server restart,
//! and NATS's own `partition()` subject mapping agreeing with `partition_of`.

use std::future::Future;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use fanout_core::Error;
use fanout_core::bus::{Bus, BusSubscription, NatsBus, TRACEPARENT};
use fanout_core::partition::{fnv1a32, partition_of};
use futures_util::StreamExt;

/// Awaits `fut` for at most `secs` seconds; a timeout fails the test naming `what`.
async fn within<T>(secs: u64, what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(Duration::from_secs(secs), fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {secs}s waiting for {what}"),
    }
}

/// Polls `cond` every 20 ms until it holds, for at most `secs` seconds.
async fn eventually(secs: u64, what: &str, cond: impl Fn() -> bool) {
    within(secs, what, async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

async fn next_msg(sub: &mut BusSubscription, what: &str) -> fanout_core::bus::BusMessage {
    within(5, what, sub.next())
        .await
        .unwrap_or_else(|| panic!("subscription ended while waiting for {what}"))
}

/// The `nats-server` binary: `$NATS_SERVER`, else `nats-server` on `PATH`.
fn nats_server_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("NATS_SERVER") {
        return PathBuf::from(path);
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("nats-server"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "nats-server not found: set NATS_SERVER or put nats-server on PATH \
                 (tests/run.sh installs it: `bash tests/run.sh`)"
            )
        })
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local addr").port()
}

/// A `nats-server` process, killed on drop.
struct NatsServer {
    child: Child,
    port: u16,
    config: Option<PathBuf>,
}

impl NatsServer {
    async fn start() -> Self {
        Self::start_on(free_port(), None).await
    }

    /// Starts on `port`, with the server configuration `config` (NATS conf syntax) if any.
    async fn start_on(port: u16, config: Option<&str>) -> Self {
        let binary = nats_server_binary();
        let mut cmd = Command::new(&binary);
        cmd.args(["-a", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let config = config.map(|text| {
            let path = std::env::temp_dir()
                .join(format!("fanout-nats-{}-{port}.conf", std::process::id()));
            std::fs::write(&path, text).expect("write nats-server config");
            cmd.arg("-c").arg(&path);
            path
        });
        let child = cmd.spawn().unwrap_or_else(|e| {
            panic!(
                "cannot start {}: {e} (tests/run.sh installs nats-server)",
                binary.display()
            )
        });
        let server = NatsServer {
            child,
            port,
            config,
        };
        within(10, "nats-server to accept connections", async {
            while tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_err()
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        server
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
        if let Some(path) = &self.config {
            let _ = std::fs::remove_file(path);
        }
    }
}

async fn connect(server: &NatsServer, name: &str) -> NatsBus {
    let bus = within(5, "connect", NatsBus::connect(&server.url(), name))
        .await
        .expect("connect");
    eventually(5, "the bus to connect", || bus.is_connected()).await;
    bus
}

#[tokio::test]
async fn publish_subscribe_carries_payload_and_headers() {
    let server = NatsServer::start().await;
    let sub_bus = connect(&server, "sub").await;
    let pub_bus = connect(&server, "pub").await;
    let mut sub = within(5, "subscribe", sub_bus.subscribe("fanout.test.a"))
        .await
        .expect("subscribe");
    within(5, "sync", sub_bus.sync(Duration::from_secs(5)))
        .await
        .expect("sync");

    within(
        5,
        "publish",
        pub_bus.publish("fanout.test.a", Bytes::from_static(b"one")),
    )
    .await
    .expect("publish");
    let trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    within(
        5,
        "publish with headers",
        pub_bus.publish_with_headers(
            "fanout.test.a",
            &[(TRACEPARENT, trace)],
            Bytes::from_static(b"two"),
        ),
    )
    .await
    .expect("publish with headers");

    let first = next_msg(&mut sub, "first message").await;
    assert_eq!(first.subject, "fanout.test.a");
    assert_eq!(&first.payload[..], b"one");
    assert!(first.headers.is_empty());
    let second = next_msg(&mut sub, "second message").await;
    assert_eq!(&second.payload[..], b"two");
    assert_eq!(second.header(TRACEPARENT), Some(trace));

    let err = within(
        5,
        "bad header",
        pub_bus.publish_with_headers("fanout.test.a", &[("bad:name", "x")], Bytes::new()),
    )
    .await
    .expect_err("invalid header name");
    assert!(matches!(err, Error::InvalidHeader { .. }), "{err}");
}

#[tokio::test]
async fn queue_group_shares_messages_between_members() {
    let server = NatsServer::start().await;
    let a_bus = connect(&server, "worker-a").await;
    let b_bus = connect(&server, "worker-b").await;
    let pub_bus = connect(&server, "pub").await;
    let mut a = within(5, "sub a", a_bus.queue_subscribe("fanout.work", "workers"))
        .await
        .expect("sub a");
    let mut b = within(5, "sub b", b_bus.queue_subscribe("fanout.work", "workers"))
        .await
        .expect("sub b");
    within(5, "sync a", a_bus.sync(Duration::from_secs(5)))
        .await
        .expect("sync");
    within(5, "sync b", b_bus.sync(Duration::from_secs(5)))
        .await
        .expect("sync");

    const N: usize = 200;
    for i in 0..N {
        let payload = Bytes::from(i.to_string());
        within(5, "publish", pub_bus.publish("fanout.work", payload))
            .await
            .expect("publish");
    }
    within(5, "sync pub", pub_bus.sync(Duration::from_secs(5)))
        .await
        .expect("sync");

    let (mut got_a, mut got_b) = (Vec::new(), Vec::new());
    within(10, "all queued messages", async {
        while got_a.len() + got_b.len() < N {
            tokio::select! {
                Some(m) = a.next() => got_a.push(m.payload),
                Some(m) = b.next() => got_b.push(m.payload),
                else => panic!("both queue subscriptions ended"),
            }
        }
    })
    .await;
    // Nothing is delivered twice.
    let extra = tokio::time::timeout(Duration::from_millis(200), async {
        tokio::select! {
            m = a.next() => m,
            m = b.next() => m,
        }
    })
    .await;
    assert!(extra.is_err(), "a message was delivered to both members");
    assert!(
        !got_a.is_empty() && !got_b.is_empty(),
        "a: {} b: {}",
        got_a.len(),
        got_b.len()
    );
    let mut all: Vec<usize> = got_a
        .iter()
        .chain(&got_b)
        .map(|p| {
            std::str::from_utf8(p)
                .expect("utf8")
                .parse()
                .expect("number")
        })
        .collect();
    all.sort_unstable();
    assert_eq!(all, (0..N).collect::<Vec<_>>());
}

#[tokio::test]
async fn request_reply_and_its_failures() {
    let server = NatsServer::start().await;
    let responder_bus = connect(&server, "responder").await;
    let client_bus = connect(&server, "client").await;
    let mut requests = within(5, "sub", responder_bus.queue_subscribe("fanout.svc", "svc"))
        .await
        .expect("sub");
    within(5, "sync", responder_bus.sync(Duration::from_secs(5)))
        .await
        .expect("sync");
    let replier = responder_bus.clone();
    let task = tokio::spawn(async move {
        while let Some(msg) = requests.next().await {
            let Some(reply) = msg.reply else { continue };
            let mut answer = b"re:".to_vec();
            answer.extend_from_slice(&msg.payload);
            if replier.publish(&reply, Bytes::from(answer)).await.is_err() {
                break;
            }
        }
    });

    let answer = within(
        10,
        "request",
        client_bus.request(
            "fanout.svc",
            Bytes::from_static(b"ping"),
            Duration::from_secs(5),
        ),
    )
    .await
    .expect("reply");
    assert_eq!(&answer[..], b"re:ping");

    let err = within(
        10,
        "request without responders",
        client_bus.request("fanout.nobody", Bytes::new(), Duration::from_secs(5)),
    )
    .await
    .expect_err("no responders");
    assert!(matches!(err, Error::NoResponders { .. }), "{err}");

    let _silent = within(5, "sub", responder_bus.subscribe("fanout.silent"))
        .await
        .expect("sub");
    within(5, "sync", responder_bus.sync(Duration::from_secs(5)))
        .await
        .expect("sync");
    let err = within(
        10,
        "request to a silent subscriber",
        client_bus.request("fanout.silent", Bytes::new(), Duration::from_millis(300)),
    )
    .await
    .expect_err("timeout");
    assert!(matches!(err, Error::RequestTimedOut { .. }), "{err}");
    task.abort();
}

#[tokio::test]
async fn subscriptions_survive_a_server_restart() {
    let mut server = NatsServer::start().await;
    let port = server.port;
    let sub_bus = connect(&server, "sub").await;
    let pub_bus = connect(&server, "pub").await;
    let mut sub = within(5, "subscribe", sub_bus.subscribe("fanout.edge.e1"))
        .await
        .expect("subscribe");
    let mut queued = within(
        5,
        "queue subscribe",
        sub_bus.queue_subscribe("fanout.q", "g"),
    )
    .await
    .expect("queue subscribe");
    within(5, "sync", sub_bus.sync(Duration::from_secs(5)))
        .await
        .expect("sync");
    within(
        5,
        "publish",
        pub_bus.publish("fanout.edge.e1", Bytes::from_static(b"before")),
    )
    .await
    .expect("publish");
    assert_eq!(
        &next_msg(&mut sub, "message before restart").await.payload[..],
        b"before"
    );

    server.kill();
    eventually(5, "is_connected() to turn false", || {
        !sub_bus.is_connected() && !pub_bus.is_connected()
    })
    .await;

    let _server = NatsServer::start_on(port, None).await;
    eventually(10, "is_connected() to turn true again", || {
        sub_bus.is_connected() && pub_bus.is_connected()
    })
    .await;
    // The round trip orders after the re-sent SUBs, so the server has them now.
    within(
        5,
        "sync after reconnect",
        sub_bus.sync(Duration::from_secs(5)),
    )
    .await
    .expect("sync");
    within(
        5,
        "publish",
        pub_bus.publish("fanout.edge.e1", Bytes::from_static(b"after")),
    )
    .await
    .expect("publish");
    within(
        5,
        "publish",
        pub_bus.publish("fanout.q", Bytes::from_static(b"queued")),
    )
    .await
    .expect("publish");
    assert_eq!(
        &next_msg(&mut sub, "message after restart").await.payload[..],
        b"after"
    );
    assert_eq!(
        &next_msg(&mut queued, "queued after restart").await.payload[..],
        b"queued"
    );
}

#[tokio::test]
async fn connect_returns_before_the_server_is_up() {
    let port = free_port();
    let bus = within(
        5,
        "connect",
        NatsBus::connect(&format!("nats://127.0.0.1:{port}"), "early"),
    )
    .await
    .expect("connect without a server");
    assert!(!bus.is_connected());
    let _server = NatsServer::start_on(port, None).await;
    eventually(10, "the first connection", || bus.is_connected()).await;
}

/// Channels with the partition (of 64) that NATS gives them; the unit test in
/// `partition.rs` pins the same table.
const CHANNELS: &[(&str, u32)] = &[
    ("lobby", 19),
    ("orders-42", 53),
    ("user_7", 32),
    ("a", 44),
    ("chat:room:9", 9),
    ("x@y=z+1", 43),
    ("orders", 44),
];

#[tokio::test]
async fn nats_partition_mapping_agrees_with_partition_of() {
    let config = r#"
mappings = {
  "fanout.in.*": "fanout.p.{{partition(64,1)}}.{{wildcard(1)}}"
  "fanout.in2.*.*": "fanout.q.{{partition(64,1,2)}}.{{wildcard(1)}}.{{wildcard(2)}}"
}
"#;
    let server = NatsServer::start_on(free_port(), Some(config)).await;
    let bus = connect(&server, "partition").await;
    let mut single = within(5, "sub", bus.subscribe("fanout.p.*.*"))
        .await
        .expect("sub");
    let mut double = within(5, "sub", bus.subscribe("fanout.q.*.*.*"))
        .await
        .expect("sub");
    within(5, "sync", bus.sync(Duration::from_secs(5)))
        .await
        .expect("sync");

    for &(channel, pinned) in CHANNELS {
        let subject = format!("fanout.in.{channel}");
        within(5, "publish", bus.publish(&subject, Bytes::new()))
            .await
            .expect("publish");
        let msg = next_msg(&mut single, &subject).await;
        assert_eq!(
            msg.subject,
            format!("fanout.p.{pinned}.{channel}"),
            "NATS moved {channel}"
        );
        assert_eq!(
            partition_of(channel, 64),
            pinned,
            "partition_of disagrees on {channel}"
        );
    }

    // A channel of several tokens: NATS hashes the selected tokens concatenated WITHOUT
    // the dots, so it agrees with `partition_of` only for single-token channels.
    for (first, second) in [("orders", "42"), ("chat", "lobby")] {
        let subject = format!("fanout.in2.{first}.{second}");
        within(5, "publish", bus.publish(&subject, Bytes::new()))
            .await
            .expect("publish");
        let msg = next_msg(&mut double, &subject).await;
        let k = fnv1a32(format!("{first}{second}").as_bytes()) % 64;
        assert_eq!(msg.subject, format!("fanout.q.{k}.{first}.{second}"));
    }
}
