//! Limits and transport security settings: the limit, TLS and publisher flags of
//! `fanout standalone` and the `limits:` section of the YAML file (which also holds
//! `tls:`, `grpc_tls:` and `publishers:`).
//!
//! Flags and env win over the file, the file over the defaults; [`resolve`] reports
//! every bad value together.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Args;
use fanout_core::graphql::QueryLimits;
use fanout_core::rate::Rate;
use fanout_edge::limits::EdgeLimits;
use fanout_edge::origin::OriginPolicy;
use fanout_router::grpc::GrpcSecurity;
use fanout_router::publisher_auth::{PublisherAuth, PublisherGrant};
use fanout_router::rate::PublishRate;
use serde::Deserialize;

/// Limit, TLS and publisher flags. Each has a `FANOUT_*` environment variable.
#[derive(Default, Args)]
pub struct LimitArgs {
    /// Deepest field nesting of a subscription document; deeper ones get a
    /// `QUERY_TOO_COMPLEX` error [default: 15].
    #[arg(long, env = "FANOUT_MAX_QUERY_DEPTH", value_name = "N")]
    pub max_query_depth: Option<usize>,
    /// Most fields a subscription document may select, fragments expanded [default: 200].
    #[arg(long, env = "FANOUT_MAX_QUERY_FIELDS", value_name = "N")]
    pub max_query_fields: Option<usize>,
    /// Open WebSocket connections per client IP; more are refused with HTTP 429;
    /// 0 = unlimited [default: 0].
    #[arg(long, env = "FANOUT_MAX_CONNECTIONS_PER_IP", value_name = "N")]
    pub max_connections_per_ip: Option<usize>,
    /// Connections per tenant (from the token); more are closed with 4430 at
    /// connection_init; 0 = unlimited [default: 0].
    #[arg(long, env = "FANOUT_MAX_CONNECTIONS_PER_TENANT", value_name = "N")]
    pub max_connections_per_tenant: Option<usize>,
    /// `subscribe` messages per second per connection; over it a subscribe gets a
    /// `RATE_LIMITED` error; 0 = unlimited [default: 20].
    #[arg(long, env = "FANOUT_SUBSCRIBE_RATE", value_name = "PER_SEC")]
    pub subscribe_rate: Option<u32>,
    /// Subscribes a connection may send back to back [default: 100].
    #[arg(long, env = "FANOUT_SUBSCRIBE_BURST", value_name = "N")]
    pub subscribe_burst: Option<u32>,
    /// Publishes per second per publisher (per client IP when publishers are not
    /// configured); over it a publish is RESOURCE_EXHAUSTED; 0 = unlimited [default: 0].
    #[arg(long, env = "FANOUT_PUBLISH_RATE", value_name = "PER_SEC")]
    pub publish_rate: Option<u32>,
    /// Publishes a publisher may send back to back [default: the publish rate].
    #[arg(long, env = "FANOUT_PUBLISH_BURST", value_name = "N")]
    pub publish_burst: Option<u32>,
    /// An Origin allowed to open WebSockets (`https://app.example.com`), repeatable;
    /// others get HTTP 403. Without any, every Origin is allowed.
    #[arg(
        long = "allowed-origin",
        env = "FANOUT_ALLOWED_ORIGINS",
        value_name = "ORIGIN",
        value_delimiter = ','
    )]
    pub allowed_origins: Vec<String>,
    /// With --allowed-origin, also accept upgrades that carry no Origin header
    /// (non-browser clients) [default: refused].
    #[arg(long, env = "FANOUT_ALLOW_MISSING_ORIGIN")]
    pub allow_missing_origin: bool,
    /// PEM certificate chain: serve WebSockets over TLS (wss://); needs --tls-key.
    #[arg(long, env = "FANOUT_TLS_CERT", value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "FANOUT_TLS_KEY", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// PEM certificate chain: serve the gRPC API over TLS; needs --grpc-tls-key.
    #[arg(long, env = "FANOUT_GRPC_TLS_CERT", value_name = "FILE")]
    pub grpc_tls_cert: Option<PathBuf>,
    /// PEM private key of --grpc-tls-cert.
    #[arg(long, env = "FANOUT_GRPC_TLS_KEY", value_name = "FILE")]
    pub grpc_tls_key: Option<PathBuf>,
    /// A publisher allowed on the gRPC API: `NAME=TOKEN=PREFIX1,PREFIX2` (`*` = every
    /// channel), repeatable (`;`-separated in the env). With any publisher configured,
    /// publishing requires `authorization: Bearer TOKEN`.
    #[arg(
        long = "publisher-token",
        env = "FANOUT_PUBLISHER_TOKENS",
        value_name = "NAME=TOKEN=PREFIXES",
        value_delimiter = ';',
        hide_env_values = true
    )]
    pub publisher_tokens: Vec<String>,
}

