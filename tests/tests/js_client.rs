//! A third-party client: the npm `graphql-ws` library (tests/js) subscribes to Fanout.
//!
//! Needs `node` and `tests/js/node_modules` (`tests/run.sh` installs them); without
//! them this test fails with that instruction instead of skipping.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use fanout_tests::binary::workspace_root;
use fanout_tests::cli::show;
use fanout_tests::metrics::wait_eq;
use fanout_tests::{Fanout, Publisher, Result, Value, anyhow, bail, ensure, json, token, within};
use tokio::process::Command;

fn js_dir() -> PathBuf {
    workspace_root().join("tests").join("js")
}

fn node_client(args: &[&str]) -> Result<tokio::process::Child> {
    let dir = js_dir();
    if !dir.join("node_modules").join("graphql-ws").is_dir() {
        bail!(
            "{} has no node_modules/graphql-ws: run `bash tests/run.sh` (or `npm ci` in tests/js) first",
            dir.display()
        );
    }
    Command::new("node")
        .arg("subscribe.mjs")
        .args(args)
        .current_dir(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| {
            anyhow!(
                "cannot run `node` ({e}): install Node.js 18+ (tests/run.sh expects it on PATH)"
            )
        })
}

fn json_lines(stdout: &[u8]) -> Result<Vec<Value>> {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).map_err(|e| anyhow!("not a JSON line ({e}): {l}")))
        .collect()
}

#[tokio::test]
async fn graphql_ws_npm_client_receives_payloads() -> Result<()> {
    let fanout = Fanout::suite(&[]).await?;
    let child = node_client(&[
        "--url",
        &fanout.ws_url,
        "--query",
        "subscription Q($id: ID!) { enriched(id: $id) { id total ... on Order { note } } }",
        "--variables",
        r#"{"id":"js"}"#,
        "--count",
        "3",
    ])?;
    wait_eq(&fanout.admin_url, "fanout_edge_subscriptions", &[], 1.0).await?;
    let mut p = Publisher::connect(&fanout.grpc_url).await?;
    // Non-integral totals: JavaScript prints 1.0 as 1.
    for cents in [150, 250, 350] {
        p.publish(
            "enriched.js",
            &json!({ "id": "js", "status": "paid", "cents": cents, "items": [] }),
        )
        .await?;
    }
    let out = within(
        Duration::from_secs(30),
        "the node client to exit",
        child.wait_with_output(),
    )
    .await??;
    ensure!(out.status.success(), "node client:\n{}", show(&out));
    let payloads = json_lines(&out.stdout)?;
    ensure!(payloads.len() == 3, "three payloads:\n{}", show(&out));
    for (i, p) in payloads.iter().enumerate() {
        let want = json!({ "enriched": {
            "id": "js",
            "total": i as f64 + 1.5,
            "note": "order js on enriched.js",
        }});
        ensure!(p["data"] == want, "payload {i}: {p} != {want}");
        ensure!(
            p["extensions"]["fanout"]["offset"] == json!(i + 1),
            "payload {i} offset: {p}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn graphql_ws_npm_client_with_token_and_errors() -> Result<()> {
    let fanout = Fanout::suite(&["--jwt-secret", token::SECRET]).await?;
    let t = token::user("jay", "tj", &["admin"], &[])?;
    // A GraphQL error reaches the client's error sink (exit 1).
    let bad = node_client(&[
        "--url",
        &fanout.ws_url,
        "--query",
        "subscription { nope }",
        "--token",
        &t,
    ])?;
    let out = within(
        Duration::from_secs(30),
        "the node client to exit",
        bad.wait_with_output(),
    )
    .await??;
    ensure!(
        out.status.code() == Some(1),
        "an error message reaches the sink:\n{}",
        show(&out)
    );

    let child = node_client(&[
        "--url",
        &fanout.ws_url,
        "--query",
        r#"subscription { adminOnly(room: "js") { n } }"#,
        "--token",
        &t,
    ])?;
    wait_eq(&fanout.admin_url, "fanout_edge_subscriptions", &[], 1.0).await?;
    let mut p = Publisher::connect(&fanout.grpc_url).await?;
    p.publish("admin.js", &json!({ "n": 7 })).await?;
    let out = within(
        Duration::from_secs(30),
        "the node client to exit",
        child.wait_with_output(),
    )
    .await??;
    ensure!(out.status.success(), "node client:\n{}", show(&out));
    let payloads = json_lines(&out.stdout)?;
    ensure!(
        payloads.len() == 1 && payloads[0]["data"] == json!({ "adminOnly": { "n": 7 } }),
        "payload:\n{}",
        show(&out)
    );
    Ok(())
}
