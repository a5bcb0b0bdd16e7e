//! Bad input gets a clear error, never a crash: GraphQL errors keep the socket open,
//! bad publishes are INVALID_ARGUMENT, bad resolver files stop the server at start with
//! file:line.

use std::time::Duration;

use fanout_tests::cli::{run, show};
use fanout_tests::fixtures::{fixture, suite_args};
use fanout_tests::grpc::request;
use fanout_tests::metrics::wait_eq;
use fanout_tests::{Fanout, GqlClient, Publisher, Result, Value, bail, ensure, json};

/// Subscribes with `query` and expects an `error` message; then proves the socket is
/// still usable. Returns the GraphQL errors.
async fn graphql_error(
    c: &mut GqlClient,
    id: &str,
    query: &str,
    vars: Option<Value>,
) -> Result<Vec<Value>> {
    c.subscribe(id, query, vars).await?;
    let errors = c
        .expect_error(id)
        .await
        .map_err(|e| e.context(format!("query: {query}")))?;
    for e in &errors {
        ensure!(
            e["message"].as_str().is_some_and(|m| !m.is_empty()),
            "every error has a message: {e}"
        );
        ensure!(
            e["extensions"]["code"].is_string(),
            "every error has extensions.code: {e}"
        );
    }
    c.ping()
        .await
        .map_err(|e| e.context("the socket must stay open after an error"))?;
    Ok(errors)
}

fn has_location(errors: &[Value], line: u64, column: u64) -> bool {
    errors.iter().any(|e| {
        e["locations"].as_array().is_some_and(|ls| {
            ls.iter()
                .any(|l| l["line"] == line && l["column"] == column)
        })
    })
}

#[tokio::test]
async fn invalid_graphql_syntax_is_an_error_with_locations() -> Result<()> {
    let fanout = Fanout::suite(&[]).await?;
    let mut c = GqlClient::connect_init(&fanout.ws_url).await?;
    let errors = graphql_error(
        &mut c,
        "1",
        "subscription {\n  tick(room: \"a\") {\n    n\n",
        None,
    )
    .await?;
    ensure!(
        errors.iter().any(|e| e["locations"].is_array()),
        "a syntax error carries locations: {errors:?}"
    );
    graphql_error(&mut c, "2", "", None).await?;
    graphql_error(
        &mut c,
        "3",
        "subscription { tick(room: \"a\") { n } } subscription { tick(room: \"b\") { n } }",
        None,
    )
    .await?;
    Ok(())
}

#[tokio::test]
async fn validation_errors_have_locations() -> Result<()> {
    let fanout = Fanout::suite(&[]).await?;
    let mut c = GqlClient::connect_init(&fanout.ws_url).await?;
    // Unknown field `nope` at line 3, column 5.
    let errors = graphql_error(
        &mut c,
        "1",
        "subscription {\n  tick(room: \"a\") {\n    nope\n  }\n}",
        None,
    )
    .await?;
    ensure!(
        has_location(&errors, 3, 5),
        "unknown field located at 3:5: {errors:?}"
    );
    // Unknown root field.
    let errors = graphql_error(&mut c, "2", "subscription { nothingHere { n } }", None).await?;
    ensure!(
        has_location(&errors, 1, 16),
        "unknown root field located at 1:16: {errors:?}"
    );
    // Missing selection set on an object.
    graphql_error(&mut c, "3", "subscription { tick(room: \"a\") }", None).await?;
    // Two root fields in a subscription.
    graphql_error(
        &mut c,
        "4",
        "subscription { a: tick(room: \"a\") { n } b: tick(room: \"b\") { n } }",
        None,
    )
    .await?;
    // Undefined fragment.
    graphql_error(
        &mut c,
        "5",
        "subscription { tick(room: \"a\") { ...Nope } }",
        None,
    )
    .await?;
    // Wrong type for a field on the type.
    graphql_error(
        &mut c,
        "6",
        "subscription { tick(room: \"a\") { n { x } } }",
        None,
    )
    .await?;
    // Variables: missing required, wrong type.
    graphql_error(
        &mut c,
        "7",
        "subscription ($r: String!) { tick(room: $r) { n } }",
        None,
    )
    .await?;
    graphql_error(
        &mut c,
        "8",
        "subscription ($r: String!) { tick(room: $r) { n } }",
        Some(json!({ "r": 5 })),
    )
    .await?;
    // Unknown operation name.
    c.send_json(&json!({ "id": "9", "type": "subscribe", "payload": {
        "query": "subscription A { tick(room: \"a\") { n } }", "operationName": "B" } }))
        .await?;
    c.expect_error("9").await?;
    c.ping().await?;
    Ok(())
}