impl std::fmt::Debug for LimitArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LimitArgs")
            .field("max_query_depth", &self.max_query_depth)
            .field("max_query_fields", &self.max_query_fields)
            .field("max_connections_per_ip", &self.max_connections_per_ip)
            .field(
                "max_connections_per_tenant",
                &self.max_connections_per_tenant,
            )
            .field("subscribe_rate", &self.subscribe_rate)
            .field("subscribe_burst", &self.subscribe_burst)
            .field("publish_rate", &self.publish_rate)
            .field("publish_burst", &self.publish_burst)
            .field("allowed_origins", &self.allowed_origins)
            .field("allow_missing_origin", &self.allow_missing_origin)
            .field("tls_cert", &self.tls_cert)
            .field("tls_key", &self.tls_key)
            .field("grpc_tls_cert", &self.grpc_tls_cert)
            .field("grpc_tls_key", &self.grpc_tls_key)
            .field(
                "publisher_tokens",
                &format!("<{} redacted>", self.publisher_tokens.len()),
            )
            .finish()
    }
}

/// The `limits:` section of the YAML file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsFile {
    max_query_depth: Option<usize>,
    max_query_fields: Option<usize>,
    max_connections_per_ip: Option<usize>,
    max_connections_per_tenant: Option<usize>,
    subscribe_rate: Option<u32>,
    subscribe_burst: Option<u32>,
    publish_rate: Option<u32>,
    publish_burst: Option<u32>,
    allowed_origins: Option<Vec<String>>,
    allow_missing_origin: Option<bool>,
    /// TLS of the WebSocket listener.
    tls: Option<TlsFile>,
    /// TLS of the gRPC listener.
    grpc_tls: Option<TlsFile>,
    publishers: Option<Vec<PublisherFile>>,
}

/// `tls:` / `grpc_tls:`: PEM files.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsFile {
    cert: PathBuf,
    key: PathBuf,
}

/// One entry of `publishers:`. The token comes from a file or an environment variable,
/// never from the YAML itself.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PublisherFile {
    name: String,
    token_file: Option<PathBuf>,
    token_env: Option<String>,
    channels: Vec<String>,
    /// Publishes per second for this publisher (overrides `publish_rate`).
    rate: Option<u32>,
    /// Burst for `rate` [default: `rate`].
    burst: Option<u32>,
}

/// Resolved limits and transport security.
pub struct Limits {
    /// Limits enforced by the edge.
    pub edge: EdgeLimits,
    /// TLS of the WebSocket listener.
    pub ws_tls: Option<Arc<rustls::ServerConfig>>,
    /// Publisher authentication, publish rate and TLS of the gRPC API.
    pub grpc: GrpcSecurity,
}

impl std::fmt::Debug for Limits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limits")
            .field("edge", &self.edge)
            .field("ws_tls", &self.ws_tls.is_some())
            .field("grpc_publishers", &self.grpc.publishers.names())
            .field("grpc_tls", &self.grpc.tls.is_some())
            .finish()
    }
}

