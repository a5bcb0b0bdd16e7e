//! Configuration of `fanout standalone`: flags, `FANOUT_*` environment variables and an
//! optional YAML file, read once at start. Flags and env win over the file, the file
//! over the defaults. Every bad value is reported together.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use serde::Deserialize;

pub mod auth;
pub mod limits;

/// Flags of `fanout standalone`. Each has a `FANOUT_*` environment variable.
#[derive(Debug, Args)]
pub struct StandaloneArgs {
    /// GraphQL SDL schema file [default: the bundled examples/orders schema].
    #[arg(long, env = "FANOUT_SCHEMA", value_name = "FILE")]
    pub schema: Option<PathBuf>,
    /// Python file with `@fanout.resolver` functions [default: the bundled example's,
    /// when --schema is not given either].
    #[arg(long, env = "FANOUT_RESOLVERS", value_name = "FILE.py")]
    pub resolvers: Option<PathBuf>,
    /// WebSocket listen address (the endpoint is ws://ADDR/graphql) [default: 127.0.0.1:8080].
    #[arg(long, env = "FANOUT_LISTEN", value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// gRPC publish API listen address [default: 127.0.0.1:50051].
    #[arg(long, env = "FANOUT_GRPC_LISTEN", value_name = "ADDR")]
    pub grpc_listen: Option<SocketAddr>,
    /// Admin listen address for /healthz, /readyz, /startupz, /drain and /metrics
    /// [default: 127.0.0.1:9090].
    #[arg(long, env = "FANOUT_ADMIN_LISTEN", value_name = "ADDR")]
    pub admin_listen: Option<SocketAddr>,
    /// YAML configuration file; its keys are the flag names in snake_case.
    #[arg(long, env = "FANOUT_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// HS256 secret that client JWTs must be signed with. With no key at all (this,
    /// --jwt-secret-file, --jwt-public-key, --jwt-public-key-pem, --jwks-file),
    /// connections are anonymous.
    #[arg(
        long,
        env = "FANOUT_JWT_SECRET",
        value_name = "SECRET",
        hide_env_values = true
    )]
    pub jwt_secret: Option<String>,
    /// Milliseconds a client has to send `connection_init` [default: 3000].
    #[arg(long, env = "FANOUT_INIT_TIMEOUT_MS", value_name = "MS")]
    pub init_timeout_ms: Option<u64>,
    /// Milliseconds between server pings; 0 disables them [default: 15000].
    #[arg(long, env = "FANOUT_PING_INTERVAL_MS", value_name = "MS")]
    pub ping_interval_ms: Option<u64>,
    /// Milliseconds to wait for a pong before closing with 4504 [default: 10000].
    #[arg(long, env = "FANOUT_PONG_TIMEOUT_MS", value_name = "MS")]
    pub pong_timeout_ms: Option<u64>,
    /// Largest accepted client message in bytes; larger ones close with 1009 [default: 65536].
    #[arg(long, env = "FANOUT_MAX_MESSAGE_BYTES", value_name = "BYTES")]
    pub max_message_bytes: Option<usize>,
    /// Frames queued per connection before it is closed as a slow consumer (4503)
    /// [default: 1024].
    #[arg(long, env = "FANOUT_OUTBOUND_QUEUE", value_name = "FRAMES")]
    pub outbound_queue: Option<usize>,
    /// Subscriptions allowed per connection [default: 100].
    #[arg(long, env = "FANOUT_MAX_SUBSCRIPTIONS", value_name = "N")]
    pub max_subscriptions: Option<usize>,
    /// Milliseconds over which a drain (SIGTERM, SIGINT or GET/POST /drain) spreads its
    /// 1012 closes; 0 closes every connection at once. The process exits at most this
    /// plus 10 s after SIGTERM [default: 10000].
    #[arg(long, env = "FANOUT_DRAIN_WINDOW_MS", value_name = "MS")]
    pub drain_window_ms: Option<u64>,
    /// Milliseconds a resolver may run before it is reported as timed out [default: 1000].
    #[arg(long, env = "FANOUT_RESOLVER_TIMEOUT_MS", value_name = "MS")]
    pub resolver_timeout_ms: Option<u64>,
    /// Virtualenv whose site-packages the resolvers import from [default: $VIRTUAL_ENV].
    #[arg(long, env = "FANOUT_VIRTUALENV", value_name = "DIR")]
    pub virtualenv: Option<PathBuf>,
    /// Largest accepted event payload in bytes [default: 1048576].
    #[arg(long, env = "FANOUT_MAX_PAYLOAD_BYTES", value_name = "BYTES")]
    pub max_payload_bytes: Option<usize>,
    /// Log as JSON lines instead of text.
    #[arg(long, env = "FANOUT_LOG_JSON")]
    pub log_json: bool,
    #[command(flatten)]
    pub otlp: fanout_core::otel::OtlpArgs,
    #[command(flatten)]
    pub tenant_metrics: fanout_core::telemetry::TenantMetricsArgs,
    /// Tenant isolation: an event reaches only subscribers whose token's tenant equals
    /// the event's `tenant`; events without a tenant, and subscribers without a tenant
    /// claim, get nothing.
    #[arg(long, env = "FANOUT_MULTI_TENANT")]
    pub multi_tenant: bool,
    #[command(flatten)]
    pub auth: auth::AuthArgs,
    #[command(flatten)]
    pub limits: limits::LimitArgs,
}

