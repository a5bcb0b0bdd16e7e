//! Telemetry: spans of one event exported over OTLP from every role as one trace, and
//! `/metrics` of every role as strict Prometheus text whose counters move when events
//! flow. The OTLP receiver is a gRPC server of this test on a loopback port.

use std::collections::HashMap;
use std::time::Duration;

use fanout_proto::v1::publisher_client::PublisherClient;
use fanout_tests::cluster::{Cluster, ClusterSpec};
use fanout_tests::grpc::request;
use fanout_tests::metrics::{Exposition, scrape_strict, wait_eq};
use fanout_tests::otlp::{OtlpReceiver, ReceivedSpan};
use fanout_tests::{Fanout, GqlClient, Result, STEP, bail, ensure, eventually, json, within};

const ORDER: &str =
    "subscription Order($id: ID!) { orderUpdated(id: $id) { id status cents total } }";

/// The publisher's own span, sent as `traceparent` gRPC metadata.
const PARENT_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_SPAN: &str = "00f067aa0ba902b7";

/// Batched spans are exported every 5 s by default; this leaves room for that.
const EXPORT_WAIT: Duration = Duration::from_secs(30);

fn traceparent() -> String {
    format!("00-{PARENT_TRACE}-{PARENT_SPAN}-01")
}

/// Publishes one order event with the publisher's `traceparent` in the call metadata.
async fn publish_traced(grpc_url: &str, id: &str) -> Result<()> {
    let mut client = within(
        STEP,
        "gRPC connect",
        PublisherClient::connect(grpc_url.to_owned()),
    )
    .await??;
    let event = json!({ "id": id, "status": "paid", "cents": 1999, "items": [] });
    let mut call = tonic::Request::new(request(
        &format!("orders.{id}"),
        event.to_string().into_bytes(),
    ));
    call.metadata_mut()
        .insert("traceparent", traceparent().parse()?);
    within(STEP, "gRPC Publish", client.publish(call)).await??;
    Ok(())
}

/// Waits until the receiver holds a span called each of `names` in the publisher's
/// trace; returns them by name.
async fn wait_for_spans(
    receiver: &OtlpReceiver,
    names: &[&str],
) -> Result<HashMap<String, ReceivedSpan>> {
    let found = eventually(
        EXPORT_WAIT,
        "the event's spans at the OTLP receiver",
        || {
            let spans = receiver.spans();
            async move {
                let in_trace: HashMap<String, ReceivedSpan> = spans
                    .into_iter()
                    .filter(|s| s.trace_id == PARENT_TRACE)
                    .map(|s| (s.name.clone(), s))
                    .collect();
                Ok(names
                    .iter()
                    .all(|n| in_trace.contains_key(*n))
                    .then_some(in_trace))
            }
        },
    )
    .await;
    match found {
        Ok(spans) => Ok(spans),
        Err(e) => {
            let seen: Vec<String> = receiver
                .spans()
                .iter()
                .map(|s| format!("{}:{}@{}", s.service, s.name, s.trace_id))
                .collect();
            bail!("{e:#}; received: {seen:?}")
        }
    }
}

/// Checks that `child`'s parent is `parent`.
fn child_of(spans: &HashMap<String, ReceivedSpan>, child: &str, parent: &str) -> Result<()> {
    let (c, p) = (&spans[child], &spans[parent]);
    ensure!(
        c.parent_span_id == p.span_id,
        "{child} ({}) should be a child of {parent} ({}): {c:?}",
        c.service,
        p.service
    );
    Ok(())
}

/// A series of one role: (role, name, labels).
type RoleSeries = (
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
);

/// The counters one event through a Python resolver must move.
const MOVES: &[RoleSeries] = &[
    ("router", "fanout_router_events_published_total", &[]),
    ("worker", "fanout_deliveries_total", &[]),
    ("worker", "fanout_worker_tasks_total", &[]),
    (
        "worker",
        "fanout_resolver_calls_total",
        &[("field", "orderUpdated")],
    ),
    ("worker", "fanout_resolver_seconds_count", &[]),
    ("edge", "fanout_edge_frames_total", &[]),
    ("edge", "fanout_edge_events_delivered_total", &[]),
    ("edge", "fanout_publish_to_deliver_seconds_count", &[]),
];