#[tokio::test]
async fn queries_and_mutations_are_rejected() -> Result<()> {
    let fanout = Fanout::suite(&[]).await?;
    let mut c = GqlClient::connect_init(&fanout.ws_url).await?;
    graphql_error(&mut c, "q", "query { ping }", None).await?;
    graphql_error(&mut c, "s", "{ ping }", None).await?;
    graphql_error(&mut c, "m", "mutation { poke }", None).await?;
    // A document with a query and a subscription: the operation chosen decides.
    c.send_json(&json!({ "id": "n", "type": "subscribe", "payload": {
        "query": "query Q { ping } subscription S { tick(room: \"a\") { n } }", "operationName": "Q" } }))
        .await?;
    c.expect_error("n").await?;
    // After all of that, a real subscription works on the same socket.
    c.subscribe("ok", r#"subscription { tick(room: "fine") { n } }"#, None)
        .await?;
    wait_eq(&fanout.admin_url, "fanout_edge_subscriptions", &[], 1.0).await?;
    let mut p = Publisher::connect(&fanout.grpc_url).await?;
    p.publish("tick.fine", &json!({ "n": 1 })).await?;
    ensure!(
        c.next_payload("ok").await?["data"]["tick"]["n"] == 1,
        "subscription after errors"
    );
    Ok(())
}

#[tokio::test]
async fn unknown_and_bad_channel_arguments() -> Result<()> {
    let fanout = Fanout::suite(&[]).await?;
    let mut c = GqlClient::connect_init(&fanout.ws_url).await?;
    // Unknown argument: a validation error.
    graphql_error(
        &mut c,
        "u",
        r#"subscription { tick(room: "a", floor: 2) { n } }"#,
        None,
    )
    .await?;
    // Missing required argument.
    graphql_error(&mut c, "m", "subscription { tick { n } }", None).await?;
    // Values that cannot form a channel name: BAD_USER_INPUT, literal or variable.
    for (k, room) in ["a.b", "*", ">", "a b", "", "x.*", "é"].iter().enumerate() {
        let errors = graphql_error(
            &mut c,
            &format!("l{k}"),
            &format!("subscription {{ tick(room: {}) {{ n }} }}", json!(room)),
            None,
        )
        .await?;
        ensure!(
            errors
                .iter()
                .any(|e| e["extensions"]["code"] == "BAD_USER_INPUT"),
            "room {room:?}: expected BAD_USER_INPUT, got {errors:?}"
        );
        let errors = graphql_error(
            &mut c,
            &format!("v{k}"),
            "subscription ($r: String!) { tick(room: $r) { n } }",
            Some(json!({ "r": room })),
        )
        .await?;
        ensure!(
            errors
                .iter()
                .any(|e| e["extensions"]["code"] == "BAD_USER_INPUT"),
            "room variable {room:?}: expected BAD_USER_INPUT, got {errors:?}"
        );
    }
    // Every allowed character works.
    c.subscribe(
        "ok",
        r#"subscription { tick(room: "Az09_-:@=+") { n } }"#,
        None,
    )
    .await?;
    wait_eq(&fanout.admin_url, "fanout_edge_subscriptions", &[], 1.0).await?;
    let mut p = Publisher::connect(&fanout.grpc_url).await?;
    p.publish("tick.Az09_-:@=+", &json!({ "n": 1 })).await?;
    ensure!(
        c.next_payload("ok").await?["data"]["tick"]["n"] == 1,
        "allowed characters"
    );
    Ok(())
}

#[tokio::test]
async fn non_json_and_bad_channel_publishes_are_invalid_argument() -> Result<()> {
    let fanout = Fanout::suite(&[]).await?;
    let mut p = Publisher::connect(&fanout.grpc_url).await?;
    let cases: Vec<(&str, &str, Vec<u8>)> = vec![
        ("non-JSON payload", "tick.a", b"{not json".to_vec()),
        ("empty payload", "tick.a", Vec::new()),
        ("non-UTF-8 payload", "tick.a", vec![0xff, 0xfe, 0x00]),
        ("empty channel", "", b"{}".to_vec()),
        ("wildcard channel", "tick.*", b"{}".to_vec()),
        ("full wildcard", "tick.>", b"{}".to_vec()),
        ("empty token", "tick..a", b"{}".to_vec()),
        ("space in channel", "tick a", b"{}".to_vec()),
    ];
    for (what, channel, payload) in cases {
        match p.try_publish(request(channel, payload)).await? {
            Err(status) => ensure!(
                status.code() == tonic::Code::InvalidArgument && !status.message().is_empty(),
                "{what}: expected INVALID_ARGUMENT with a message, got {status:?}"
            ),
            Ok(reply) => bail!("{what}: publish must fail, got {reply:?}"),
        }
    }
    // The server is fine afterwards.
    let reply = p.publish("tick.a", &json!({ "n": 1 })).await?;
    ensure!(
        reply.offset == 1,
        "rejected publishes assign no offset: {reply:?}"
    );
    Ok(())
}

#[tokio::test]
async fn fanout_publish_rejects_non_json() -> Result<()> {
    let fanout = Fanout::suite(&[]).await?;
    let out = run(
        [
            "publish",
            "tick.a",
            "{not json",
            "--server",
            fanout.grpc_url.as_str(),
        ],
        Duration::from_secs(30),
    )
    .await?;
    ensure!(
        out.status.code() == Some(1),
        "non-JSON publish exits 1:\n{}",
        show(&out)
    );
    let stderr = String::from_utf8_lossy(&out.stderr).to_lowercase();
    ensure!(
        stderr.contains("json"),
        "the message says the payload is not JSON:\n{}",
        show(&out)
    );
    Ok(())
}

async fn expect_start_failure(
    resolvers: &str,
    schema: Option<&str>,
    needles: &[&str],
) -> Result<()> {
    let mut args = vec![
        "standalone".to_string(),
        "--listen".into(),
        "127.0.0.1:0".into(),
        "--grpc-listen".into(),
        "127.0.0.1:0".into(),
        "--admin-listen".into(),
        "127.0.0.1:0".into(),
        "--resolvers".into(),
        resolvers.to_string(),
        "--schema".into(),
    ];
    args.push(schema.map_or_else(|| suite_args()[1].clone(), str::to_string));
    let out = run(&args, Duration::from_secs(60)).await?;
    ensure!(
        out.status.code() == Some(1),
        "expected exit code 1:\n{}",
        show(&out)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    for needle in needles {
        ensure!(
            stderr.contains(needle),
            "stderr must contain {needle:?}:\n{}",
            show(&out)
        );
    }
    ensure!(
        !stderr.contains("panicked"),
        "a bad input file is an error, not a panic:\n{}",
        show(&out)
    );
    Ok(())
}

#[tokio::test]
async fn resolver_file_with_a_syntax_error_stops_the_server() -> Result<()> {
    let file = fixture("bad/syntax_error.py").display().to_string();
    expect_start_failure(&file, None, &["syntax_error.py:5", "SyntaxError"]).await
}

#[tokio::test]
async fn resolver_file_raising_at_import_stops_the_server() -> Result<()> {
    let file = fixture("bad/raises_at_import.py").display().to_string();
    expect_start_failure(
        &file,
        None,
        &[
            "raises_at_import.py:3",
            "this resolver module refuses to load",
        ],
    )
    .await
}

#[tokio::test]
async fn missing_resolver_file_stops_the_server() -> Result<()> {
    let file = fixture("bad/does_not_exist.py").display().to_string();
    expect_start_failure(&file, None, &["does_not_exist.py"]).await
}

#[tokio::test]
async fn invalid_schema_stops_the_server() -> Result<()> {
    let resolvers = fixture("check/ok.py").display().to_string();
    let schema = fixture("bad/invalid_schema.graphql").display().to_string();
    expect_start_failure(&resolvers, Some(&schema), &["invalid_schema.graphql:7"]).await
}

#[tokio::test]
async fn bad_flags_and_config_exit_64() -> Result<()> {
    let config = fixture("check/config_bad.yaml").display().to_string();
    let cases: Vec<(&str, Vec<&str>)> = vec![
        (
            "non-numeric flag",
            vec!["standalone", "--init-timeout-ms", "soon"],
        ),
        ("unknown flag", vec!["standalone", "--no-such-flag"]),
        (
            "bad listen address",
            vec!["standalone", "--listen", "not-an-address"],
        ),
        (
            "unparseable config",
            vec!["standalone", "--config", config.as_str()],
        ),
    ];
    for (what, args) in cases {
        let out = run(&args, Duration::from_secs(30)).await?;
        ensure!(
            out.status.code() == Some(64),
            "{what}: expected exit code 64:\n{}",
            show(&out)
        );
        ensure!(
            !out.stderr.is_empty(),
            "{what}: an explanation on stderr:\n{}",
            show(&out)
        );
    }
    Ok(())
}

/// Sends `request` (a whole HTTP/1.1 request) to the WebSocket endpoint's address and
/// returns the response's head.
async fn http_head(ws_url: &str, request: String) -> Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (addr, _) = fanout_tests::ws::split_ws_url(ws_url)?;
    let mut tcp = tokio::net::TcpStream::connect(addr).await?;
    tcp.write_all(request.as_bytes()).await?;
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut buf)).await??;
    Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
}

