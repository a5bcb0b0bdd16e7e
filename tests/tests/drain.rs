//! Edge drain: SIGTERM (or GET `/drain`) turns `/readyz` 503 first, refuses new
//! upgrades with 503, closes every socket with 1012 spread over `--drain-window-ms`,
//! then the process exits; clients reconnect to another edge. Also the `/startupz`
//! probe.
//!
//! Real processes (`fanout standalone`, or `nats-server` plus role binaries), real
//! WebSocket clients, short drain windows.

use std::time::{Duration, Instant};

use fanout_tests::cluster::{
    Cluster, ClusterSpec, EdgeProc, Proc, START_TIMEOUT, cluster_bins, free_port,
};
use fanout_tests::metrics::{find, http_get, scrape};
use fanout_tests::server::terminate;
use fanout_tests::{
    Closed, Fanout, GqlClient, Publisher, Result, STEP, bail, ensure, eventually, json, within,
};
use tokio_tungstenite::tungstenite;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::http::HeaderValue;

/// The shutdown grace of `core::role::servers` (GRACE).
const GRACE: Duration = Duration::from_secs(10);
/// The close reason of a drain's 1012.
const DRAIN_REASON: &str = "server draining, reconnect";

const TICK: &str = "subscription Tick($room: String!) { tick(room: $room) { n } }";
const CHAT: &str =
    "subscription Chat($room: String!) { chatMessage(room: $room) { room from text } }";

/// Tries a WebSocket upgrade; returns the HTTP status and body when it is refused,
/// or 101 when the server switched protocols.
async fn upgrade_status(ws_url: &str) -> Result<(u16, String)> {
    let mut request = ws_url.into_client_request()?;
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        HeaderValue::from_static("graphql-transport-ws"),
    );
    match within(STEP, "upgrade", tokio_tungstenite::connect_async(request)).await? {
        Ok(_) => Ok((101, String::new())),
        Err(tungstenite::Error::Http(response)) => {
            let body = response
                .body()
                .as_ref()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default();
            Ok((response.status().as_u16(), body))
        }
        Err(e) => bail!("upgrade to {ws_url} failed without an HTTP answer: {e}"),
    }
}

