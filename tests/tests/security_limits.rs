//! Security limits, transport and publisher authentication, against the real binary:
//! each limit is tripped by a real client, answered with its documented close code or
//! error, and the server keeps serving well-behaved clients afterwards.

use std::time::Duration;

use fanout_proto::v1::PublishRequest;
use fanout_proto::v1::publisher_client::PublisherClient;
use fanout_tests::cli;
use fanout_tests::fixtures::fixture;
use fanout_tests::grpc::{self, request};
use fanout_tests::tls;
use fanout_tests::token::{SECRET, user};
use fanout_tests::{
    Fanout, GqlClient, Publisher, Result, STEP, Value, bail, ensure, eventually, json, within,
};
use tokio_tungstenite::tungstenite;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tonic::Code;
use tonic::transport::Channel;

const TICK: &str = r#"subscription { tick(room: "s") { n } }"#;

/// The HTTP status of an upgrade request (101 when it became a WebSocket, which is
/// then dropped).
async fn upgrade_status(url: &str, origin: Option<&str>) -> Result<u16> {
    let mut req = url.into_client_request()?;
    req.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        HeaderValue::from_static("graphql-transport-ws"),
    );
    if let Some(origin) = origin {
        req.headers_mut()
            .insert("Origin", HeaderValue::from_str(origin)?);
    }
    match within(STEP, "upgrade", tokio_tungstenite::connect_async(req)).await? {
        Ok((_ws, response)) => Ok(response.status().as_u16()),
        Err(tungstenite::Error::Http(response)) => Ok(response.status().as_u16()),
        Err(e) => bail!("upgrade failed: {e}"),
    }
}

fn code_of(error: &Value) -> &str {
    error["extensions"]["code"].as_str().unwrap_or_default()
}

/// Subscribes `id` to `tick.s` and proves delivery with one publish.
async fn proves_delivery(fanout: &Fanout, c: &mut GqlClient, id: &str) -> Result<()> {
    c.subscribe(id, TICK, None).await?;
    c.ping().await?;
    let mut p = Publisher::connect(&fanout.grpc_url).await?;
    p.publish("tick.s", &json!({ "n": 7 })).await?;
    let payload = c.next_payload(id).await?;
    ensure!(payload["data"]["tick"]["n"] == 7, "got {payload}");
    Ok(())
}

#[tokio::test]
async fn query_depth_and_field_count_are_limited() -> Result<()> {
    let fanout = Fanout::suite(&["--max-query-depth", "2", "--max-query-fields", "5"]).await?;
    let mut c = GqlClient::connect_init(&fanout.ws_url).await?;

    c.subscribe(
        "deep",
        r#"subscription { order(id: "1") { items { sku } } }"#,
        None,
    )
    .await?;
    let errors = c.expect_error("deep").await?;
    ensure!(code_of(&errors[0]) == "QUERY_TOO_COMPLEX", "{errors:?}");
    ensure!(
        errors[0]["extensions"]["limit"] == "max_query_depth",
        "{errors:?}"
    );
    ensure!(errors[0]["extensions"]["max"] == 2, "{errors:?}");

    c.subscribe(
        "wide",
        r#"subscription { tick(room: "s") { a: n b: n c: n d: n e: n } }"#,
        None,
    )
    .await?;
    let errors = c.expect_error("wide").await?;
    ensure!(code_of(&errors[0]) == "QUERY_TOO_COMPLEX", "{errors:?}");
    ensure!(
        errors[0]["extensions"]["limit"] == "max_query_fields",
        "{errors:?}"
    );

    // The same connection still subscribes within the limits.
    proves_delivery(&fanout, &mut c, "ok").await
}