/// Merges flags/env, the file section and defaults; returns every problem found.
pub fn resolve(args: LimitArgs, file: LimitsFile) -> Result<Limits, Vec<String>> {
    let mut problems = Vec::new();
    let mut at_least_one = |name: &str, v: usize| {
        if v == 0 {
            problems.push(format!("--{name} must be at least 1"));
        }
        v
    };
    let query = QueryLimits {
        max_depth: at_least_one(
            "max-query-depth",
            args.max_query_depth.or(file.max_query_depth).unwrap_or(15),
        ),
        max_fields: at_least_one(
            "max-query-fields",
            args.max_query_fields
                .or(file.max_query_fields)
                .unwrap_or(200),
        ),
    };
    let subscribe_rate = rate(
        args.subscribe_rate.or(file.subscribe_rate).unwrap_or(20),
        args.subscribe_burst.or(file.subscribe_burst).or(Some(100)),
    );
    let publish_rate = rate(
        args.publish_rate.or(file.publish_rate).unwrap_or(0),
        args.publish_burst.or(file.publish_burst),
    );

    let allow_missing = args.allow_missing_origin || file.allow_missing_origin.unwrap_or(false);
    let origins = if args.allowed_origins.is_empty() {
        file.allowed_origins.unwrap_or_default()
    } else {
        args.allowed_origins
    };
    let origins = OriginPolicy::new(&origins, allow_missing).unwrap_or_else(|e| {
        problems.push(format!("--allowed-origin: {e}"));
        OriginPolicy::default()
    });

    let ws_tls = match tls_pair("tls", args.tls_cert, args.tls_key, file.tls, &mut problems) {
        Some((cert, key)) => fanout_edge::tls::server_config(&cert, &key)
            .map_err(|e| problems.push(format!("--tls-cert/--tls-key: {}", chain(&e))))
            .ok(),
        None => None,
    };
    let grpc_tls = match tls_pair(
        "grpc-tls",
        args.grpc_tls_cert,
        args.grpc_tls_key,
        file.grpc_tls,
        &mut problems,
    ) {
        Some((cert, key)) => fanout_router::tls::server_tls(&cert, &key)
            .map_err(|e| {
                problems.push(format!("--grpc-tls-cert/--grpc-tls-key: {}", chain(&e)));
            })
            .ok(),
        None => None,
    };

    let mut grants = Vec::new();
    let mut overrides = HashMap::new();
    for spec in &args.publisher_tokens {
        match parse_publisher_flag(spec) {
            Ok(grant) => grants.push(grant),
            Err(e) => problems.push(e),
        }
    }
    for entry in file.publishers.unwrap_or_default() {
        let Some(token) = read_token(&entry, &mut problems) else {
            continue;
        };
        match PublisherGrant::new(&entry.name, &token, entry.channels) {
            Ok(grant) => grants.push(grant),
            Err(e) => problems.push(format!("publishers: {e}")),
        }
        if let Some(per_second) = entry.rate {
            match rate(per_second, entry.burst) {
                Some(r) => {
                    overrides.insert(entry.name.clone(), r);
                }
                None => problems.push(format!(
                    "publishers: {}: rate must be at least 1",
                    entry.name
                )),
            }
        }
    }
    let publishers = PublisherAuth::new(grants).unwrap_or_else(|e| {
        problems.push(format!("publishers: {e}"));
        PublisherAuth::default()
    });

    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(Limits {
        edge: EdgeLimits {
            query,
            max_connections_per_ip: args
                .max_connections_per_ip
                .or(file.max_connections_per_ip)
                .unwrap_or(0),
            max_connections_per_tenant: args
                .max_connections_per_tenant
                .or(file.max_connections_per_tenant)
                .unwrap_or(0),
            subscribe_rate,
            origins,
        },
        ws_tls,
        grpc: GrpcSecurity {
            publishers,
            rate: PublishRate::new(publish_rate, overrides),
            tls: grpc_tls,
        },
    })
}

/// A rate of `per_second` (0 = none) with `burst` (default: the rate).
fn rate(per_second: u32, burst: Option<u32>) -> Option<Rate> {
    (per_second > 0).then(|| Rate {
        per_second,
        burst: burst.filter(|b| *b > 0).unwrap_or(per_second),
    })
}

/// The cert and key of one listener, from flags or the file; both or neither.
fn tls_pair(
    flag: &str,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    file: Option<TlsFile>,
    problems: &mut Vec<String>,
) -> Option<(PathBuf, PathBuf)> {
    let (file_cert, file_key) = file.map(|f| (f.cert, f.key)).unzip();
    match (cert.or(file_cert), key.or(file_key)) {
        (Some(cert), Some(key)) => Some((cert, key)),
        (None, None) => None,
        _ => {
            problems.push(format!("--{flag}-cert and --{flag}-key go together"));
            None
        }
    }
}

