//! `deploy/grafana/fanout.json` is a Grafana dashboard whose queries name only series
//! Fanout exports (`fanout_core::telemetry::ALL`), on the `${DS_PROMETHEUS}` input.

use std::path::PathBuf;

use fanout_core::telemetry;
use serde_json::Value;

fn dashboard() -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/grafana/fanout.json");
    let text = std::fs::read_to_string(&path).expect("the dashboard file is readable");
    serde_json::from_str(&text).expect("the dashboard is JSON")
}

/// Every `expr` in the dashboard, and every `datasource` object.
fn walk<'a>(value: &'a Value, exprs: &mut Vec<&'a str>, sources: &mut Vec<&'a Value>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("expr", Value::String(e)) => exprs.push(e),
                    ("datasource", ds) => sources.push(ds),
                    _ => {}
                }
                walk(v, exprs, sources);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| walk(v, exprs, sources)),
        _ => {}
    }
}

/// The `fanout_*` identifiers in a PromQL expression.
fn series_names(expr: &str) -> Vec<&str> {
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let mut out = Vec::new();
    let mut rest = expr;
    while let Some(start) = rest.find("fanout_") {
        let preceded = rest[..start].chars().next_back().is_some_and(is_ident);
        let tail = &rest[start..];
        let end = tail.find(|c: char| !is_ident(c)).unwrap_or(tail.len());
        if !preceded {
            out.push(&tail[..end]);
        }
        rest = &tail[end..];
    }
    out
}

/// A histogram's `_bucket`/`_sum`/`_count` series belong to their base name.
fn known(name: &str) -> bool {
    telemetry::ALL.contains(&name)
        || ["_bucket", "_sum", "_count"].iter().any(|suffix| {
            name.strip_suffix(suffix)
                .is_some_and(|base| telemetry::ALL.contains(&base))
        })
}

#[test]
fn every_query_names_an_exported_series() {
    let dashboard = dashboard();
    let (mut exprs, mut sources) = (Vec::new(), Vec::new());
    walk(&dashboard, &mut exprs, &mut sources);
    assert!(exprs.len() >= 20, "panels have queries: {}", exprs.len());
    let mut used = Vec::new();
    for expr in &exprs {
        let names = series_names(expr);
        assert!(!names.is_empty(), "query without a Fanout series: {expr}");
        for name in names {
            assert!(known(name), "{name} (in `{expr}`) is not in telemetry::ALL");
            used.push(name);
        }
    }
    for required in [
        telemetry::EDGE_CONNECTIONS,
        telemetry::EDGE_SUBSCRIPTIONS,
        telemetry::EDGE_FRAMES_SENT,
        telemetry::ROUTER_EVENTS_PUBLISHED,
        telemetry::EVENTS_DROPPED,
        telemetry::RESOLVER_CALLS,
        telemetry::RESOLVER_ERRORS,
        telemetry::RESOLVER_QUEUE_DEPTH,
        telemetry::EDGE_OUTBOUND_QUEUE_MAX,
        telemetry::READY,
    ] {
        assert!(used.contains(&required), "no panel shows {required}");
    }
    for histogram in [
        telemetry::PUBLISH_TO_DELIVER_SECONDS,
        telemetry::RESOLVER_SECONDS,
    ] {
        assert!(
            used.contains(&format!("{histogram}_bucket").as_str()),
            "no quantile of {histogram}"
        );
    }
    for ds in sources {
        assert_eq!(ds["uid"], "${DS_PROMETHEUS}", "datasource {ds}");
    }
    assert_eq!(dashboard["__inputs"][0]["name"], "DS_PROMETHEUS");
}

#[test]
fn series_names_are_found_in_promql() {
    assert_eq!(
        series_names(
            "histogram_quantile(0.5, sum by (le) (rate(fanout_a_bucket[5m]))) / x_fanout_b"
        ),
        vec!["fanout_a_bucket"]
    );
}