#[tokio::test]
async fn a_fragment_bomb_is_refused_under_the_default_limits() -> Result<()> {
    let fanout = Fanout::suite(&[]).await?;
    let mut c = GqlClient::connect_init(&fanout.ws_url).await?;
    // 2^20 fields once expanded, in a few hundred bytes.
    let mut query = String::from(r#"subscription { tick(room: "s") { ...F0 } }"#);
    for i in 0..20 {
        query.push_str(&format!(
            " fragment F{i} on Tick {{ ...F{} ...F{} }}",
            i + 1,
            i + 1
        ));
    }
    query.push_str(" fragment F20 on Tick { n }");
    c.subscribe("bomb", &query, None).await?;
    let errors = within(STEP, "bomb refused", c.expect_error("bomb")).await??;
    ensure!(code_of(&errors[0]) == "QUERY_TOO_COMPLEX", "{errors:?}");
    ensure!(errors[0]["extensions"]["max"] == 200, "{errors:?}");
    proves_delivery(&fanout, &mut c, "ok").await
}

#[tokio::test]
async fn connections_per_ip_are_refused_with_429_before_upgrade() -> Result<()> {
    let fanout = Fanout::suite(&["--max-connections-per-ip", "2"]).await?;
    let a = GqlClient::connect_init(&fanout.ws_url).await?;
    let mut b = GqlClient::connect_init(&fanout.ws_url).await?;
    ensure!(upgrade_status(&fanout.ws_url, None).await? == 429);
    a.close().await?;
    // The slot is given back once the server has seen the close.
    let mut c = eventually(Duration::from_secs(5), "a slot frees up", || async {
        match GqlClient::connect_init(&fanout.ws_url).await {
            Ok(c) => Ok(Some(c)),
            Err(_) => Ok(None),
        }
    })
    .await?;
    b.ping().await?;
    proves_delivery(&fanout, &mut c, "ok").await
}

#[tokio::test]
async fn connections_per_tenant_close_4430_at_init() -> Result<()> {
    let fanout =
        Fanout::suite(&["--jwt-secret", SECRET, "--max-connections-per-tenant", "2"]).await?;
    let acme = user("u1", "acme", &[], &[])?;
    let first = GqlClient::connect_with_token(&fanout.ws_url, &acme).await?;
    let _second = GqlClient::connect_with_token(&fanout.ws_url, &acme).await?;
    let mut third = GqlClient::connect(&fanout.ws_url).await?;
    third
        .send_json(&json!({ "type": "connection_init", "payload": { "token": acme } }))
        .await?;
    let reason = third.expect_close(4430).await?;
    ensure!(
        !reason.contains(&acme),
        "the close reason must not echo the token"
    );

    // Another tenant is not affected.
    let globex = user("u2", "globex", &[], &[])?;
    let mut other = GqlClient::connect_with_token(&fanout.ws_url, &globex).await?;
    proves_delivery(&fanout, &mut other, "g").await?;

    first.close().await?;
    let mut again = eventually(Duration::from_secs(5), "acme slot frees up", || async {
        let mut c = GqlClient::connect(&fanout.ws_url).await?;
        c.send_json(&json!({ "type": "connection_init", "payload": { "token": acme } }))
            .await?;
        let m = c.recv().await;
        Ok(match m {
            Ok(m) if m["type"] == "connection_ack" => Some(c),
            _ => None,
        })
    })
    .await?;
    proves_delivery(&fanout, &mut again, "a").await
}

#[tokio::test]
async fn subscribe_rate_is_limited_per_connection() -> Result<()> {
    let fanout = Fanout::suite(&["--subscribe-rate", "1", "--subscribe-burst", "2"]).await?;
    let mut c = GqlClient::connect_init(&fanout.ws_url).await?;
    c.subscribe("a", TICK, None).await?;
    c.subscribe("b", TICK, None).await?;
    c.subscribe("c", TICK, None).await?;
    let errors = c.expect_error("c").await?;
    ensure!(code_of(&errors[0]) == "RATE_LIMITED", "{errors:?}");
    let retry_ms = errors[0]["extensions"]["retryAfterMs"]
        .as_u64()
        .unwrap_or(1000);
    ensure!(retry_ms <= 1000, "retry within a second at 1/s: {retry_ms}");

    // The connection lives; after the advertised wait a subscribe is accepted.
    c.ping().await?;
    tokio::time::sleep(Duration::from_millis(retry_ms + 100)).await;
    c.subscribe("d", TICK, None).await?;
    c.ping().await?;
    let mut p = Publisher::connect(&fanout.grpc_url).await?;
    p.publish("tick.s", &json!({ "n": 1 })).await?;
    let mut ids = Vec::new();
    for _ in 0..3 {
        let m = c.recv().await?;
        ensure!(m["type"] == "next", "expected next, got {m}");
        ids.push(m["id"].as_str().unwrap_or_default().to_owned());
    }
    ids.sort();
    ensure!(ids == ["a", "b", "d"], "got {ids:?}");
    c.expect_silence(Duration::from_millis(200)).await?;

    // Another connection has its own bucket.
    let mut other = GqlClient::connect_init(&fanout.ws_url).await?;
    proves_delivery(&fanout, &mut other, "x").await
}

#[tokio::test]
async fn disallowed_origins_get_403_before_upgrade() -> Result<()> {
    let fanout = Fanout::suite(&["--allowed-origin", "https://app.example.com"]).await?;
    let url = &fanout.ws_url;
    ensure!(upgrade_status(url, Some("https://evil.example")).await? == 403);
    ensure!(upgrade_status(url, Some("https://app.example.com.evil.example")).await? == 403);
    ensure!(
        upgrade_status(url, None).await? == 403,
        "no Origin is refused by default"
    );
    ensure!(upgrade_status(url, Some("https://app.example.com")).await? == 101);
    let mut c =
        GqlClient::connect_with_headers(url, &[("Origin", "https://APP.example.com")]).await?;
    c.init(None).await?;
    proves_delivery(&fanout, &mut c, "ok").await?;

    let lenient = Fanout::suite(&[
        "--allowed-origin",
        "https://app.example.com",
        "--allow-missing-origin",
    ])
    .await?;
    ensure!(upgrade_status(&lenient.ws_url, None).await? == 101);
    ensure!(upgrade_status(&lenient.ws_url, Some("https://evil.example")).await? == 403);
    Ok(())
}

#[tokio::test]
async fn introspection_is_impossible_over_the_socket() -> Result<()> {
    let fanout = Fanout::suite(&[]).await?;
    let mut c = GqlClient::connect_init(&fanout.ws_url).await?;
    let attempts = [
        ("schema", "subscription { __schema { types { name } } }"),
        (
            "type",
            r#"subscription { __type(name: "Order") { fields { name } } }"#,
        ),
        ("query", "{ __schema { types { name } } }"),
        ("typename", "subscription { __typename }"),
    ];
    for (id, query) in attempts {
        c.subscribe(id, query, None).await?;
        let errors = c.expect_error(id).await?;
        let text = Value::Array(errors.clone()).to_string();
        ensure!(
            !text.contains("\"types\""),
            "{id}: leaked schema data: {text}"
        );
        ensure!(
            ["GRAPHQL_VALIDATION_FAILED", "OPERATION_NOT_SUPPORTED"].contains(&code_of(&errors[0])),
            "{id}: {text}"
        );
    }
    proves_delivery(&fanout, &mut c, "ok").await
}

const BILLING: &str = "billing-token-0123456789";
const CHAT: &str = "chat-token-0123456789abc";

fn with_token<T>(message: T, token: Option<&str>) -> Result<tonic::Request<T>> {
    let mut req = tonic::Request::new(message);
    if let Some(token) = token {
        req.metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse()?);
    }
    Ok(req)
}