/// `NAME=TOKEN=PREFIX1,PREFIX2`. Errors never include the token.
fn parse_publisher_flag(spec: &str) -> Result<PublisherGrant, String> {
    let mut parts = spec.splitn(3, '=');
    let (Some(name), Some(token), Some(prefixes)) = (parts.next(), parts.next(), parts.next())
    else {
        let name = spec.split('=').next().unwrap_or_default();
        return Err(format!(
            "--publisher-token for {name:?}: expected NAME=TOKEN=PREFIX1,PREFIX2"
        ));
    };
    let prefixes = prefixes.split(',').map(str::to_owned).collect();
    PublisherGrant::new(name.trim(), token.trim(), prefixes)
        .map_err(|e| format!("--publisher-token: {e}"))
}

fn read_token(entry: &PublisherFile, problems: &mut Vec<String>) -> Option<String> {
    let name = &entry.name;
    match (&entry.token_file, &entry.token_env) {
        (Some(path), None) => match std::fs::read_to_string(path) {
            Ok(text) => Some(text.trim().to_owned()),
            Err(e) => {
                problems.push(format!(
                    "publishers: {name}: token_file {}: {e}",
                    display(path)
                ));
                None
            }
        },
        (None, Some(var)) => match std::env::var(var) {
            Ok(text) => Some(text.trim().to_owned()),
            Err(_) => {
                problems.push(format!(
                    "publishers: {name}: token_env {var} is not set (or not UTF-8)"
                ));
                None
            }
        },
        _ => {
            problems.push(format!(
                "publishers: {name}: give exactly one of token_file and token_env"
            ));
            None
        }
    }
}

fn display(path: &Path) -> String {
    path.display().to_string()
}

/// An error with its causes, `: `-separated.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let limits = resolve(LimitArgs::default(), LimitsFile::default()).expect("defaults");
        assert_eq!(limits.edge, EdgeLimits::default());
        assert!(limits.ws_tls.is_none());
        assert!(!limits.grpc.publishers.is_enabled());
        assert!(!limits.grpc.rate.is_enabled());
    }

    #[test]
    fn flags_win_over_the_file_and_problems_are_collected() {
        let file: LimitsFile = serde_yaml::from_str(
            "max_query_depth: 3\nmax_connections_per_ip: 9\nallowed_origins: [\"https://a.example\"]\n",
        )
        .expect("yaml");
        let args = LimitArgs {
            max_connections_per_ip: Some(2),
            subscribe_rate: Some(5),
            ..LimitArgs::default()
        };
        let limits = resolve(args, file).expect("valid");
        assert_eq!(limits.edge.query.max_depth, 3);
        assert_eq!(limits.edge.max_connections_per_ip, 2);
        assert_eq!(
            limits.edge.subscribe_rate,
            Some(Rate {
                per_second: 5,
                burst: 100
            })
        );
        assert!(limits.edge.origins.is_restricted());

        let args = LimitArgs {
            max_query_fields: Some(0),
            allowed_origins: vec!["nope".into()],
            tls_cert: Some("/nonexistent/cert.pem".into()),
            publisher_tokens: vec![
                "billing=short=orders.".into(),
                "broken-spec-without-token".into(),
            ],
            ..LimitArgs::default()
        };
        let problems = resolve(args, LimitsFile::default()).expect_err("invalid");
        assert_eq!(problems.len(), 5, "{problems:#?}");
        assert!(
            problems.iter().all(|p| !p.contains("short")),
            "{problems:#?}"
        );
    }

    #[test]
    fn publishers_from_flags() {
        let args = LimitArgs {
            publisher_tokens: vec!["billing=0123456789abcdef0123=orders.,invoices.".into()],
            publish_rate: Some(10),
            ..LimitArgs::default()
        };
        let limits = resolve(args, LimitsFile::default()).expect("valid");
        assert_eq!(limits.grpc.publishers.names(), ["billing"]);
        assert!(limits.grpc.rate.is_enabled());
        assert!(!format!("{limits:?}").contains("0123456789abcdef"));
    }
}
