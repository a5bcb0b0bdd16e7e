//! Trace context: the publisher's `traceparent` (gRPC metadata) reaches the resolver in
//! `ctx.headers`, in the same trace; a publish without one starts a new trace.

use std::collections::HashMap;

use fanout_proto::v1::publisher_client::PublisherClient;
use fanout_tests::grpc::request;
use fanout_tests::metrics::wait_eq;
use fanout_tests::{Fanout, GqlClient, Result, ensure, json};

const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

#[tokio::test]
async fn traceparent_travels_from_publish_metadata_to_the_resolver() -> Result<()> {
    let fanout = Fanout::suite(&[]).await?;
    let mut c = GqlClient::connect_init(&fanout.ws_url).await?;
    c.subscribe(
        "s",
        r#"subscription { whoami(room: "t") { trace n } }"#,
        None,
    )
    .await?;
    wait_eq(&fanout.admin_url, "fanout_edge_subscriptions", &[], 1.0).await?;
    let mut client = PublisherClient::connect(fanout.grpc_url.clone()).await?;

    let mut traced = tonic::Request::new(request("who.t", br#"{"n":1}"#.to_vec()));
    traced.metadata_mut().insert("traceparent", PARENT.parse()?);
    client.publish(traced).await?;
    let first = c.next_payload("s").await?;
    let trace = first["data"]["whoami"]["trace"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    ensure!(
        trace.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
        "the resolver sees a child of the caller's trace: {first}"
    );
    ensure!(trace != PARENT, "a new span id, not the caller's: {trace}");

    client
        .publish(tonic::Request::new(request(
            "who.t",
            br#"{"n":2}"#.to_vec(),
        )))
        .await?;
    let second = c.next_payload("s").await?;
    let fresh = second["data"]["whoami"]["trace"]
        .as_str()
        .unwrap_or_default();
    ensure!(
        fresh.len() == 55 && fresh.starts_with("00-") && !fresh.contains("4bf92f3577b34da6"),
        "a publish without trace context starts a new trace: {second}"
    );

    // A publisher-supplied header wins over the metadata when it is well formed.
    let mut own = request("who.t", br#"{"n":3}"#.to_vec());
    own.headers = HashMap::from([("traceparent".to_owned(), PARENT.to_owned())]);
    client.publish(tonic::Request::new(own)).await?;
    let third = c.next_payload("s").await?;
    ensure!(
        third["data"]["whoami"] == json!({ "trace": PARENT, "n": 3 }),
        "{third}"
    );
    Ok(())
}
