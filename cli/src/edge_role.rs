//! `fanout-edge`: one edge of a Fanout cluster.
//!
//! Holds WebSocket connections (`graphql-transport-ws`), streams its shapes to the
//! routers that own their channels, and turns deliveries from NATS
//! (`fanout.edge.<edge-id>`) into `next` frames.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use fanout_core::admin::Admin;
use fanout_core::bus::Bus;
use fanout_core::role::servers::Servers;
use fanout_core::role::{self, cluster_args::ClusterArgs, liveness};
use fanout_edge::interest_client::ClusterInterest;
use fanout_edge::{Edge, EdgeConfig};

use crate::config::auth::{self, AuthArgs, AuthFile};
use crate::config::limits::{self, LimitArgs, LimitsFile};
use crate::{edge_tasks, schema_file};

/// A Fanout edge: WebSocket connections, local shapes, deliveries.
#[derive(Debug, Parser)]
#[command(name = "fanout-edge", version, args_override_self = true)]
pub struct EdgeArgs {
    /// YAML file whose keys are these flags' long names (`nats_url: ...`).
    #[arg(long, env = "FANOUT_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(flatten)]
    cluster: ClusterArgs,
    /// This edge's id: its delivery subject is `fanout.edge.<id>` [default: the host name].
    #[arg(long, env = "FANOUT_EDGE_ID")]
    edge_id: Option<String>,
    /// WebSocket listen address (the endpoint is ws://ADDR/graphql).
    #[arg(long, env = "FANOUT_LISTEN", default_value = "0.0.0.0:8080")]
    listen: SocketAddr,
    /// Admin listen address for /healthz, /readyz, /startupz, /drain and /metrics.
    #[arg(long, env = "FANOUT_ADMIN_LISTEN", default_value = "0.0.0.0:9091")]
    admin_listen: SocketAddr,
    /// GraphQL SDL schema file (the same as the routers' and workers').
    #[arg(long, env = "FANOUT_SCHEMA", value_name = "FILE")]
    schema: PathBuf,
    /// HS256 secret client JWTs must be signed with (more key options below).
    #[arg(
        long,
        env = "FANOUT_JWT_SECRET",
        value_name = "SECRET",
        hide_env_values = true
    )]
    jwt_secret: Option<String>,
    /// Milliseconds a client has to send `connection_init` (else 4408).
    #[arg(long, env = "FANOUT_INIT_TIMEOUT_MS", default_value_t = 3000)]
    init_timeout_ms: u64,
    /// Milliseconds between server pings; 0 disables them.
    #[arg(long, env = "FANOUT_PING_INTERVAL_MS", default_value_t = 15_000)]
    ping_interval_ms: u64,
    /// Milliseconds to wait for a pong before closing with 4504.
    #[arg(long, env = "FANOUT_PONG_TIMEOUT_MS", default_value_t = 10_000)]
    pong_timeout_ms: u64,
    /// Largest accepted client message in bytes (larger ones close with 1009).
    #[arg(long, env = "FANOUT_MAX_MESSAGE_BYTES", default_value_t = 64 * 1024)]
    max_message_bytes: usize,
    /// Frames queued per connection before it is closed as a slow consumer (4503).
    #[arg(long, env = "FANOUT_OUTBOUND_QUEUE", default_value_t = 1024)]
    outbound_queue: usize,
    /// Subscriptions allowed per connection.
    #[arg(long, env = "FANOUT_MAX_SUBSCRIPTIONS", default_value_t = 100)]
    max_subscriptions: usize,
    /// Milliseconds a delivery waits for a missing earlier one before the gap is skipped.
    #[arg(long, env = "FANOUT_REORDER_WINDOW_MS", default_value_t = 1000)]
    reorder_window_ms: u64,
    /// Milliseconds over which a drain (SIGTERM, SIGINT or GET/POST /drain) spreads its
    /// 1012 closes; 0 closes every connection at once. The process exits at most this
    /// plus 10 s after SIGTERM.
    #[arg(long, env = "FANOUT_DRAIN_WINDOW_MS", default_value_t = 10_000)]
    drain_window_ms: u64,
    #[command(flatten)]
    auth: AuthArgs,
    #[command(flatten)]
    limits: LimitArgs,
    /// Log as JSON lines.
    #[arg(long, env = "FANOUT_LOG_JSON")]
    log_json: bool,
    #[command(flatten)]
    otlp: fanout_core::otel::OtlpArgs,
    #[command(flatten)]
    tenant_metrics: fanout_core::telemetry::TenantMetricsArgs,
}

