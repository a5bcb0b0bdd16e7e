//! Reads the admin endpoint: `/metrics` (Prometheus text), `/healthz`, `/readyz`.

use std::time::Duration;

use anyhow::{Context as _, Result, anyhow, bail};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::{STEP, eventually, within};

/// `GET path` on `base` (`http://127.0.0.1:R`) with plain HTTP/1.0; returns (status, body).
pub async fn http_get(base: &str, path: &str) -> Result<(u16, String)> {
    let addr = base
        .strip_prefix("http://")
        .ok_or_else(|| anyhow!("not an http:// URL: {base}"))?
        .trim_end_matches('/');
    within(STEP, "admin HTTP GET", async {
        let mut tcp = TcpStream::connect(addr)
            .await
            .with_context(|| format!("cannot connect to {addr}"))?;
        tcp.write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
            .await?;
        let mut raw = Vec::new();
        tcp.read_to_end(&mut raw).await?;
        let text = String::from_utf8_lossy(&raw);
        let (head, body) = text
            .split_once("\r\n\r\n")
            .ok_or_else(|| anyhow!("malformed HTTP response: {text:?}"))?;
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse::<u16>().ok())
            .ok_or_else(|| anyhow!("malformed HTTP status line: {head:?}"))?;
        Ok((status, body.to_string()))
    })
    .await?
}

/// The Prometheus text of `base/metrics`.
pub async fn scrape(base: &str) -> Result<String> {
    let (status, body) = http_get(base, "/metrics").await?;
    if status != 200 {
        bail!("/metrics answered {status}: {body}");
    }
    Ok(body)
}

/// The sum of all series of `name` whose labels include `labels`, or `None` when no
/// series matches.
pub fn find(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut total = None;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((series, value)) = parse_line(line) else {
            continue;
        };
        if series.0 != name {
            continue;
        }
        if labels
            .iter()
            .all(|(k, v)| series.1.iter().any(|(lk, lv)| lk == k && lv == v))
        {
            *total.get_or_insert(0.0) += value;
        }
    }
    total
}

type Series<'a> = (&'a str, Vec<(String, String)>);

/// Parses `name{a="x",b="y"} value [timestamp]`.
fn parse_line(line: &str) -> Option<(Series<'_>, f64)> {
    let name_end = line.find(|c: char| c == '{' || c.is_whitespace())?;
    let name = &line[..name_end];
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(after) = rest.strip_prefix('{') {
        let mut chars = after.char_indices();
        let mut key = String::new();
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            match c {
                '}' => {
                    end = Some(i + 1);
                    break;
                }
                ',' | ' ' => {}
                '=' => {
                    // A quoted value with \" \\ \n escapes.
                    if chars.next().map(|(_, c)| c) != Some('"') {
                        return None;
                    }
                    let mut value = String::new();
                    loop {
                        match chars.next()?.1 {
                            '\\' => match chars.next()?.1 {
                                'n' => value.push('\n'),
                                other => value.push(other),
                            },
                            '"' => break,
                            other => value.push(other),
                        }
                    }
                    labels.push((std::mem::take(&mut key), value));
                }
                other => key.push(other),
            }
        }
        rest = &after[end?..];
    }
    let value = rest.split_whitespace().next()?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    Some(((name, labels), value))
}

/// The current value of a series (0 when absent: counters and gauges that were never
/// touched are not exported).
pub async fn value(base: &str, name: &str, labels: &[(&str, &str)]) -> Result<f64> {
    Ok(find(&scrape(base).await?, name, labels).unwrap_or(0.0))
}

/// Polls `name{labels}` until `ok(value)` holds, failing after `limit` with the last
/// value seen.
pub async fn wait_for(
    base: &str,
    name: &str,
    labels: &[(&str, &str)],
    limit: Duration,
    what: &str,
    ok: impl Fn(f64) -> bool,
) -> Result<f64> {
    let last = std::cell::Cell::new(f64::NAN);
    let result = eventually(limit, what, || {
        let fut = value(base, name, labels);
        let (last, ok) = (&last, &ok);
        async move {
            let v = fut.await?;
            last.set(v);
            Ok(ok(v).then_some(v))
        }
    })
    .await;
    result.with_context(|| format!("{name}{labels:?} last value {}", last.get()))
}

/// Polls until `name{labels}` equals `want`.
pub async fn wait_eq(base: &str, name: &str, labels: &[(&str, &str)], want: f64) -> Result<()> {
    wait_for(
        base,
        name,
        labels,
        Duration::from_secs(15),
        &format!("{name} == {want}"),
        |v| v == want,
    )
    .await
    .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_series() {
        let text = "# HELP x\n# TYPE fanout_resolver_calls_total counter\n\
            fanout_resolver_calls_total{field=\"orderUpdated\"} 12\n\
            fanout_resolver_calls_total{field=\"other\",k=\"a\\\"b\"} 3\n\
            fanout_edge_connections 2\n\
            fanout_edge_connections_extra 9\n";
        assert_eq!(find(text, "fanout_edge_connections", &[]), Some(2.0));
        assert_eq!(
            find(
                text,
                "fanout_resolver_calls_total",
                &[("field", "orderUpdated")]
            ),
            Some(12.0)
        );
        assert_eq!(find(text, "fanout_resolver_calls_total", &[]), Some(15.0));
        assert_eq!(
            find(text, "fanout_resolver_calls_total", &[("k", "a\"b")]),
            Some(3.0)
        );
        assert_eq!(find(text, "fanout_router_channels", &[]), None);
    }
}