/// The YAML file: the same settings as the flags, in snake_case.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    schema: Option<PathBuf>,
    resolvers: Option<PathBuf>,
    listen: Option<SocketAddr>,
    grpc_listen: Option<SocketAddr>,
    admin_listen: Option<SocketAddr>,
    jwt_secret: Option<String>,
    init_timeout_ms: Option<u64>,
    ping_interval_ms: Option<u64>,
    pong_timeout_ms: Option<u64>,
    max_message_bytes: Option<usize>,
    outbound_queue: Option<usize>,
    max_subscriptions: Option<usize>,
    drain_window_ms: Option<u64>,
    resolver_timeout_ms: Option<u64>,
    virtualenv: Option<PathBuf>,
    max_payload_bytes: Option<usize>,
    multi_tenant: Option<bool>,
    auth: Option<auth::AuthFile>,
    limits: Option<limits::LimitsFile>,
}

/// Where the schema and resolvers come from.
#[derive(Debug, Clone)]
pub enum Source {
    /// The bundled example.
    Example,
    /// Files given by the user.
    Files {
        /// SDL file.
        schema: PathBuf,
        /// Resolvers file, if any.
        resolvers: Option<PathBuf>,
    },
}

/// Resolved configuration of `fanout standalone`.
pub struct StandaloneConfig {
    pub source: Source,
    pub listen: SocketAddr,
    pub grpc_listen: SocketAddr,
    pub admin_listen: SocketAddr,
    pub jwt_secret: Option<String>,
    pub init_timeout: Duration,
    pub ping_interval: Duration,
    pub pong_timeout: Duration,
    pub max_message_bytes: usize,
    pub outbound_queue: usize,
    pub max_subscriptions: usize,
    /// The window a drain spreads its 1012 closes over (`--drain-window-ms`).
    pub drain_window: Duration,
    pub resolver_timeout: Duration,
    pub virtualenv: Option<PathBuf>,
    pub max_payload_bytes: usize,
    /// Tenant isolation of events (`--multi-tenant`).
    pub multi_tenant: bool,
    /// Authentication flags and `auth:` section, resolved by [`auth`].
    pub auth: (auth::AuthArgs, auth::AuthFile),
    /// Limit flags and `limits:` section, resolved by [`limits`].
    pub limits: (limits::LimitArgs, limits::LimitsFile),
}

impl std::fmt::Debug for StandaloneConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StandaloneConfig")
            .field("source", &self.source)
            .field("listen", &self.listen)
            .field("grpc_listen", &self.grpc_listen)
            .field("admin_listen", &self.admin_listen)
            .field(
                "jwt_secret",
                &self.jwt_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("init_timeout", &self.init_timeout)
            .field("ping_interval", &self.ping_interval)
            .field("pong_timeout", &self.pong_timeout)
            .field("max_message_bytes", &self.max_message_bytes)
            .field("outbound_queue", &self.outbound_queue)
            .field("max_subscriptions", &self.max_subscriptions)
            .field("drain_window", &self.drain_window)
            .field("resolver_timeout", &self.resolver_timeout)
            .field("virtualenv", &self.virtualenv)
            .field("max_payload_bytes", &self.max_payload_bytes)
            .field("multi_tenant", &self.multi_tenant)
            .field("auth", &self.auth)
            .field("limits", &self.limits)
            .finish()
    }
}

