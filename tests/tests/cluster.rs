//! Cluster mode: `nats-server`, `fanout-router`s, `fanout-edge`s and `fanout-worker`s as
//! real processes on loopback ports, driven by WebSocket subscribers and gRPC publishers.
//!
//! Each test starts its own cluster (see `fanout_tests::cluster`), and kills roles (or
//! NATS) as real processes with SIGKILL. `nats-server` must be on `PATH` (`tests/run.sh`
//! installs it); without it these tests fail, they never skip.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use fanout_proto::v1::PublishReply;
use fanout_tests::cluster::{
    Cluster, ClusterSpec, NatsSniffer, Recorder, cluster_bins, nats_server_bin, sum_over,
};
use fanout_tests::grpc::request;
use fanout_tests::metrics::{find, http_get, scrape};
use fanout_tests::{
    GqlClient, Publisher, Result, STEP, Value, bail, ensure, eventually, json, within,
};

const CHAT: &str =
    "subscription Chat($room: String!) { chatMessage(room: $room) { room from text } }";
const ORDER: &str =
    "subscription Order($id: ID!) { orderUpdated(id: $id) { id status cents total } }";

/// After a router is killed, events must reach every subscriber again within this.
const ROUTER_FAILOVER: Duration = Duration::from_secs(5);
/// After NATS restarts, events must reach every subscriber again within this.
const NATS_RECOVERY: Duration = Duration::from_secs(15);

fn room(i: usize) -> String {
    format!("room{i}")
}

fn chat_event(room: &str, text: &str) -> Value {
    json!({ "room": room, "from": "tester", "text": text })
}

fn order_event(id: &str, status: &str, cents: u64) -> Value {
    json!({ "id": id, "status": status, "cents": cents, "items": [] })
}

/// Connects to `ws_url` and subscribes `room{i}` (id = room name) for every i in
/// `rooms`, plus `orderUpdated(id)` as subscription `order` for each id in `orders`
/// (ids `order-<id>`).
async fn subscriber(
    ws_url: &str,
    rooms: impl IntoIterator<Item = usize>,
    orders: &[&str],
) -> Result<GqlClient> {
    let mut client = GqlClient::connect_init(ws_url).await?;
    for i in rooms {
        let r = room(i);
        client
            .subscribe(&r, CHAT, Some(json!({ "room": r })))
            .await?;
    }
    for id in orders {
        client
            .subscribe(&format!("order-{id}"), ORDER, Some(json!({ "id": id })))
            .await?;
    }
    Ok(client)
}

