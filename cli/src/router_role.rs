//! `fanout-router`: one router of a Fanout cluster.
//!
//! Serves the gRPC publish API and the `Interest` service edges stream to, owns the
//! partitions that rendezvous hashing gives it among the live routers, and forwards
//! publishes for other partitions to their owners over NATS.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use fanout_core::admin::Admin;
use fanout_core::bus::Bus;
use fanout_core::role::servers::Servers;
use fanout_core::role::{self, cluster_args::ClusterArgs, liveness};
use fanout_router::interest_server::InterestService;
use fanout_router::{Router, RouterConfig};

use crate::config::limits::{self, LimitArgs, LimitsFile};
use crate::schema_file;

/// A Fanout router: publish API, partition ownership, channel index and dispatch.
#[derive(Debug, Parser)]
#[command(name = "fanout-router", version, args_override_self = true)]
pub struct RouterArgs {
    /// YAML file whose keys are these flags' long names (`nats_url: ...`).
    #[arg(long, env = "FANOUT_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(flatten)]
    cluster: ClusterArgs,
    /// This router's id; must match its entry in --members [default: the host name].
    #[arg(long, env = "FANOUT_ROUTER_ID")]
    router_id: Option<String>,
    /// gRPC listen address (publish API, interest streams, health, reflection).
    #[arg(long, env = "FANOUT_GRPC_LISTEN", default_value = "0.0.0.0:50051")]
    grpc_listen: SocketAddr,
    /// Admin listen address for /healthz (live), /readyz (ready), /startupz (started) and /metrics.
    #[arg(long, env = "FANOUT_ADMIN_LISTEN", default_value = "0.0.0.0:9090")]
    admin_listen: SocketAddr,
    /// GraphQL SDL schema file (the same as the edges' and workers').
    #[arg(long, env = "FANOUT_SCHEMA", value_name = "FILE")]
    schema: PathBuf,
    /// Resolvers file; only its `@fanout.resolver("...")` lines are read, to know which
    /// fields go to resolver workers (no Python runs in a router).
    #[arg(long, env = "FANOUT_RESOLVERS", value_name = "FILE.py")]
    resolvers: Option<PathBuf>,
    /// Fields with a Python resolver, in addition to those found in --resolvers.
    #[arg(long, env = "FANOUT_PYTHON_FIELDS", value_delimiter = ',')]
    python_fields: Vec<String>,
    /// Largest accepted event payload in bytes.
    #[arg(long, env = "FANOUT_MAX_PAYLOAD_BYTES", default_value_t = 1024 * 1024)]
    max_payload_bytes: usize,
    /// Tenant isolation: events reach only subscribers of their tenant.
    #[arg(long, env = "FANOUT_MULTI_TENANT")]
    multi_tenant: bool,
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

/// Entry point of `fanout-router`.
pub fn main() -> ExitCode {
    let args = match role::parse_args::<RouterArgs>() {
        Ok(a) => a,
        Err(code) => return code,
    };
    let mut problems = args.cluster.problems();
    let id = args.router_id.clone().unwrap_or_else(role::host_name);
    problems.extend(args.cluster.check_router_id(&id));
    if args.max_payload_bytes == 0 {
        problems.push("--max-payload-bytes must be at least 1".into());
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
    role::block_on(
        async move { role::with_telemetry(json, &otlp, "fanout-router", run(args)).await },
    )
}

async fn run(args: RouterArgs) -> anyhow::Result<()> {
    let admin = Admin::install()?;
    let id = args.router_id.clone().unwrap_or_else(role::host_name);
    let schema = Arc::new(schema_file::load(&args.schema)?);
    let mut python_fields: HashSet<String> = args.python_fields.iter().cloned().collect();
    if let Some(resolvers) = &args.resolvers {
        python_fields.extend(schema_file::resolver_fields(resolvers)?);
    }
    let limits = limits::resolve(args.limits, LimitsFile::default())
        .map_err(|problems| anyhow::anyhow!("invalid limits:\n{}", problems.join("\n")))?;
    let grpc_listener = fanout_core::listen::tcp_listener(args.grpc_listen)
        .with_context(|| format!("cannot listen for gRPC on {}", args.grpc_listen))?;
    let admin_listener = fanout_core::listen::tcp_listener(args.admin_listen)
        .with_context(|| format!("cannot listen for admin on {}", args.admin_listen))?;
    let nats = args
        .cluster
        .connect_bus(&format!("fanout-router-{id}"))
        .await
        .with_context(|| format!("connecting to NATS at {}", args.cluster.nats_url))?;
    let bus: Arc<dyn Bus> = nats;
    let servers = Servers::new();
    let (shutdown, tracker) = (servers.shutdown.clone(), servers.tracker.clone());

    let router = Router::start_cluster(
        RouterConfig {
            router_id: id.clone(),
            partitions: args.cluster.partitions,
            max_payload_bytes: args.max_payload_bytes,
            python_fields,
            multi_tenant: args.multi_tenant,
            ..RouterConfig::default()
        },
        bus.clone(),
        &tracker,
        shutdown.clone(),
    );
    let members = args.cluster.members(shutdown.clone()).await?;
    let live = liveness::live_members(bus.clone(), members, &tracker, shutdown.clone()).await?;
    tracker.spawn(liveness::heartbeat(
        bus.clone(),
        id.clone(),
        shutdown.clone(),
    ));
    tracker.spawn(fanout_router::cluster::run_ownership(
        router.clone(),
        bus.clone(),
        live.clone(),
        tracker.clone(),
        shutdown.clone(),
    ));
    {
        let interest = InterestService::new(router.index(), schema.clone());
        let router = router.clone();
        let stop = shutdown.clone();
        let security = limits.grpc;
        servers.spawn("gRPC", async move {
            fanout_router::grpc::serve_cluster(router, interest, grpc_listener, security, stop)
                .await
        });
    }
    servers.spawn(
        "admin",
        admin.clone().serve(admin_listener, shutdown.clone()),
    );
    {
        let bus = bus.clone();
        let router = router.clone();
        let live = live.clone();
        let id = id.clone();
        tracker.spawn(role::follow_readiness(
            admin.clone(),
            "router",
            move || {
                bus.is_connected()
                    && live.borrow().contains(&id)
                    && !router.owned_partitions().is_empty()
            },
            shutdown.clone(),
        ));
    }
    tracing::info!(router = %id, grpc = %args.grpc_listen, nats = %args.cluster.nats_url, "fanout-router running");
    servers.wait_for_stop().await;
    if servers.stop().await {
        anyhow::bail!("a server failed");
    }
    Ok(())
}