impl StandaloneConfig {
    /// Merges flags/env, the YAML file and defaults; returns every problem found.
    pub fn resolve(args: StandaloneArgs) -> Result<Self, Vec<String>> {
        let mut problems = Vec::new();
        let file = match &args.config {
            None => FileConfig::default(),
            Some(path) => match std::fs::read_to_string(path) {
                Err(e) => {
                    problems.push(format!("--config {}: {e}", path.display()));
                    FileConfig::default()
                }
                Ok(text) if text.trim().is_empty() => FileConfig::default(),
                Ok(text) => serde_yaml::from_str(&text).unwrap_or_else(|e| {
                    problems.push(format!("--config {}: {e}", path.display()));
                    FileConfig::default()
                }),
            },
        };
        let schema = args.schema.or(file.schema);
        let resolvers = args.resolvers.or(file.resolvers);
        let source = match (schema, resolvers) {
            (None, None) => Source::Example,
            (Some(schema), resolvers) => Source::Files { schema, resolvers },
            (None, Some(_)) => {
                problems.push("--resolvers needs --schema as well".into());
                Source::Example
            }
        };
        let positive = |name: &str, v: usize, problems: &mut Vec<String>| {
            if v == 0 {
                problems.push(format!("--{name} must be at least 1"));
            }
            v
        };
        let max_message_bytes = positive(
            "max-message-bytes",
            args.max_message_bytes
                .or(file.max_message_bytes)
                .unwrap_or(64 * 1024),
            &mut problems,
        );
        let outbound_queue = positive(
            "outbound-queue",
            args.outbound_queue.or(file.outbound_queue).unwrap_or(1024),
            &mut problems,
        );
        let max_subscriptions = positive(
            "max-subscriptions",
            args.max_subscriptions
                .or(file.max_subscriptions)
                .unwrap_or(100),
            &mut problems,
        );
        let max_payload_bytes = positive(
            "max-payload-bytes",
            args.max_payload_bytes
                .or(file.max_payload_bytes)
                .unwrap_or(1024 * 1024),
            &mut problems,
        );
        let init_timeout_ms = args
            .init_timeout_ms
            .or(file.init_timeout_ms)
            .unwrap_or(3000);
        if init_timeout_ms == 0 {
            problems.push("--init-timeout-ms must be at least 1".into());
        }
        let resolver_timeout_ms = args
            .resolver_timeout_ms
            .or(file.resolver_timeout_ms)
            .unwrap_or(1000);
        if resolver_timeout_ms == 0 {
            problems.push("--resolver-timeout-ms must be at least 1".into());
        }
        let pong_timeout_ms = args
            .pong_timeout_ms
            .or(file.pong_timeout_ms)
            .unwrap_or(10_000);
        if pong_timeout_ms == 0 {
            problems.push("--pong-timeout-ms must be at least 1".into());
        }
        let jwt_secret = args.jwt_secret.or(file.jwt_secret);
        if jwt_secret.as_deref() == Some("") {
            problems.push("--jwt-secret is empty".into());
        }
        let virtualenv = args
            .virtualenv
            .or(file.virtualenv)
            .or_else(|| std::env::var_os("VIRTUAL_ENV").map(PathBuf::from));
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Self {
            source,
            listen: args
                .listen
                .or(file.listen)
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080))),
            grpc_listen: args
                .grpc_listen
                .or(file.grpc_listen)
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 50051))),
            admin_listen: args
                .admin_listen
                .or(file.admin_listen)
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 9090))),
            jwt_secret,
            init_timeout: Duration::from_millis(init_timeout_ms),
            ping_interval: Duration::from_millis(
                args.ping_interval_ms
                    .or(file.ping_interval_ms)
                    .unwrap_or(15_000),
            ),
            pong_timeout: Duration::from_millis(pong_timeout_ms),
            max_message_bytes,
            outbound_queue,
            max_subscriptions,
            drain_window: args.drain_window_ms.or(file.drain_window_ms).map_or(
                fanout_edge::config::DEFAULT_DRAIN_WINDOW,
                Duration::from_millis,
            ),
            resolver_timeout: Duration::from_millis(resolver_timeout_ms),
            virtualenv,
            max_payload_bytes,
            multi_tenant: args.multi_tenant || file.multi_tenant.unwrap_or(false),
            auth: (args.auth, file.auth.unwrap_or_default()),
            limits: (args.limits, file.limits.unwrap_or_default()),
        })
    }
}