/// Entry point of `fanout-edge`.
pub fn main() -> ExitCode {
    let args = match role::parse_args::<EdgeArgs>() {
        Ok(a) => a,
        Err(code) => return code,
    };
    let mut problems = args.cluster.problems();
    for (name, value) in [
        ("init-timeout-ms", args.init_timeout_ms as usize),
        ("pong-timeout-ms", args.pong_timeout_ms as usize),
        ("max-message-bytes", args.max_message_bytes),
        ("outbound-queue", args.outbound_queue),
        ("max-subscriptions", args.max_subscriptions),
    ] {
        if value == 0 {
            problems.push(format!("--{name} must be at least 1"));
        }
    }
    problems.extend(args.otlp.problem());
    if !problems.is_empty() {
        for p in problems {
            eprintln!("error: {p}");
        }
        return ExitCode::from(role::EXIT_USAGE);
    }
    args.tenant_metrics.apply();
    let (json, otlp) = (args.log_json, args.otlp.clone());
    role::block_on(async move { role::with_telemetry(json, &otlp, "fanout-edge", run(args)).await })
}

async fn run(args: EdgeArgs) -> anyhow::Result<()> {
    let admin = Admin::install()?;
    let id = args.edge_id.clone().unwrap_or_else(role::host_name);
    let schema = Arc::new(schema_file::load(&args.schema)?);
    let auth = auth::resolve(
        &(args.auth, AuthFile::default()),
        args.jwt_secret.as_deref(),
    )
    .map_err(|problems| {
        anyhow::anyhow!("invalid authentication settings:\n{}", problems.join("\n"))
    })?;
    let limits = limits::resolve(args.limits, LimitsFile::default())
        .map_err(|problems| anyhow::anyhow!("invalid limits:\n{}", problems.join("\n")))?;
    let ws_listener = fanout_core::listen::tcp_listener(args.listen)
        .with_context(|| format!("cannot listen for WebSocket on {}", args.listen))?;
    let admin_listener = fanout_core::listen::tcp_listener(args.admin_listen)
        .with_context(|| format!("cannot listen for admin on {}", args.admin_listen))?;
    let nats = args
        .cluster
        .connect_bus(&format!("fanout-edge-{id}"))
        .await
        .with_context(|| format!("connecting to NATS at {}", args.cluster.nats_url))?;
    let bus: Arc<dyn Bus> = nats;
    let servers = Servers::new();
    let (shutdown, tracker) = (servers.shutdown.clone(), servers.tracker.clone());

    let members = args.cluster.members(shutdown.clone()).await?;
    let live = liveness::live_members(bus.clone(), members, &tracker, shutdown.clone()).await?;
    let interest = ClusterInterest::start(
        id.clone(),
        args.cluster.partitions,
        live.clone(),
        &tracker,
        shutdown.clone(),
    );
    let config = EdgeConfig {
        edge_id: id.clone(),
        init_timeout: Duration::from_millis(args.init_timeout_ms),
        ping_interval: Duration::from_millis(args.ping_interval_ms),
        pong_timeout: Duration::from_millis(args.pong_timeout_ms),
        max_message_bytes: args.max_message_bytes,
        outbound_queue: args.outbound_queue,
        max_subscriptions_per_connection: args.max_subscriptions,
        reorder_window: Duration::from_millis(args.reorder_window_ms),
        limits: limits.edge,
        drain_window: Duration::from_millis(args.drain_window_ms),
        ..EdgeConfig::default()
    };
    let verifier = auth.verifier;
    let edge = Edge::new(config, schema, verifier.clone(), interest.clone());
    edge_tasks::spawn(
        &edge,
        bus.clone(),
        verifier,
        auth.reload_every,
        &tracker,
        &shutdown,
    );
    {
        let edge = edge.clone();
        let stop = shutdown.clone();
        let tls = limits.ws_tls;
        servers.spawn("WebSocket", async move {
            match tls {
                Some(tls) => edge.serve_tls(ws_listener, tls, stop).await,
                None => edge.serve(ws_listener, stop).await,
            }
        });
    }
    // Before the admin server starts, so `/drain` never answers 501 on an edge.
    let drain = admin.enable_drain();
    edge.follow_drain_request(drain.clone());
    servers.spawn(
        "admin",
        admin.clone().serve(admin_listener, shutdown.clone()),
    );
    {
        let bus = bus.clone();
        let interest = interest.clone();
        tracker.spawn(role::follow_readiness(
            admin.clone(),
            "edge",
            move || bus.is_connected() && interest.all_links_up(),
            shutdown.clone(),
        ));
    }
    tracing::info!(edge = %id, listen = %args.listen, nats = %args.cluster.nats_url, "fanout-edge running");
    servers
        .wait_for_stop_draining(&drain, edge.clone().drain())
        .await;
    if servers.stop().await {
        anyhow::bail!("a server failed");
    }
    Ok(())
}