#[tokio::test]
async fn one_event_is_one_trace_over_every_role_and_moves_their_counters() -> Result<()> {
    let receiver = OtlpReceiver::start().await?;
    let mut spec = ClusterSpec::new(1, 1, 1);
    spec.role_args = vec!["--otlp-endpoint".into(), receiver.endpoint.clone()];
    let cluster = Cluster::start(spec).await?;
    let admin = |role: &str| -> &str {
        match role {
            "router" => &cluster.routers[0].admin_url,
            "worker" => &cluster.workers[0].admin_url,
            _ => &cluster.edges[0].admin_url,
        }
    };

    let mut client = GqlClient::connect_init(&cluster.edges[0].ws_url).await?;
    client
        .subscribe("o", ORDER, Some(json!({ "id": "7" })))
        .await?;
    cluster
        .wait_interest(&[0], STEP, "the edge's interest on the router", |v| {
            v == [1.0]
        })
        .await?;
    let mut before: HashMap<&str, Exposition> = HashMap::new();
    for role in ["router", "worker", "edge"] {
        let metrics = scrape_strict(admin(role)).await?;
        ensure!(
            metrics.sum("fanout_ready", &[("role", role)]) == 1.0,
            "the {role} reports itself ready in fanout_ready"
        );
        before.insert(role, metrics);
    }

    publish_traced(&cluster.routers[0].grpc_url, "7").await?;
    let payload = client.next_payload("o").await?;
    ensure!(
        payload["data"]["orderUpdated"]["total"] == json!(19.99),
        "resolved by the worker: {payload}"
    );

    // One trace: publish (router) → dispatch (router) → resolve (worker) → deliver (edge).
    let spans = wait_for_spans(&receiver, &["publish", "dispatch", "resolve", "deliver"]).await?;
    for (name, service) in [
        ("publish", "fanout-router"),
        ("dispatch", "fanout-router"),
        ("resolve", "fanout-worker"),
        ("deliver", "fanout-edge"),
    ] {
        ensure!(
            spans[name].service == service,
            "{name} comes from {service}: {:?}",
            spans[name]
        );
    }
    ensure!(
        spans["publish"].parent_span_id == PARENT_SPAN,
        "publish continues the publisher's span: {:?}",
        spans["publish"]
    );
    child_of(&spans, "dispatch", "publish")?;
    child_of(&spans, "resolve", "dispatch")?;
    child_of(&spans, "deliver", "resolve")?;
    ensure!(
        spans["publish"].attribute("channel") == Some("orders.7"),
        "{:?}",
        spans["publish"]
    );
    ensure!(
        spans["deliver"].attribute("frames") == Some("1"),
        "{:?}",
        spans["deliver"]
    );

    // Every role's /metrics stays strict Prometheus text, and the counters moved.
    for (role, name, labels) in MOVES {
        let was = before[role].sum(name, labels);
        let now = eventually(STEP, &format!("{name} grows on the {role}"), || async {
            let now = scrape_strict(admin(role)).await?.sum(name, labels);
            Ok((now > was).then_some(now))
        })
        .await?;
        ensure!(now == was + 1.0, "{role} {name}: {was} → {now}");
    }
    let edge = scrape_strict(admin("edge")).await?;
    ensure!(
        edge.families
            .get("fanout_publish_to_deliver_seconds")
            .map(|f| f.kind.as_str())
            == Some("histogram"),
        "publish→deliver latency is a histogram: {:?}",
        edge.families.get("fanout_publish_to_deliver_seconds")
    );
    Ok(())
}

/// `fanout standalone --otlp-endpoint`: the same four spans, from one process.
#[tokio::test]
async fn standalone_exports_the_spans_of_an_event_as_one_trace() -> Result<()> {
    let receiver = OtlpReceiver::start().await?;
    let fanout = Fanout::start_with_env(
        ["--otlp-endpoint", receiver.endpoint.as_str()],
        [("OTEL_BSP_SCHEDULE_DELAY", "100")],
    )
    .await?;
    let mut client = GqlClient::connect_init(&fanout.ws_url).await?;
    client
        .subscribe("o", ORDER, Some(json!({ "id": "9" })))
        .await?;
    wait_eq(&fanout.admin_url, "fanout_edge_subscriptions", &[], 1.0).await?;
    publish_traced(&fanout.grpc_url, "9").await?;
    client.next_payload("o").await?;
    let spans = wait_for_spans(&receiver, &["publish", "dispatch", "resolve", "deliver"]).await?;
    ensure!(
        spans.values().all(|s| s.service == "fanout"),
        "service name of standalone: {spans:?}"
    );
    child_of(&spans, "dispatch", "publish")?;
    child_of(&spans, "resolve", "dispatch")?;
    child_of(&spans, "deliver", "resolve")?;
    Ok(())
}

/// Before any event, `/metrics` of `fanout standalone` is strict Prometheus text that
/// already lists the unlabelled series (dashboards see 0, not "no data").
#[tokio::test]
async fn standalone_metrics_are_strict_prometheus_text_with_the_documented_series() -> Result<()> {
    let fanout = Fanout::start(std::iter::empty::<&str>()).await?;
    wait_eq(
        &fanout.admin_url,
        "fanout_ready",
        &[("role", "standalone")],
        1.0,
    )
    .await?;
    let metrics = scrape_strict(&fanout.admin_url).await?;
    for name in [
        "fanout_edge_connections",
        "fanout_edge_subscriptions",
        "fanout_edge_shapes",
        "fanout_edge_frames_total",
        "fanout_edge_events_delivered_total",
        "fanout_edge_outbound_queue_max_frames",
        "fanout_router_events_published_total",
        "fanout_deliveries_total",
        "fanout_worker_tasks_total",
        "fanout_worker_tasks_in_flight",
        "fanout_resolver_queue_depth",
    ] {
        ensure!(
            metrics.families.contains_key(name),
            "{name} is listed before any event: {:?}",
            metrics.families.keys().collect::<Vec<_>>()
        );
    }
    Ok(())
}