async fn publish_as(
    client: &mut PublisherClient<Channel>,
    token: Option<&str>,
    channel: &str,
) -> Result<Result<u64, tonic::Status>> {
    let req = with_token(request(channel, br#"{"n":1}"#.to_vec()), token)?;
    let reply = within(STEP, "publish", client.publish(req)).await?;
    Ok(reply.map(|r| r.into_inner().offset))
}

#[tokio::test]
async fn publishers_authenticate_and_publish_only_within_their_grants() -> Result<()> {
    let billing = format!("billing={BILLING}=order.,tick.");
    let chat = format!("chat={CHAT}=who.");
    let fanout =
        Fanout::suite(&["--publisher-token", &billing, "--publisher-token", &chat]).await?;
    let mut sub = GqlClient::connect_init(&fanout.ws_url).await?;
    sub.subscribe("t", TICK, None).await?;
    sub.ping().await?;
    let mut client = PublisherClient::new(grpc::channel(&fanout.grpc_url).await?);

    for token in [None, Some("not-a-configured-token-123"), Some("")] {
        let status = publish_as(&mut client, token, "tick.s")
            .await?
            .expect_err("refused");
        ensure!(
            status.code() == Code::Unauthenticated,
            "{token:?}: {status:?}"
        );
    }
    let denied = publish_as(&mut client, Some(BILLING), "who.lobby")
        .await?
        .expect_err("outside grants");
    ensure!(denied.code() == Code::PermissionDenied, "{denied:?}");
    ensure!(!denied.message().contains(BILLING), "{denied:?}");
    ensure!(
        publish_as(&mut client, Some(CHAT), "tick.s")
            .await?
            .is_err(),
        "chat may not publish to tick."
    );

    ensure!(
        publish_as(&mut client, Some(BILLING), "tick.s")
            .await?
            .is_ok()
    );
    let payload = sub.next_payload("t").await?;
    ensure!(payload["data"]["tick"]["n"] == 1, "{payload}");
    sub.expect_silence(Duration::from_millis(200)).await?;

    // PublishStream: authenticated once, each request checked against the grants.
    let reqs = vec![
        request("tick.s", br#"{"n":2}"#.to_vec()),
        request("who.lobby", br#"{"n":3}"#.to_vec()),
    ];
    let mut replies = within(
        STEP,
        "PublishStream",
        client.publish_stream(with_token(futures_util::stream::iter(reqs), Some(BILLING))?),
    )
    .await??
    .into_inner();
    ensure!(within(STEP, "reply 0", replies.message()).await??.is_some());
    let status = within(STEP, "reply 1", replies.message())
        .await?
        .expect_err("second request is outside the grants");
    ensure!(status.code() == Code::PermissionDenied, "{status:?}");
    ensure!(status.message().starts_with("request #1:"), "{status:?}");
    let unauthenticated = within(
        STEP,
        "PublishStream without token",
        client.publish_stream(futures_util::stream::iter(Vec::<PublishRequest>::new())),
    )
    .await?
    .expect_err("unauthenticated stream");
    ensure!(unauthenticated.code() == Code::Unauthenticated);

    // The CLI sends --token as a bearer token.
    let ok = cli::run(
        [
            "publish",
            "tick.s",
            r#"{"n":4}"#,
            "--server",
            &fanout.grpc_url,
            "--token",
            BILLING,
        ],
        STEP,
    )
    .await?;
    ensure!(ok.status.success(), "{}", cli::show(&ok));
    let refused = cli::run(
        [
            "publish",
            "tick.s",
            r#"{"n":5}"#,
            "--server",
            &fanout.grpc_url,
        ],
        STEP,
    )
    .await?;
    ensure!(!refused.status.success(), "{}", cli::show(&refused));
    ensure!(
        String::from_utf8_lossy(&refused.stderr).contains("Unauthenticated"),
        "{}",
        cli::show(&refused)
    );
    ensure!(
        !fanout.stderr().contains(BILLING),
        "the server must never log tokens"
    );
    Ok(())
}

#[tokio::test]
async fn publish_rate_is_limited_per_publisher() -> Result<()> {
    let fanout = Fanout::suite(&["--publish-rate", "1", "--publish-burst", "2"]).await?;
    let mut p = Publisher::connect(&fanout.grpc_url).await?;
    let event = || request("tick.s", br#"{"n":1}"#.to_vec());
    ensure!(p.try_publish(event()).await?.is_ok());
    ensure!(p.try_publish(event()).await?.is_ok());
    let status = p.try_publish(event()).await?.expect_err("over the rate");
    ensure!(status.code() == Code::ResourceExhausted, "{status:?}");
    // The bucket refills; the server still serves.
    eventually(
        Duration::from_secs(5),
        "a publish is accepted again",
        || {
            let mut p = p.clone();
            async move { Ok(p.try_publish(event()).await?.ok()) }
        },
    )
    .await?;
    let mut c = GqlClient::connect_init(&fanout.ws_url).await?;
    c.subscribe("t", TICK, None).await?;
    c.ping().await?;
    let reply = eventually(Duration::from_secs(5), "publish to the subscriber", || {
        let mut p = p.clone();
        async move { Ok(p.try_publish(event()).await?.ok()) }
    })
    .await?;
    ensure!(reply.offset > 0);
    c.next_payload("t").await?;
    Ok(())
}

#[tokio::test]
async fn tls_terminates_on_both_listeners() -> Result<()> {
    let fanout = Fanout::suite(
        &tls::server_args()
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    )
    .await?;
    ensure!(fanout.ws_url.starts_with("wss://"), "{}", fanout.ws_url);
    ensure!(
        fanout.grpc_url.starts_with("https://"),
        "{}",
        fanout.grpc_url
    );

    let mut c = GqlClient::connect_with(&fanout.ws_url, &[], Some(tls::connector()?)).await?;
    c.init(None).await?;
    c.subscribe("t", TICK, None).await?;
    c.ping().await?;
    let mut client = PublisherClient::new(tls::channel(&fanout.grpc_url).await?);
    ensure!(publish_as(&mut client, None, "tick.s").await?.is_ok());
    let payload = c.next_payload("t").await?;
    ensure!(payload["data"]["tick"]["n"] == 1, "{payload}");

    // Plain text on the TLS port is refused; the server keeps serving.
    let plain = fanout.ws_url.replacen("wss://", "ws://", 1);
    ensure!(
        GqlClient::connect(&plain).await.is_err(),
        "plain ws on the TLS port"
    );
    ensure!(
        GqlClient::connect(&fanout.ws_url).await.is_err(),
        "a client that does not trust the test CA is refused"
    );

    // The CLI: publish over https:// and subscribe over wss:// trusting the test CA.
    let ca = fixture("tls/ca.pem").display().to_string();
    let mut sub = cli::spawn([
        "subscribe",
        TICK,
        "--url",
        &fanout.ws_url,
        "--ca",
        &ca,
        "--count",
        "1",
    ])?;
    eventually(
        Duration::from_secs(10),
        "the CLI subscriber is counted",
        || async {
            let n =
                fanout_tests::metrics::value(&fanout.admin_url, "fanout_edge_subscriptions", &[])
                    .await?;
            Ok((n >= 2.0).then_some(()))
        },
    )
    .await?;
    let out = cli::run(
        [
            "publish",
            "tick.s",
            r#"{"n":9}"#,
            "--server",
            &fanout.grpc_url,
            "--ca",
            &ca,
        ],
        STEP,
    )
    .await?;
    ensure!(out.status.success(), "{}", cli::show(&out));
    let status = within(STEP, "fanout subscribe to exit", sub.wait()).await??;
    ensure!(
        status.success(),
        "fanout subscribe over wss failed: {status}"
    );
    Ok(())
}

#[tokio::test]
async fn bad_limit_and_tls_settings_exit_64_with_every_problem() -> Result<()> {
    let out = cli::run(
        [
            "standalone",
            "--listen",
            "127.0.0.1:0",
            "--grpc-listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--max-query-depth",
            "0",
            "--allowed-origin",
            "not-an-origin",
            "--tls-cert",
            "/nonexistent/cert.pem",
            "--tls-key",
            "/nonexistent/key.pem",
            "--publisher-token",
            "billing=tooshort=order.",
        ],
        Duration::from_secs(60),
    )
    .await?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(out.status.code() == Some(64), "{}", cli::show(&out));
    for needle in [
        "max-query-depth",
        "not-an-origin",
        "/nonexistent/cert.pem",
        "billing",
    ] {
        ensure!(
            stderr.contains(needle),
            "missing {needle:?}: {}",
            cli::show(&out)
        );
    }
    ensure!(!stderr.contains("tooshort"), "a token was echoed: {stderr}");
    Ok(())
}
