//! `fanout-worker`: a resolver worker of a Fanout cluster.
//!
//! Runs the Python resolvers of one resolvers file on resolve tasks taken from the
//! `fanout.resolve` NATS queue group, and sends one delivery per (event, edge).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use fanout_core::admin::Admin;
use fanout_core::bus::{Bus, NatsBus};
use fanout_core::dispatch::DeliveryPolicy;
use fanout_core::graphql::Schema;
use fanout_core::role;
use fanout_core::role::servers::Servers;
use fanout_resolver_worker::{PythonConfig, PythonRuntime, Worker};

/// A Fanout resolver worker: Python resolvers once per shape, fed by NATS.
#[derive(Debug, Parser)]
#[command(name = "fanout-worker", version, about, args_override_self = true)]
struct Args {
    /// YAML file whose keys are these flags' long names.
    #[arg(long, env = "FANOUT_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// NATS server URL (several, comma-separated, for a NATS cluster).
    #[arg(long, env = "FANOUT_NATS_URL", default_value = "nats://127.0.0.1:4222")]
    nats_url: String,
    /// Name of this worker in NATS connection names and logs [default: the host name].
    #[arg(long, env = "FANOUT_WORKER_ID")]
    worker_id: Option<String>,
    /// GraphQL SDL schema file (the same as the edges' and routers').
    #[arg(long, env = "FANOUT_SCHEMA", value_name = "FILE")]
    schema: PathBuf,
    /// Python file with `@fanout.resolver` functions.
    #[arg(long, env = "FANOUT_RESOLVERS", value_name = "FILE.py")]
    resolvers: PathBuf,
    /// Virtualenv whose site-packages the resolvers import from [default: $VIRTUAL_ENV].
    #[arg(long, env = "FANOUT_VIRTUALENV", value_name = "DIR")]
    virtualenv: Option<PathBuf>,
    /// Milliseconds a resolver may run before it is reported as timed out.
    #[arg(long, env = "FANOUT_RESOLVER_TIMEOUT_MS", default_value_t = 1000)]
    resolver_timeout_ms: u64,
    /// Admin listen address for /healthz (live), /readyz (ready), /startupz (started) and /metrics.
    #[arg(long, env = "FANOUT_ADMIN_LISTEN", default_value = "0.0.0.0:9092")]
    admin_listen: SocketAddr,
    /// Tenant isolation (must match the routers').
    #[arg(long, env = "FANOUT_MULTI_TENANT")]
    multi_tenant: bool,
    /// Log as JSON lines.
    #[arg(long, env = "FANOUT_LOG_JSON")]
    log_json: bool,
    #[command(flatten)]
    otlp: fanout_core::otel::OtlpArgs,
}

/// The same allocator as the other Fanout binaries (mimalloc; see `fanout-cli`). Python
/// objects keep CPython's own allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let args = match role::parse_args::<Args>() {
        Ok(a) => a,
        Err(code) => return code,
    };
    if let Some(problem) = args.otlp.problem() {
        eprintln!("error: {problem}");
        return ExitCode::from(role::EXIT_USAGE);
    }
    if args.resolver_timeout_ms == 0 {
        eprintln!("error: --resolver-timeout-ms must be at least 1");
        return ExitCode::from(role::EXIT_USAGE);
    }
    let (json, otlp) = (args.log_json, args.otlp.clone());
    role::block_on(
        async move { role::with_telemetry(json, &otlp, "fanout-worker", run(args)).await },
    )
}

async fn run(args: Args) -> anyhow::Result<()> {
    let admin = Admin::install()?;
    let id = args.worker_id.clone().unwrap_or_else(role::host_name);
    let sdl = std::fs::read_to_string(&args.schema)
        .with_context(|| format!("reading schema {}", args.schema.display()))?;
    let name = args.schema.display().to_string();
    let schema = Schema::parse(&sdl, &name).map_err(|errors| {
        let lines: Vec<String> = errors.0.iter().map(ToString::to_string).collect();
        anyhow::anyhow!("invalid schema:\n{}", lines.join("\n"))
    })?;
    let python = PythonRuntime::start(PythonConfig {
        resolvers: args.resolvers.clone(),
        virtualenv: args
            .virtualenv
            .clone()
            .or_else(|| std::env::var_os("VIRTUAL_ENV").map(PathBuf::from)),
        timeout: Duration::from_millis(args.resolver_timeout_ms),
    })
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let admin_listener = tokio::net::TcpListener::bind(args.admin_listen)
        .await
        .with_context(|| format!("cannot listen for admin on {}", args.admin_listen))?;
    let nats = Arc::new(
        NatsBus::connect(&args.nats_url, &format!("fanout-worker-{id}"))
            .await
            .with_context(|| format!("connecting to NATS at {}", args.nats_url))?,
    );
    let bus: Arc<dyn Bus> = nats.clone();
    let servers = Servers::new();
    let (shutdown, tracker) = (servers.shutdown.clone(), servers.tracker.clone());
    let worker = Worker::new(
        python,
        Arc::new(schema),
        bus.clone(),
        DeliveryPolicy::multi_tenant(args.multi_tenant),
    );
    {
        let stop = shutdown.clone();
        tracker.spawn(async move {
            if let Err(e) = worker.run(stop).await {
                tracing::error!(error = %e, "resolver worker stopped");
            }
        });
    }
    servers.spawn(
        "admin",
        admin.clone().serve(admin_listener, shutdown.clone()),
    );
    {
        let bus = bus.clone();
        tracker.spawn(role::follow_readiness(
            admin.clone(),
            "worker",
            move || bus.is_connected(),
            shutdown.clone(),
        ));
    }
    tracing::info!(worker = %id, nats = %args.nats_url, "fanout-worker running");
    servers.wait_for_stop().await;
    if servers.stop().await {
        anyhow::bail!("a server failed");
    }
    Ok(())
}