#[tokio::test]
async fn requests_that_are_not_websocket_upgrades_are_refused_with_the_reason() -> Result<()> {
    let fanout = Fanout::suite(&[]).await?;
    let (addr, path) = fanout_tests::ws::split_ws_url(&fanout.ws_url)?;
    let key = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
    let upgrade = "Upgrade: websocket\r\nConnection: Upgrade\r\n";
    let cases = [
        // A plain GET, as a browser opening the URL sends it.
        (
            format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n"),
            "400",
            "Connection",
        ),
        (
            format!(
                "POST {path} HTTP/1.1\r\nHost: {addr}\r\n{upgrade}{key}Sec-WebSocket-Version: 13\r\nContent-Length: 0\r\n\r\n"
            ),
            "405",
            "GET",
        ),
        (
            format!(
                "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{upgrade}Sec-WebSocket-Version: 13\r\n\r\n"
            ),
            "400",
            "Sec-WebSocket-Key",
        ),
        (
            format!(
                "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{upgrade}{key}Sec-WebSocket-Version: 8\r\n\r\n"
            ),
            "400",
            "sec-websocket-version: 13",
        ),
    ];
    for (request, status, mentions) in cases {
        let head = http_head(&fanout.ws_url, request.clone()).await?;
        let lower = head.to_ascii_lowercase();
        ensure!(
            head.starts_with(&format!("HTTP/1.1 {status}")),
            "{request:?} got {head:?}"
        );
        ensure!(
            lower.contains(&mentions.to_ascii_lowercase()),
            "{request:?}: the answer should mention {mentions:?}: {head:?}"
        );
    }
    // The server still upgrades a proper request afterwards.
    let mut c = GqlClient::connect(&fanout.ws_url).await?;
    c.init(None).await?;
    Ok(())
}