/// Polls `path` every 5 ms until it answers `status`; returns when it first did.
async fn poll_status(admin: &str, path: &str, status: u16, limit: Duration) -> Result<Instant> {
    let deadline = Instant::now() + limit;
    loop {
        if let Ok((got, _)) = http_get(admin, path).await
            && got == status
        {
            return Ok(Instant::now());
        }
        if Instant::now() >= deadline {
            bail!("{admin}{path} did not answer {status} within {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_closes_every_socket_with_1012_spread_over_the_window() -> Result<()> {
    const CLIENTS: usize = 20;
    const WINDOW: Duration = Duration::from_millis(2000);
    let mut server = Fanout::suite(&["--drain-window-ms", "2000"]).await?;
    let admin = server.admin_url.clone();

    let mut watchers = Vec::new();
    for i in 0..CLIENTS {
        let mut client = GqlClient::connect_init(&server.ws_url).await?;
        client
            .subscribe("t", TICK, Some(json!({ "room": format!("r{i}") })))
            .await?;
        client.ping().await?;
        watchers.push(tokio::spawn(async move {
            let closed = client.expect_closed_within(WINDOW + STEP).await;
            (Instant::now(), closed)
        }));
    }
    fanout_tests::metrics::wait_eq(&admin, "fanout_edge_subscriptions", &[], CLIENTS as f64)
        .await?;
    ensure!(http_get(&admin, "/readyz").await?.0 == 200, "ready before");
    ensure!(
        http_get(&admin, "/startupz").await?.0 == 200,
        "started before"
    );

    let signalled = Instant::now();
    server.terminate()?;
    let not_ready = poll_status(&admin, "/readyz", 503, WINDOW).await?;
    let (_, body) = http_get(&admin, "/readyz").await?;
    ensure!(body.contains("draining"), "/readyz body: {body:?}");
    ensure!(http_get(&admin, "/healthz").await?.0 == 200, "still live");
    ensure!(
        http_get(&admin, "/startupz").await?.0 == 200,
        "still started"
    );
    let (status, body) = upgrade_status(&server.ws_url).await?;
    ensure!(
        status == 503 && body.contains("draining"),
        "upgrade during the drain: {status} {body:?}"
    );

    // Half-way: draining, some closed (and their subscriptions freed), not all.
    tokio::time::sleep_until((signalled + WINDOW / 2).into()).await;
    let text = scrape(&admin).await?;
    let draining = find(&text, "fanout_edge_draining", &[]);
    let closed = find(&text, "fanout_edge_drain_closes_total", &[]).unwrap_or(0.0);
    let subscriptions = find(&text, "fanout_edge_subscriptions", &[]).unwrap_or(-1.0);
    ensure!(draining == Some(1.0), "fanout_edge_draining = {draining:?}");
    ensure!(
        closed >= 1.0 && closed < CLIENTS as f64,
        "half-way through the window {closed} of {CLIENTS} were closed"
    );
    ensure!(
        subscriptions < CLIENTS as f64,
        "subscriptions of closed connections are freed: {subscriptions}"
    );

    let mut times = Vec::new();
    for watcher in watchers {
        let (at, closed) = within(WINDOW + STEP, "a client's close", watcher).await??;
        match closed? {
            Closed::Frame(1012, reason) if reason == DRAIN_REASON => times.push(at),
            other => bail!("expected close 1012 {DRAIN_REASON:?}, got {other:?}"),
        }
    }
    times.sort();
    let (first, last) = (times[0], times[times.len() - 1]);
    ensure!(
        not_ready <= first,
        "/readyz turned 503 {:?} after the first close",
        not_ready - first
    );
    let span = last - first;
    ensure!(
        span > WINDOW.mul_f64(0.4),
        "closes span {span:?}, not spread over the {WINDOW:?} window"
    );
    ensure!(
        last - signalled < WINDOW + Duration::from_millis(1500),
        "last close {:?} after SIGTERM",
        last - signalled
    );

    let status = server
        .exited_within(WINDOW + GRACE + Duration::from_secs(3))
        .await?;
    ensure!(status.success(), "exit status {status}");
    // The bound is window + grace; with every socket closed by the drain the grace
    // is not needed, so the exit comes soon after the window.
    ensure!(
        signalled.elapsed() < WINDOW + Duration::from_secs(5),
        "exited {:?} after SIGTERM",
        signalled.elapsed()
    );
    Ok(())
}

/// Starts edge `id` of `cluster` with `extra` flags (not waiting for readiness).
fn spawn_edge(cluster: &mut Cluster, id: &str, extra: &[&str]) -> Result<usize> {
    let bins = cluster_bins()?;
    let (ws, admin) = (free_port()?, free_port()?);
    let schema = fanout_tests::fixtures::example("orders/schema.graphql");
    let mut args: Vec<String> = [
        "--edge-id",
        id,
        "--nats-url",
        &cluster.nats.url(),
        "--members",
        &cluster.members,
        "--listen",
        &format!("127.0.0.1:{ws}"),
        "--admin-listen",
        &format!("127.0.0.1:{admin}"),
        "--schema",
        &schema.display().to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    let proc = Proc::spawn(id, &bins.edge, args)?;
    cluster.edges.push(EdgeProc {
        id: id.to_string(),
        ws_url: format!("ws://127.0.0.1:{ws}/graphql"),
        admin_url: format!("http://127.0.0.1:{admin}"),
        proc,
    });
    Ok(cluster.edges.len() - 1)
}

/// Waits until process `proc` has exited.
async fn wait_stopped(proc: &mut Proc, limit: Duration) -> Result<()> {
    let deadline = Instant::now() + limit;
    while proc.is_running() {
        if Instant::now() >= deadline {
            bail!(
                "{} still running {limit:?} later; output:\n{}",
                proc.name,
                proc.output()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drained_client_reconnects_to_another_edge_and_gets_later_events() -> Result<()> {
    const WINDOW: Duration = Duration::from_millis(500);
    ensure!(
        fanout_tests::cluster::nats_server_bin().is_ok(),
        "nats-server must be on PATH"
    );
    let mut cluster = Cluster::start(ClusterSpec::new(1, 0, 0)).await?;
    let a = spawn_edge(&mut cluster, "edge-a", &["--drain-window-ms", "500"])?;
    let b = spawn_edge(&mut cluster, "edge-b", &["--drain-window-ms", "500"])?;
    cluster.wait_all_ready(START_TIMEOUT).await?;
    let (a_url, b_url) = (
        cluster.edges[a].ws_url.clone(),
        cluster.edges[b].ws_url.clone(),
    );
    let mut publisher = Publisher::connect(&cluster.routers[0].grpc_url).await?;
    let vars = json!({ "room": "lobby" });

    let mut client = GqlClient::connect_init(&a_url).await?;
    client.subscribe("c", CHAT, Some(vars.clone())).await?;
    receive_a_published_event(&mut client, &mut publisher, "on edge A").await?;

    let signalled = Instant::now();
    terminate(cluster.edges[a].proc.pid())?;
    let reason = client.expect_close_within(1012, WINDOW + STEP).await?;
    ensure!(reason == DRAIN_REASON, "close reason {reason:?}");

    // The client's reconnect logic: edge A refuses (503 while draining, or is gone),
    // so it goes to edge B and subscribes again.
    match upgrade_status(&a_url).await {
        Ok((101, _)) => bail!("edge A accepted an upgrade after its drain began"),
        Ok((status, _)) => ensure!(status == 503, "edge A answered {status}"),
        Err(_) => {} // already closed its listener
    }
    let mut client = GqlClient::connect_init(&b_url).await?;
    client.subscribe("c", CHAT, Some(vars)).await?;
    receive_a_published_event(&mut client, &mut publisher, "on edge B after the drain").await?;

    wait_stopped(&mut cluster.edges[a].proc, WINDOW + GRACE + STEP).await?;
    ensure!(
        signalled.elapsed() < WINDOW + GRACE,
        "edge A exited {:?} after SIGTERM",
        signalled.elapsed()
    );
    Ok(())
}

/// Publishes chat messages to `lobby` (each one after the call started) until the
/// client receives one; the subscription's interest may take a moment to reach the
/// router.
async fn receive_a_published_event(
    client: &mut GqlClient,
    publisher: &mut Publisher,
    what: &str,
) -> Result<()> {
    let deadline = Instant::now() + STEP;
    let mut n = 0;
    loop {
        n += 1;
        if Instant::now() >= deadline {
            bail!("no event arrived {what} within {STEP:?}");
        }
        let text = format!("{what} #{n}");
        publisher
            .publish(
                "chat.lobby",
                &json!({ "room": "lobby", "from": "tester", "text": text }),
            )
            .await?;
        match client.recv_within(Duration::from_millis(300)).await {
            Ok(msg) if msg["type"] == "next" => {
                ensure!(
                    msg["payload"]["data"]["chatMessage"]["text"] == text,
                    "{what}: expected the event just published, got {msg}"
                );
                return Ok(());
            }
            Ok(msg) => bail!("{what}: unexpected message {msg}"),
            Err(_) => continue,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_drain_starts_the_drain_and_startupz_turns_200_once_ready() -> Result<()> {
    let mut cluster = Cluster::start(ClusterSpec::new(1, 0, 0)).await?;
    let e = spawn_edge(&mut cluster, "edge-probe", &["--drain-window-ms", "300"])?;
    let admin = cluster.edges[e].admin_url.clone();
    let ws_url = cluster.edges[e].ws_url.clone();

    // The edge hears router heartbeats for ~2 s before it can be ready: the first
    // answer of /startupz is 503, then it turns 200 and stays so.
    let first = eventually(START_TIMEOUT, "/startupz answers", || async {
        Ok(http_get(&admin, "/startupz").await.ok())
    })
    .await?;
    ensure!(
        first.0 == 503,
        "/startupz before the edge was ready: {first:?}"
    );
    poll_status(&admin, "/startupz", 200, START_TIMEOUT).await?;
    ensure!(http_get(&admin, "/readyz").await?.0 == 200, "ready");

    let mut client = GqlClient::connect_init(&ws_url).await?;
    let (status, body) = http_get(&cluster.routers[0].admin_url, "/drain").await?;
    ensure!(status == 501, "a router has no drain: {status} {body:?}");

    let (status, _) = http_get(&admin, "/drain").await?;
    ensure!(status == 202, "GET /drain answered {status}");
    let (status, body) = http_get(&admin, "/readyz").await?;
    ensure!(
        status == 503 && body.contains("draining"),
        "/readyz right after /drain: {status} {body:?}"
    );
    ensure!(
        http_get(&admin, "/startupz").await?.0 == 200,
        "still started"
    );
    ensure!(http_get(&admin, "/healthz").await?.0 == 200, "still live");
    let (status, _) = upgrade_status(&ws_url).await?;
    ensure!(status == 503, "upgrade during the drain: {status}");
    client
        .expect_close_within(1012, Duration::from_millis(300) + STEP)
        .await?;
    ensure!(
        http_get(&admin, "/drain").await?.0 == 202,
        "/drain is idempotent"
    );
    fanout_tests::metrics::wait_eq(&admin, "fanout_edge_drain_closes_total", &[], 1.0).await?;
    fanout_tests::metrics::wait_eq(&admin, "fanout_edge_draining", &[], 1.0).await?;

    // Drained through /drain only: the process waits for its SIGTERM, then exits
    // without a second window.
    tokio::time::sleep(Duration::from_millis(500)).await;
    cluster.edges[e].proc.ensure_running()?;
    let signalled = Instant::now();
    terminate(cluster.edges[e].proc.pid())?;
    wait_stopped(&mut cluster.edges[e].proc, GRACE + STEP).await?;
    ensure!(
        signalled.elapsed() < GRACE,
        "exited {:?} after SIGTERM",
        signalled.elapsed()
    );
    Ok(())
}