/// Publishes until a publish is accepted or `deadline` passes; returns the reply.
async fn publish_until_accepted(
    publisher: &mut Publisher,
    channel: &str,
    event: &Value,
    deadline: Instant,
) -> Result<PublishReply> {
    let mut last = String::new();
    while Instant::now() < deadline {
        match publisher
            .try_publish(request(channel, event.to_string().into_bytes()))
            .await
        {
            Ok(Ok(reply)) => return Ok(reply),
            Ok(Err(status)) => last = format!("{status}"),
            Err(e) => last = format!("{e:#}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("publish to {channel} not accepted before the deadline (last: {last})")
}

/// The `text` of each chat payload.
fn texts(payloads: &[Value]) -> Vec<String> {
    payloads
        .iter()
        .map(|p| {
            p["data"]["chatMessage"]["text"]
                .as_str()
                .unwrap_or("<none>")
                .to_string()
        })
        .collect()
}

/// The `cents` of each order payload.
fn cents(payloads: &[Value]) -> Vec<u64> {
    payloads
        .iter()
        .map(|p| {
            p["data"]["orderUpdated"]["cents"]
                .as_u64()
                .unwrap_or(u64::MAX)
        })
        .collect()
}

/// Checks that offsets strictly increase (within one epoch) in `payloads`.
fn ensure_offsets_increase(what: &str, payloads: &[Value]) -> Result<()> {
    for pair in payloads.windows(2) {
        let (a, b) = (
            &pair[0]["extensions"]["fanout"],
            &pair[1]["extensions"]["fanout"],
        );
        if a["epoch"] == b["epoch"] {
            ensure!(
                a["offset"].as_u64() < b["offset"].as_u64(),
                "{what}: offsets out of order: {a} then {b}"
            );
        }
    }
    Ok(())
}

// -------------------------------------------------------------------------------------

/// Two edges, two routers, two workers: both edges' clients receive every event
/// published to either router, in publish order and with the right payloads, on 40
/// chat rooms (pass-through) spread over both routers and one order (Python resolver).
#[tokio::test]
async fn events_to_either_router_reach_clients_on_both_edges_in_order() -> Result<()> {
    const ROOMS: usize = 40;
    const PER_ROOM: usize = 3;
    let cluster = Cluster::start(ClusterSpec::new(2, 2, 2)).await?;
    let a = Recorder::start(subscriber(&cluster.edges[0].ws_url, 0..ROOMS, &["7"]).await?);
    let b = Recorder::start(subscriber(&cluster.edges[1].ws_url, 0..ROOMS, &["7"]).await?);

    // (40 rooms + 1 order) channels x 1 shape x 2 edges, split over both routers.
    let want = 2.0 * (ROOMS as f64 + 1.0);
    let entries = cluster
        .wait_interest(
            &[0, 1],
            STEP,
            "interest of both edges on the routers",
            |v| v.iter().sum::<f64>() == want,
        )
        .await?;
    ensure!(
        entries.iter().all(|&e| e > 0.0),
        "subscriptions are not spread over both routers: interest entries {entries:?}"
    );

    let mut publishers = [
        Publisher::connect(&cluster.routers[0].grpc_url).await?,
        Publisher::connect(&cluster.routers[1].grpc_url).await?,
    ];
    // Each room gets PER_ROOM events, alternating between the routers.
    let mut replies: HashMap<String, Vec<PublishReply>> = HashMap::new();
    for k in 0..PER_ROOM {
        for i in 0..ROOMS {
            let r = room(i);
            let reply = publishers[(i + k) % 2]
                .publish(&format!("chat.{r}"), &chat_event(&r, &format!("{r}-{k}")))
                .await?;
            replies.entry(r).or_default().push(reply);
        }
    }
    // Orders go through the Python resolver; the draft is skipped by it.
    let orders = [
        ("paid", 1999),
        ("draft", 5),
        ("shipped", 2500),
        ("paid", 1),
        ("done", 12345),
        ("paid", 700),
    ];
    for (k, (status, c)) in orders.iter().enumerate() {
        publishers[k % 2]
            .publish("orders.7", &order_event("7", status, *c))
            .await?;
    }
    let visible: Vec<(&str, u64)> = orders
        .iter()
        .filter(|(s, _)| *s != "draft")
        .map(|(s, c)| (*s, *c))
        .collect();

    let total = ROOMS * PER_ROOM + visible.len();
    for (name, rec) in [("edge-0 client", &a), ("edge-1 client", &b)] {
        rec.wait_until(STEP, &format!("{name} receives {total} events"), |r| {
            r.total() >= total
        })
        .await?;
        for i in 0..ROOMS {
            let r = room(i);
            let got = rec.payloads(&r);
            let sent = &replies[&r];
            ensure!(
                got.len() == PER_ROOM,
                "{name}: {r} got {} events: {:?}",
                got.len(),
                texts(&got)
            );
            for (k, (payload, reply)) in got.iter().zip(sent).enumerate() {
                let want = json!({
                    "data": { "chatMessage": { "room": r, "from": "tester", "text": format!("{r}-{k}") } },
                    "extensions": { "fanout": {
                        "channel": format!("chat.{r}"), "offset": reply.offset, "epoch": reply.epoch,
                    } },
                });
                ensure!(
                    payload == &want,
                    "{name}: {r} event {k}: got {payload}, want {want}"
                );
            }
        }
        let got = rec.payloads("order-7");
        ensure!(got.len() == visible.len(), "{name}: orders.7 got {:?}", got);
        for (payload, (status, c)) in got.iter().zip(&visible) {
            let want = json!({
                "id": "7", "status": status, "cents": c, "total": *c as f64 / 100.0,
            });
            ensure!(
                payload["data"]["orderUpdated"] == want,
                "{name}: orders.7: got {payload}, want {want}"
            );
        }
        ensure_offsets_increase(&format!("{name} orders.7"), &got)?;
        ensure!(rec.ended().is_none(), "{name}: {:?}", rec.ended());
    }
    Ok(())
}

/// Killing an edge removes its interest from the routers (back to what the surviving
/// edge holds), nothing more is sent to its delivery subject, and the other edge's
/// clients keep receiving.
#[tokio::test]
async fn killed_edge_interest_disappears_and_other_edge_is_unaffected() -> Result<()> {
    let mut cluster = Cluster::start(ClusterSpec::new(2, 2, 1)).await?;
    // The survivor (edge-1) watches rooms 0..20; the victim (edge-0) rooms 0..30.
    let survivor = Recorder::start(subscriber(&cluster.edges[1].ws_url, 0..20, &[]).await?);
    let only_survivor = cluster
        .wait_interest(&[0, 1], STEP, "edge-1's interest", |v| {
            v.iter().sum::<f64>() == 20.0
        })
        .await?;
    let victim = Recorder::start(subscriber(&cluster.edges[0].ws_url, 0..30, &[]).await?);
    let both = cluster
        .wait_interest(&[0, 1], STEP, "both edges' interest", |v| {
            v.iter().sum::<f64>() == 50.0
        })
        .await?;
    ensure!(
        both.iter().all(|&e| e > 0.0),
        "interest not spread over both routers: {both:?}"
    );

    // The sniffer sees what the routers send to edge-0; check it does see deliveries.
    let victim_subject = format!("fanout.edge.{}", cluster.edges[0].id);
    let sniffer = NatsSniffer::subscribe(&cluster.nats, &victim_subject).await?;
    let mut publisher = Publisher::connect(&cluster.routers[0].grpc_url).await?;
    publisher
        .publish("chat.room25", &chat_event("room25", "before"))
        .await?;
    victim
        .wait_until(STEP, "edge-0 client gets room25 before the kill", |r| {
            r.payloads("room25").len() == 1
        })
        .await?;
    eventually(STEP, "the sniffer sees the delivery to edge-0", || async {
        Ok((sniffer.count() >= 1).then_some(()))
    })
    .await?;

    cluster.edges[0].proc.kill();
    let killed = Instant::now();
    let after = cluster
        .wait_interest(
            &[0, 1],
            Duration::from_secs(5),
            "the killed edge's interest leaves the routers",
            |v| v == only_survivor.as_slice(),
        )
        .await?;
    println!(
        "edge-0 interest gone {:?} after the kill: {both:?} -> {after:?}",
        killed.elapsed()
    );
    within(
        STEP,
        "the killed edge's client sees its connection end",
        async {
            while victim.ended().is_none() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        },
    )
    .await?;

    let seen_before = sniffer.count();
    let mut publishers = [
        publisher,
        Publisher::connect(&cluster.routers[1].grpc_url).await?,
    ];
    // The dead edge's own rooms first: once edge-1 has the shared rooms' events, the
    // routers have long dispatched these.
    for i in (20..30).chain(0..20) {
        let r = room(i);
        publishers[i % 2]
            .publish(&format!("chat.{r}"), &chat_event(&r, "after"))
            .await?;
    }
    survivor
        .wait_until(STEP, "edge-1 client gets rooms 0..20 after the kill", |r| {
            (0..20).all(|i| texts(&r.payloads(&room(i))) == ["after"])
        })
        .await?;
    ensure!(
        survivor.total() == 20,
        "edge-1 client got unexpected extra events: {}",
        survivor.total()
    );
    // Deliveries for the dead edge would have been sent together with edge-1's.
    tokio::time::sleep(Duration::from_millis(300)).await;
    ensure!(
        sniffer.count() == seen_before,
        "{} deliveries were sent to the killed edge's subject {victim_subject}",
        sniffer.count() - seen_before
    );
    ensure!(survivor.ended().is_none(), "{:?}", survivor.ended());
    Ok(())
}

/// Killing a router: its partitions move to the survivor, the edges re-register their
/// interest there, and events published to the survivor reach every subscriber again
/// within [`ROUTER_FAILOVER`] of the kill.
#[tokio::test]
async fn killed_router_partitions_move_and_delivery_resumes_within_5s() -> Result<()> {
    const ROOMS: usize = 40;
    let mut cluster = Cluster::start(ClusterSpec::new(2, 2, 1)).await?;
    let recs = [
        Recorder::start(subscriber(&cluster.edges[0].ws_url, 0..ROOMS, &[]).await?),
        Recorder::start(subscriber(&cluster.edges[1].ws_url, 0..ROOMS, &[]).await?),
    ];
    let entries = cluster
        .wait_interest(&[0, 1], STEP, "interest of both edges", |v| {
            v.iter().sum::<f64>() == 2.0 * ROOMS as f64
        })
        .await?;
    ensure!(
        entries[0] > 0.0,
        "router-0 owns no subscribed channel, so killing it proves nothing: {entries:?}"
    );
    let mut publisher = Publisher::connect(&cluster.routers[1].grpc_url).await?;
    for i in 0..ROOMS {
        let r = room(i);
        publisher
            .publish(&format!("chat.{r}"), &chat_event(&r, "before"))
            .await?;
    }
    for rec in &recs {
        rec.wait_until(STEP, "every room's event before the kill", |r| {
            r.total() == ROOMS
        })
        .await?;
    }

    cluster.routers[0].proc.kill();
    let killed = Instant::now();
    let deadline = killed + ROUTER_FAILOVER;
    // Probe every room through the survivor, round after round, until both clients
    // have a post-kill event on every room.
    let mut round = 0;
    let mut lost_accepted = 0usize;
    loop {
        let pending: Vec<usize> = (0..ROOMS)
            .filter(|&i| recs.iter().any(|rec| rec.payloads(&room(i)).len() < 2))
            .collect();
        if pending.is_empty() {
            break;
        }
        if Instant::now() >= deadline {
            let missing: Vec<String> = pending.iter().map(|&i| room(i)).collect();
            bail!(
                "{} rooms still had no post-kill event on both edges {ROUTER_FAILOVER:?} \
                 after router-0 was killed (rounds: {round}): {missing:?}",
                pending.len()
            );
        }
        for &i in &pending {
            let r = room(i);
            publish_until_accepted(
                &mut publisher,
                &format!("chat.{r}"),
                &chat_event(&r, &format!("probe{round}")),
                deadline,
            )
            .await?;
        }
        let waited = Instant::now();
        while waited.elapsed() < Duration::from_millis(400)
            && pending
                .iter()
                .any(|&i| recs.iter().any(|rec| rec.payloads(&room(i)).len() < 2))
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if round > 0 {
            lost_accepted += pending.len();
        }
        round += 1;
    }
    let recovered = killed.elapsed();
    println!(
        "delivery resumed on all {ROOMS} rooms {recovered:?} after the router kill ({round} probe rounds, {lost_accepted} re-probes)"
    );

    // Every room now lives on router-1 with both edges' interest.
    cluster
        .wait_interest(&[1], STEP, "router-1 holds all interest", |v| {
            v[0] == 2.0 * ROOMS as f64
        })
        .await?;
    cluster.wait_all_ready(STEP).await?;
    // And the path is steady: one more event per room arrives everywhere, first try.
    for i in 0..ROOMS {
        let r = room(i);
        publisher
            .publish(&format!("chat.{r}"), &chat_event(&r, "final"))
            .await?;
    }
    for (e, rec) in recs.iter().enumerate() {
        rec.wait_until(
            STEP,
            &format!("edge-{e} client gets every final event"),
            |r| {
                (0..ROOMS).all(|i| {
                    texts(&r.payloads(&room(i))).last().map(String::as_str) == Some("final")
                })
            },
        )
        .await?;
        for i in 0..ROOMS {
            let got = texts(&rec.payloads(&room(i)));
            ensure!(got[0] == "before", "edge-{e} room{i}: {got:?}");
            // Probes arrive in round order, at most once each.
            let rounds: Vec<usize> = got[1..got.len() - 1]
                .iter()
                .map(|t| t.trim_start_matches("probe").parse().unwrap_or(usize::MAX))
                .collect();
            ensure!(
                rounds.windows(2).all(|w| w[0] < w[1]),
                "edge-{e} room{i}: probes out of order or repeated: {got:?}"
            );
        }
        ensure!(rec.ended().is_none(), "edge-{e}: {:?}", rec.ended());
    }
    Ok(())
}

/// Killing a resolver worker while events flow through a Python resolver: the other
/// worker carries on; every event published after the kill arrives, in order, and
/// only events in flight at the kill may be lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_worker_loses_at_most_in_flight_events() -> Result<()> {
    const BEFORE: u64 = 60;
    const AFTER: u64 = 60;
    let mut cluster = Cluster::start(ClusterSpec::new(2, 2, 2)).await?;
    let recs = [
        Recorder::start(subscriber(&cluster.edges[0].ws_url, [], &["w"]).await?),
        Recorder::start(subscriber(&cluster.edges[1].ws_url, [], &["w"]).await?),
    ];
    cluster
        .wait_interest(&[0, 1], STEP, "interest of both edges", |v| {
            v.iter().sum::<f64>() == 2.0
        })
        .await?;
    let worker_urls: Vec<String> = cluster
        .workers
        .iter()
        .map(|w| w.admin_url.clone())
        .collect();
    let calls = |i: usize| {
        let url = worker_urls[i].clone();
        async move { fanout_tests::metrics::value(&url, "fanout_resolver_calls_total", &[]).await }
    };

    // Events flow without a pause while the worker dies: a publisher task sends
    // cents = 1, 2, 3, ... alternating between the routers, every 10 ms.
    let (kill_tx, kill_rx) = tokio::sync::oneshot::channel::<Instant>();
    let mut publishers = [
        Publisher::connect(&cluster.routers[0].grpc_url).await?,
        Publisher::connect(&cluster.routers[1].grpc_url).await?,
    ];
    let flow = tokio::spawn(async move {
        let mut kill_rx = kill_rx;
        let mut killed_at: Option<Instant> = None;
        let mut after_kill_from = None;
        let mut n = 0u64;
        loop {
            n += 1;
            if killed_at.is_none()
                && let Ok(t) = kill_rx.try_recv()
            {
                killed_at = Some(t);
                after_kill_from = Some(n);
            }
            publishers[(n % 2) as usize]
                .publish("orders.w", &order_event("w", "paid", n))
                .await?;
            if let Some(from) = after_kill_from
                && n >= from + AFTER
            {
                return Ok::<_, anyhow::Error>((n, from));
            }
            if killed_at.is_none() && n > 10 * BEFORE {
                bail!("the worker was never killed");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });

    // Kill worker-0 once it has done some of the work.
    eventually(STEP, "worker-0 resolves some events", || async {
        Ok((calls(0).await? >= (BEFORE / 4) as f64).then_some(()))
    })
    .await?;
    recs[0]
        .wait_until(STEP, "events flow before the kill", |r| {
            r.total() as u64 >= BEFORE
        })
        .await?;
    let survivor_before = calls(1).await?;
    cluster.workers[0].proc.kill();
    let _ = kill_tx.send(Instant::now());
    let (last, first_after) = within(Duration::from_secs(30), "the publisher task", flow)
        .await??
        .map_err(|e| e.context("publishing while the worker dies"))?;

    for (e, rec) in recs.iter().enumerate() {
        // A gap left by the dead worker is skipped after the edge's reorder window.
        rec.wait_until(
            STEP,
            &format!("edge-{e} client gets every event published after the kill"),
            |r| cents(&r.payloads("order-w")).last() == Some(&last),
        )
        .await?;
        let got = rec.payloads("order-w");
        let seen = cents(&got);
        ensure!(
            seen.windows(2).all(|w| w[0] < w[1]),
            "edge-{e}: events out of order or repeated: {seen:?}"
        );
        for p in &got {
            let c = p["data"]["orderUpdated"]["cents"].as_u64().unwrap_or(0);
            ensure!(
                p["data"]["orderUpdated"]["total"] == json!(c as f64 / 100.0),
                "edge-{e}: the resolver's total is wrong in {p}"
            );
        }
        let missing: Vec<u64> = (1..=last).filter(|n| !seen.contains(n)).collect();
        ensure!(
            missing.iter().all(|&n| n < first_after),
            "edge-{e}: events published after the kill (from {first_after}) are missing: {missing:?}"
        );
        // In flight at the kill: what worker-0 had taken and not yet answered.
        ensure!(
            missing.len() <= 10,
            "edge-{e}: {} events lost, more than could be in flight: {missing:?}",
            missing.len()
        );
        println!(
            "edge-{e}: {} of {last} events, lost at the kill: {missing:?}",
            seen.len()
        );
        ensure!(rec.ended().is_none(), "edge-{e}: {:?}", rec.ended());
    }
    let survivor_after = calls(1).await?;
    ensure!(
        survivor_after >= survivor_before + AFTER as f64,
        "worker-1 did not take over: resolver calls {survivor_before} -> {survivor_after}"
    );
    Ok(())
}

/// Killing nats-server and starting it again on the same port: every role reports
/// not ready while NATS is gone, and the cluster recovers without restarting any
/// role: `/readyz` is 200 again and events reach subscribers within [`NATS_RECOVERY`].
#[tokio::test]
async fn nats_restart_cluster_recovers_without_restarting_roles() -> Result<()> {
    const ROOMS: usize = 10;
    let mut cluster = Cluster::start(ClusterSpec::new(2, 2, 1)).await?;
    let recs = [
        Recorder::start(subscriber(&cluster.edges[0].ws_url, 0..ROOMS, &["n"]).await?),
        Recorder::start(subscriber(&cluster.edges[1].ws_url, 0..ROOMS, &["n"]).await?),
    ];
    cluster
        .wait_interest(&[0, 1], STEP, "interest of both edges", |v| {
            v.iter().sum::<f64>() == 2.0 * (ROOMS as f64 + 1.0)
        })
        .await?;
    let pids: Vec<u32> = cluster
        .routers
        .iter()
        .map(|r| r.proc.pid())
        .chain(cluster.edges.iter().map(|e| e.proc.pid()))
        .chain(cluster.workers.iter().map(|w| w.proc.pid()))
        .collect();

    cluster.nats.kill();
    let admins = cluster.live_admin_urls();
    for (name, url) in &admins {
        eventually(
            Duration::from_secs(5),
            &format!("{name} reports not ready while NATS is down"),
            || async { Ok((http_get(url, "/readyz").await?.0 == 503).then_some(())) },
        )
        .await?;
    }
    cluster.nats.restart().await?;
    let restarted = Instant::now();
    cluster.wait_all_ready(NATS_RECOVERY).await?;
    let ready_after = restarted.elapsed();

    let mut publisher = Publisher::connect(&cluster.routers[0].grpc_url).await?;
    let deadline = restarted + NATS_RECOVERY;
    let ids: Vec<String> = (0..ROOMS).map(room).chain(["order-n".into()]).collect();
    let mut round = 0u64;
    loop {
        let pending: Vec<&String> = ids
            .iter()
            .filter(|id| recs.iter().any(|rec| rec.payloads(id).is_empty()))
            .collect();
        if pending.is_empty() {
            break;
        }
        if Instant::now() >= deadline {
            bail!(
                "no delivery after the NATS restart within {NATS_RECOVERY:?} \
                 (ready after {ready_after:?}, {round} rounds) for {pending:?}"
            );
        }
        round += 1;
        for id in pending {
            if id == "order-n" {
                publish_until_accepted(
                    &mut publisher,
                    "orders.n",
                    &order_event("n", "paid", round),
                    deadline,
                )
                .await?;
            } else {
                publish_until_accepted(
                    &mut publisher,
                    &format!("chat.{id}"),
                    &chat_event(id, &format!("probe{round}")),
                    deadline,
                )
                .await?;
            }
        }
        let waited = Instant::now();
        while waited.elapsed() < Duration::from_millis(400)
            && ids
                .iter()
                .any(|id| recs.iter().any(|rec| rec.payloads(id).is_empty()))
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    println!(
        "after the NATS restart: ready in {ready_after:?}, delivering in {:?} ({round} rounds)",
        restarted.elapsed()
    );
    // No role was restarted: the same processes are serving.
    let now: Vec<u32> = cluster
        .routers
        .iter()
        .map(|r| r.proc.pid())
        .chain(cluster.edges.iter().map(|e| e.proc.pid()))
        .chain(cluster.workers.iter().map(|w| w.proc.pid()))
        .collect();
    ensure!(now == pids, "role processes changed: {pids:?} -> {now:?}");
    for rec in &recs {
        let got = rec.payloads("order-n");
        ensure!(
            got.iter().all(|p| p["data"]["orderUpdated"]["total"]
                == json!(p["data"]["orderUpdated"]["cents"].as_f64().unwrap_or(0.0) / 100.0)),
            "resolver result wrong after the restart: {got:?}"
        );
        ensure!(rec.ended().is_none(), "{:?}", rec.ended());
    }
    Ok(())
}

/// The Python resolver runs in the workers: `fanout_resolver_calls_total` counts one
/// call per event in the workers' metrics, routers and edges have no such series, and
/// the resolver's effect (`total` from `cents`, drafts skipped) is in the payload.
#[tokio::test]
async fn python_resolver_runs_in_workers_only() -> Result<()> {
    let cluster = Cluster::start(ClusterSpec::new(2, 1, 2)).await?;
    let rec = Recorder::start(subscriber(&cluster.edges[0].ws_url, [3], &["py"]).await?);
    cluster
        .wait_interest(&[0, 1], STEP, "the edge's interest", |v| {
            v.iter().sum::<f64>() == 2.0
        })
        .await?;
    let mut publisher = Publisher::connect(&cluster.routers[1].grpc_url).await?;
    let events = [
        ("paid", 1999u64),
        ("draft", 1),
        ("paid", 250),
        ("shipped", 7),
    ];
    for (status, c) in events {
        publisher
            .publish("orders.py", &order_event("py", status, c))
            .await?;
    }
    publisher
        .publish("chat.room3", &chat_event("room3", "no python here"))
        .await?;
    rec.wait_until(STEP, "3 orders and 1 chat message", |r| r.total() == 4)
        .await?;
    let got: Vec<Value> = rec
        .payloads("order-py")
        .iter()
        .map(|p| p["data"]["orderUpdated"].clone())
        .collect();
    ensure!(
        got == vec![
            json!({ "id": "py", "status": "paid", "cents": 1999, "total": 19.99 }),
            json!({ "id": "py", "status": "paid", "cents": 250, "total": 2.5 }),
            json!({ "id": "py", "status": "shipped", "cents": 7, "total": 0.07 }),
        ],
        "resolver results: {got:?}"
    );

    let workers: Vec<&str> = cluster
        .workers
        .iter()
        .map(|w| w.admin_url.as_str())
        .collect();
    // One call per event (one shape), the skipped draft included: wait for the four
    // (a counter may lag the delivery it produced), then check that no more come.
    let _ = eventually(STEP, "workers count 4 orderUpdated calls", || async {
        let (calls, _) = sum_over(
            &workers,
            "fanout_resolver_calls_total",
            &[("field", "orderUpdated")],
        )
        .await?;
        Ok((calls >= 4.0).then_some(()))
    })
    .await;
    let (calls, _) = sum_over(
        &workers,
        "fanout_resolver_calls_total",
        &[("field", "orderUpdated")],
    )
    .await?;
    ensure!(
        calls == 4.0,
        "workers counted {calls} orderUpdated calls, want 4"
    );
    let (chat_calls, chat_any) = sum_over(
        &workers,
        "fanout_resolver_calls_total",
        &[("field", "chatMessage")],
    )
    .await?;
    ensure!(
        !chat_any,
        "chatMessage has no resolver, yet workers counted {chat_calls} calls"
    );
    for (name, url) in cluster
        .routers
        .iter()
        .map(|r| (&r.id, &r.admin_url))
        .chain(cluster.edges.iter().map(|e| (&e.id, &e.admin_url)))
    {
        let text = scrape(url).await?;
        for series in [
            "fanout_resolver_calls_total",
            "fanout_resolver_seconds_count",
        ] {
            ensure!(
                find(&text, series, &[]).is_none(),
                "{name} exports {series}: Python ran outside the workers?\n{text}"
            );
        }
    }
    Ok(())
}

/// `/healthz`, `/readyz` and `/metrics` answer on every role.
#[tokio::test]
async fn admin_endpoints_answer_on_every_role() -> Result<()> {
    let mut cluster = Cluster::start(ClusterSpec::new(1, 1, 1)).await?;
    let expect_metric = BTreeMap::from([
        ("router-0", "fanout_router_interest_entries"),
        ("edge-0", "fanout_edge_connections"),
        ("worker-0", "fanout_deliveries_total"),
    ]);
    for (name, url) in cluster.live_admin_urls() {
        for path in ["/healthz", "/readyz"] {
            let (status, body) = http_get(&url, path).await?;
            ensure!(status == 200, "{name} {path}: {status} {body}");
        }
        let text = scrape(&url).await?;
        let series = expect_metric[name.as_str()];
        ensure!(
            text.contains(series),
            "{name} /metrics lacks {series}:\n{text}"
        );
        let (status, _) = http_get(&url, "/no-such-path").await?;
        ensure!(status == 404, "{name} /no-such-path answered {status}");
    }
    Ok(())
}

/// Each role's `--help` lists its flags and exits 0; unknown flags and bad values
/// exit with 64 and say what is wrong.
#[tokio::test]
async fn role_help_and_bad_flags() -> Result<()> {
    let bins = tokio::task::spawn_blocking(cluster_bins).await??;
    let schema = fanout_tests::fixtures::example("orders/schema.graphql")
        .display()
        .to_string();
    let resolvers = fanout_tests::fixtures::example("orders/resolvers.py")
        .display()
        .to_string();
    let common = [
        "--config",
        "--nats-url",
        "--admin-listen",
        "--schema",
        "--log-json",
    ];
    let roles: [(&str, &std::path::Path, &[&str]); 3] = [
        (
            "router",
            &bins.router,
            &[
                "--router-id",
                "--members",
                "--membership",
                "--partitions",
                "--grpc-listen",
                "--resolvers",
                "--max-payload-bytes",
                "--multi-tenant",
            ],
        ),
        (
            "edge",
            &bins.edge,
            &[
                "--edge-id",
                "--members",
                "--membership",
                "--partitions",
                "--listen",
                "--jwt-secret",
                "--reorder-window-ms",
                "--max-subscriptions",
            ],
        ),
        (
            "worker",
            &bins.worker,
            &[
                "--worker-id",
                "--resolvers",
                "--virtualenv",
                "--resolver-timeout-ms",
                "--multi-tenant",
            ],
        ),
    ];
    for (role, bin, flags) in roles {
        let out = run(bin, &["--help"]).await?;
        let help = String::from_utf8_lossy(&out.stdout).to_string();
        ensure!(out.status.code() == Some(0), "{role} --help: {out:?}");
        for flag in common.iter().chain(flags.iter()) {
            ensure!(
                help.contains(flag),
                "fanout-{role} --help lacks {flag}:\n{help}"
            );
        }
        let about = help.lines().next().unwrap_or_default().to_lowercase();
        ensure!(
            about.contains(role),
            "fanout-{role} --help does not say what the binary is: {about:?}"
        );
    }

    let mut bad: Vec<(&str, &std::path::Path, Vec<&str>, &str)> = vec![
        (
            "router",
            &bins.router,
            vec!["--no-such-flag"],
            "--no-such-flag",
        ),
        ("edge", &bins.edge, vec!["--no-such-flag"], "--no-such-flag"),
        (
            "worker",
            &bins.worker,
            vec!["--no-such-flag"],
            "--no-such-flag",
        ),
        // Missing required --schema.
        (
            "router",
            &bins.router,
            vec!["--members", "r=127.0.0.1:1"],
            "--schema",
        ),
        (
            "worker",
            &bins.worker,
            vec!["--resolvers", &resolvers],
            "--schema",
        ),
    ];
    let with_schema: Vec<(&str, &std::path::Path, Vec<&str>, &str)> = vec![
        (
            "router",
            &bins.router,
            vec!["--members", "r=127.0.0.1:1", "--partitions", "0"],
            "--partitions",
        ),
        (
            "router",
            &bins.router,
            vec![
                "--members",
                "r=127.0.0.1:1",
                "--grpc-listen",
                "not-an-address",
            ],
            "not-an-address",
        ),
        ("router", &bins.router, vec![], "--members"),
        (
            "edge",
            &bins.edge,
            vec!["--members", "r=127.0.0.1:1", "--max-subscriptions", "0"],
            "--max-subscriptions",
        ),
        (
            "edge",
            &bins.edge,
            vec![
                "--members",
                "r=127.0.0.1:1",
                "--membership",
                "carrier-pigeon",
            ],
            "carrier-pigeon",
        ),
        (
            "worker",
            &bins.worker,
            vec!["--resolvers", &resolvers, "--resolver-timeout-ms", "0"],
            "--resolver-timeout-ms",
        ),
    ];
    for (role, bin, mut args, mention) in with_schema {
        args.extend(["--schema", schema.as_str()]);
        bad.push((role, bin, args, mention));
    }
    for (role, bin, args, mention) in bad {
        let out = run(bin, &args).await?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        ensure!(
            out.status.code() == Some(64),
            "fanout-{role} {args:?} exited with {:?}, want 64; stderr:\n{stderr}",
            out.status.code()
        );
        ensure!(
            stderr.contains(mention),
            "fanout-{role} {args:?}: stderr does not mention {mention:?}:\n{stderr}"
        );
    }
    Ok(())
}

/// Runs `bin ARGS` to completion within [`STEP`] (killed on timeout).
async fn run(bin: &std::path::Path, args: &[&str]) -> Result<std::process::Output> {
    let child = tokio::process::Command::new(bin)
        .args(args)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    Ok(within(
        STEP,
        &format!("{} {args:?} to exit", bin.display()),
        child.wait_with_output(),
    )
    .await??)
}

/// nats-server must be there: the cluster tests fail (never skip) without it.
#[test]
fn nats_server_is_installed() -> Result<()> {
    nats_server_bin().map(|_| ())
}
