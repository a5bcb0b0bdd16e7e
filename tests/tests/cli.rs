//! The `fanout` command line: publish, subscribe, check, standalone's flags and
//! environment, the admin endpoint, and gRPC health and reflection.

use std::time::Duration;

use fanout_tests::cli::{run, show, spawn};
use fanout_tests::fixtures::{example, fixture};
use fanout_tests::grpc::{health_status, reflection_services};
use fanout_tests::metrics::{http_get, wait_eq};
use fanout_tests::{Fanout, GqlClient, Result, Value, anyhow, ensure, json, within};

fn path(p: std::path::PathBuf) -> String {
    p.display().to_string()
}

#[tokio::test]
async fn publish_and_subscribe_end_to_end() -> Result<()> {
    let fanout = Fanout::suite(&[]).await?;
    let sub = spawn([
        "subscribe",
        "subscription ($id: ID!) { enriched(id: $id) { id total } }",
        "--variables",
        r#"{"id":"77"}"#,
        "--url",
        fanout.ws_url.as_str(),
        "--count",
        "2",
    ])?;
    wait_eq(&fanout.admin_url, "fanout_edge_subscriptions", &[], 1.0).await?;
    let mut replies = Vec::new();
    for cents in [100, 250] {
        let event =
            json!({ "id": "77", "status": "paid", "cents": cents, "items": [] }).to_string();
        let out = run(
            [
                "publish",
                "enriched.77",
                event.as_str(),
                "--server",
                fanout.grpc_url.as_str(),
            ],
            Duration::from_secs(30),
        )
        .await?;
        ensure!(out.status.success(), "fanout publish:\n{}", show(&out));
        let stdout = String::from_utf8_lossy(&out.stdout);
        let lines: Vec<&str> = stdout.lines().filter(|l| !l.trim().is_empty()).collect();
        ensure!(
            lines.len() == 1,
            "fanout publish prints one line:\n{}",
            show(&out)
        );
        let reply: Value = serde_json::from_str(lines[0])
            .map_err(|e| anyhow!("publish output is not JSON ({e}):\n{}", show(&out)))?;
        ensure!(
            reply["offset"].is_u64() && reply["epoch"].is_u64() && reply["partition"].is_u64(),
            "publish prints offset, epoch and partition: {reply}"
        );
        replies.push(reply);
    }
    ensure!(
        replies[0]["offset"] == 1 && replies[1]["offset"] == 2,
        "offsets 1 and 2: {replies:?}"
    );

    let out = within(
        Duration::from_secs(30),
        "fanout subscribe --count 2 to exit",
        sub.wait_with_output(),
    )
    .await??;
    ensure!(out.status.success(), "fanout subscribe:\n{}", show(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let payloads: Vec<Value> = stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow!("subscribe prints JSON lines ({e}):\n{}", show(&out)))?;
    ensure!(payloads.len() == 2, "two payloads:\n{}", show(&out));
    ensure!(
        payloads[0]["data"] == json!({ "enriched": { "id": "77", "total": 1.0 } }),
        "{}",
        payloads[0]
    );
    ensure!(
        payloads[1]["data"] == json!({ "enriched": { "id": "77", "total": 2.5 } }),
        "{}",
        payloads[1]
    );
    ensure!(
        payloads[1]["extensions"]["fanout"]["offset"] == 2,
        "{}",
        payloads[1]
    );
    Ok(())
}

#[tokio::test]
async fn subscribe_reports_graphql_errors() -> Result<()> {
    let fanout = Fanout::suite(&[]).await?;
    let out = run(
        [
            "subscribe",
            "subscription { nope { n } }",
            "--url",
            fanout.ws_url.as_str(),
        ],
        Duration::from_secs(30),
    )
    .await?;
    ensure!(
        out.status.code() == Some(1),
        "an error message exits 1:\n{}",
        show(&out)
    );
    ensure!(
        String::from_utf8_lossy(&out.stderr).contains("nope"),
        "stderr names the problem:\n{}",
        show(&out)
    );
    Ok(())
}

#[tokio::test]
async fn subscribe_with_a_token() -> Result<()> {
    let fanout = Fanout::suite(&["--jwt-secret", fanout_tests::token::SECRET]).await?;
    let t = fanout_tests::token::user("zed", "t9", &["admin"], &[])?;
    let sub = spawn([
        "subscribe",
        r#"subscription { whoami(room: "cli") { subject tenant } }"#,
        "--url",
        fanout.ws_url.as_str(),
        "--token",
        t.as_str(),
        "--count",
        "1",
    ])?;
    wait_eq(&fanout.admin_url, "fanout_edge_subscriptions", &[], 1.0).await?;
    let mut p = fanout_tests::Publisher::connect(&fanout.grpc_url).await?;
    p.publish("who.cli", &json!({ "n": 1 })).await?;
    let out = within(
        Duration::from_secs(30),
        "fanout subscribe to exit",
        sub.wait_with_output(),
    )
    .await??;
    ensure!(out.status.success(), "{}", show(&out));
    let line: Value = serde_json::from_slice(out.stdout.trim_ascii())
        .map_err(|e| anyhow!("{e}: {}", show(&out)))?;
    ensure!(
        line["data"] == json!({ "whoami": { "subject": "zed", "tenant": "t9" } }),
        "{line}"
    );
    Ok(())
}

#[tokio::test]
async fn check_accepts_the_example() -> Result<()> {
    let out = run(
        [
            "check",
            "--schema",
            &path(example("orders/schema.graphql")),
            "--resolvers",
            &path(example("orders/resolvers.py")),
        ],
        Duration::from_secs(60),
    )
    .await?;
    ensure!(
        out.status.success(),
        "check of the example:\n{}",
        show(&out)
    );
    ensure!(
        String::from_utf8_lossy(&out.stdout).trim() == "ok",
        "prints ok:\n{}",
        show(&out)
    );
    let out = run(
        [
            "check",
            "--schema",
            &path(fixture("suite/schema.graphql")),
            "--resolvers",
            &path(fixture("suite/resolvers.py")),
        ],
        Duration::from_secs(60),
    )
    .await?;
    ensure!(
        out.status.success(),
        "check of the suite fixture:\n{}",
        show(&out)
    );
    Ok(())
}

/// Runs `fanout check` and expects exit 1 with every `needles` entry in stdout+stderr;
/// each needle is a set of alternatives.
async fn check_fails(schema: &str, resolvers: &str, needles: &[&[&str]]) -> Result<()> {
    let out = run(
        ["check", "--schema", schema, "--resolvers", resolvers],
        Duration::from_secs(60),
    )
    .await?;
    ensure!(
        out.status.code() == Some(1),
        "check must exit 1:\n{}",
        show(&out)
    );
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    for alternatives in needles {
        ensure!(
            alternatives.iter().any(|n| text.contains(n)),
            "check output must contain one of {alternatives:?}:\n{}",
            show(&out)
        );
    }
    Ok(())
}

#[tokio::test]
async fn check_reports_unknown_field_in_decorator() -> Result<()> {
    check_fails(
        &path(example("orders/schema.graphql")),
        &path(fixture("check/unknown_field.py")),
        &[
            &["unknown_field.py:4:", "unknown_field.py:5:"],
            &["noSuchField"],
        ],
    )
    .await
}

#[tokio::test]
async fn check_reports_channel_key_naming_a_missing_argument() -> Result<()> {
    check_fails(
        &path(fixture("check/missing_argument.graphql")),
        &path(fixture("check/ok.py")),
        &[&["missing_argument.graphql:11:"], &["orderId"]],
    )
    .await
}

#[tokio::test]
async fn check_reports_python_syntax_errors() -> Result<()> {
    check_fails(
        &path(example("orders/schema.graphql")),
        &path(fixture("bad/syntax_error.py")),
        &[&["syntax_error.py:5:"]],
    )
    .await
}

#[tokio::test]
async fn check_reports_every_problem_together() -> Result<()> {
    check_fails(
        &path(fixture("check/missing_argument.graphql")),
        &path(fixture("check/unknown_field.py")),
        &[
            &["missing_argument.graphql:11:"],
            &["unknown_field.py:4:", "unknown_field.py:5:"],
        ],
    )
    .await
}

#[tokio::test]
async fn standalone_help_documents_every_flag() -> Result<()> {
    let out = run(["standalone", "--help"], Duration::from_secs(30)).await?;
    ensure!(out.status.success(), "{}", show(&out));
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--schema",
        "--resolvers",
        "--listen",
        "--grpc-listen",
        "--admin-listen",
        "--config",
        "--jwt-secret",
        "--init-timeout-ms",
        "--ping-interval-ms",
        "--pong-timeout-ms",
        "--max-message-bytes",
        "--outbound-queue",
        "--max-subscriptions",
        "--resolver-timeout-ms",
        "--virtualenv",
        "FANOUT_LISTEN",
        "FANOUT_SCHEMA",
    ] {
        ensure!(
            help.contains(flag),
            "standalone --help must mention {flag}:\n{help}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn flags_can_come_from_the_environment() -> Result<()> {
    // FANOUT_INIT_TIMEOUT_MS, given to the child process only.
    let fanout = Fanout::start_with_env(
        fanout_tests::fixtures::suite_args(),
        [("FANOUT_INIT_TIMEOUT_MS", "300")],
    )
    .await?;
    let mut c = GqlClient::connect(&fanout.ws_url).await?;
    c.expect_close_within(4408, Duration::from_secs(5)).await?;
    Ok(())
}

#[tokio::test]
async fn admin_endpoints() -> Result<()> {
    let fanout = Fanout::suite(&[]).await?;
    let (status, _) = http_get(&fanout.admin_url, "/healthz").await?;
    ensure!(status == 200, "/healthz answered {status}");
    let (status, _) = http_get(&fanout.admin_url, "/readyz").await?;
    ensure!(status == 200, "/readyz answered {status}");
    let text = fanout_tests::metrics::scrape(&fanout.admin_url).await?;
    for name in [
        "fanout_edge_connections",
        "fanout_edge_subscriptions",
        "fanout_edge_shapes",
        "fanout_router_interest_entries",
        "fanout_router_channels",
    ] {
        ensure!(
            text.contains(name),
            "/metrics exports {name} from the start:\n{text}"
        );
    }
    let _c = GqlClient::connect_init(&fanout.ws_url).await?;
    wait_eq(&fanout.admin_url, "fanout_edge_connections", &[], 1.0).await?;
    Ok(())
}

#[tokio::test]
async fn grpc_health_and_reflection() -> Result<()> {
    let fanout = Fanout::suite(&[]).await?;
    for service in ["", "fanout.v1.Publisher"] {
        let status = health_status(&fanout.grpc_url, service).await?;
        ensure!(status == "SERVING", "health of {service:?} is {status}");
    }
    let services = reflection_services(&fanout.grpc_url).await?;
    ensure!(
        services.iter().any(|s| s == "fanout.v1.Publisher"),
        "reflection lists fanout.v1.Publisher: {services:?}"
    );
    Ok(())
}
