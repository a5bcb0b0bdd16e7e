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

/// A metric family of a strictly parsed exposition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Family {
    /// `counter`, `gauge`, `histogram`, `summary` or `untyped`.
    pub kind: String,
    /// Whether a `# HELP` line named it.
    pub help: bool,
}

/// One sample line of a strictly parsed exposition.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Series name (with `_bucket`/`_sum`/`_count` for histograms).
    pub name: String,
    /// Labels in order.
    pub labels: Vec<(String, String)>,
    /// The value.
    pub value: f64,
}

/// A Prometheus text exposition (format 0.0.4), parsed strictly.
#[derive(Debug, Clone, Default)]
pub struct Exposition {
    /// Families by name, from their `# TYPE` lines.
    pub families: std::collections::BTreeMap<String, Family>,
    /// Every sample, in order.
    pub samples: Vec<Sample>,
}

impl Exposition {
    /// The sum of the samples of `name` whose labels include `labels`.
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|s| s.name == name)
            .filter(|s| {
                labels
                    .iter()
                    .all(|(k, v)| s.labels.iter().any(|(lk, lv)| lk == k && lv == v))
            })
            .map(|s| s.value)
            .sum()
    }
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn valid_value(v: &str) -> bool {
    matches!(v, "+Inf" | "-Inf" | "NaN") || v.parse::<f64>().is_ok()
}

/// Parses `text` as the Prometheus text format, failing on the first line that is not
/// a well-formed `# HELP`, `# TYPE`, comment, or sample; on a sample whose family has no
/// `# TYPE` (or comes after another family's samples began); on a family typed twice; and
/// on histogram samples other than `_bucket` (with `le`), `_sum` and `_count`.
pub fn parse_strict(text: &str) -> Result<Exposition> {
    let mut out = Exposition::default();
    let mut current: Option<String> = None;
    for (n, line) in text.lines().enumerate() {
        let at = || format!("line {}: {line:?}", n + 1);
        if line.trim().is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            match (parts.next(), parts.next(), parts.next()) {
                (Some("HELP"), Some(name), _) => {
                    if !valid_name(name) {
                        bail!("bad metric name in HELP, {}", at());
                    }
                    out.families
                        .entry(name.to_owned())
                        .or_insert_with(|| Family {
                            kind: "untyped".into(),
                            help: true,
                        })
                        .help = true;
                }
                (Some("TYPE"), Some(name), Some(kind)) => {
                    if !valid_name(name) {
                        bail!("bad metric name in TYPE, {}", at());
                    }
                    if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind) {
                        bail!("unknown type, {}", at());
                    }
                    if out.samples.iter().any(|s| family_of(&s.name, &out) == name) {
                        bail!("TYPE after samples of its family, {}", at());
                    }
                    let family = out.families.entry(name.to_owned()).or_insert(Family {
                        kind: String::new(),
                        help: false,
                    });
                    if !family.kind.is_empty() && family.kind != "untyped" {
                        bail!("family typed twice, {}", at());
                    }
                    family.kind = kind.to_owned();
                    current = Some(name.to_owned());
                }
                _ => {} // another comment
            }
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let ((name, labels), value) =
            parse_line(line).ok_or_else(|| anyhow!("malformed sample, {}", at()))?;
        if !valid_name(name)
            || labels
                .iter()
                .any(|(k, _)| !valid_name(k) || k.contains(':'))
        {
            bail!("bad metric or label name, {}", at());
        }
        let raw_value = line
            .rsplit_once('}')
            .map_or(&line[name.len()..], |(_, r)| r)
            .split_whitespace()
            .next()
            .unwrap_or_default();
        if !valid_value(raw_value) {
            bail!("bad value, {}", at());
        }
        let family = family_of(name, &out).to_owned();
        let Some(kind) = out.families.get(&family).map(|f| f.kind.clone()) else {
            bail!("sample without a TYPE line, {}", at());
        };
        if current.as_deref() != Some(family.as_str()) {
            bail!("sample outside its family's block, {}", at());
        }
        if kind == "histogram" {
            let suffix = &name[family.len()..];
            match suffix {
                "_bucket" if labels.iter().any(|(k, _)| k == "le") => {}
                "_sum" | "_count" => {}
                _ => bail!("bad histogram sample, {}", at()),
            }
        }
        out.samples.push(Sample {
            name: name.to_owned(),
            labels,
            value,
        });
    }
    Ok(out)
}

/// The family a sample belongs to: its name, or its name without a histogram/summary
/// suffix when that family is declared.
fn family_of<'a>(name: &'a str, exposition: &Exposition) -> &'a str {
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix)
            && exposition
                .families
                .get(base)
                .is_some_and(|f| f.kind == "histogram" || f.kind == "summary")
        {
            return base;
        }
    }
    name
}

/// `base/metrics`, parsed strictly.
pub async fn scrape_strict(base: &str) -> Result<Exposition> {
    let text = scrape(base).await?;
    parse_strict(&text).with_context(|| format!("{base}/metrics is not Prometheus text"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_parsing_accepts_the_format_and_rejects_what_is_not() {
        let good = "# HELP a_total things\n# TYPE a_total counter\na_total{x=\"1\"} 3\n\
            # TYPE h histogram\nh_bucket{le=\"0.1\"} 1\nh_bucket{le=\"+Inf\"} 2\n\
            h_sum 0.3\nh_count 2\n# TYPE g gauge\ng -1.5e3\n";
        let e = parse_strict(good).expect("valid");
        assert_eq!(e.sum("a_total", &[("x", "1")]), 3.0);
        assert_eq!(e.sum("h_count", &[]), 2.0);
        assert_eq!(e.families["h"].kind, "histogram");
        for bad in [
            "a_total 1\n",
            "# TYPE a counter\na{x=1} 1\n",
            "# TYPE a counter\na one\n",
            "# TYPE a flavour\na 1\n",
            "# TYPE h histogram\nh_bucket 1\n",
            "# TYPE a counter\n# TYPE a counter\na 1\n",
            "# TYPE a counter\n# TYPE b counter\na 1\n",
        ] {
            assert!(parse_strict(bad).is_err(), "accepted {bad:?}");
        }
    }

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
