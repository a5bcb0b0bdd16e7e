//! `fanout standalone`: edge, router and resolver worker in one process, joined by the
//! in-memory bus exactly as they are joined by NATS in a cluster.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use fanout_core::bus::{Bus, MemoryBus};
use fanout_core::dispatch::DeliveryPolicy;
use fanout_core::graphql::Schema;
use fanout_edge::{Edge, EdgeConfig};
use fanout_resolver_worker::{PythonConfig, PythonRuntime, Worker};
use fanout_router::{Router, RouterConfig};
use tokio::net::TcpListener;

use crate::config::{Source, StandaloneArgs, StandaloneConfig};
use crate::{config, edge_tasks, example};
use fanout_core::admin::Admin;
use fanout_core::role::servers::Servers;

/// Exit code for bad flags or configuration (EX_USAGE).
const EXIT_USAGE: u8 = 64;

/// Entry point of the subcommand: logging and span export around [`serve`].
pub async fn main(args: StandaloneArgs) -> ExitCode {
    if let Some(problem) = args.otlp.problem() {
        eprintln!("error: {problem}");
        return ExitCode::from(EXIT_USAGE);
    }
    let telemetry = match fanout_core::role::init_telemetry(args.log_json, &args.otlp, "fanout") {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    args.tenant_metrics.apply();
    let code = serve(args).await;
    telemetry.shutdown().await;
    code
}

async fn serve(args: StandaloneArgs) -> ExitCode {
    let mut config = match StandaloneConfig::resolve(args) {
        Ok(c) => c,
        Err(problems) => {
            for p in problems {
                eprintln!("error: {p}");
            }
            return ExitCode::from(EXIT_USAGE);
        }
    };
    // Keys are loaded here so that a bad key file is a usage error too.
    let auth = match config::auth::resolve(&config.auth, config.jwt_secret.as_deref()) {
        Ok(auth) => auth,
        Err(problems) => {
            for p in problems {
                eprintln!("error: {p}");
            }
            return ExitCode::from(EXIT_USAGE);
        }
    };
    // TLS files and publisher tokens are read here too.
    let (limit_args, limits_file) = std::mem::take(&mut config.limits);
    let limits = match config::limits::resolve(limit_args, limits_file) {
        Ok(limits) => limits,
        Err(problems) => {
            for p in problems {
                eprintln!("error: {p}");
            }
            return ExitCode::from(EXIT_USAGE);
        }
    };
    match run(config, auth, limits).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// Schema text, its name in diagnostics, and the resolvers file to import.
struct Loaded {
    schema: Schema,
    resolvers: Option<PathBuf>,
    _example_dir: Option<ExampleDir>,
}

/// A temporary directory holding the embedded example's resolvers, removed on drop.
struct ExampleDir(PathBuf);

impl Drop for ExampleDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn load(source: &Source) -> anyhow::Result<Loaded> {
    let (sdl, name, resolvers, example_dir) = match source {
        Source::Example => {
            let dir = std::env::temp_dir().join(format!("fanout-example-{}", std::process::id()));
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            let file = dir.join("resolvers.py");
            std::fs::write(&file, example::RESOLVERS)
                .with_context(|| format!("writing {}", file.display()))?;
            (
                example::SCHEMA.to_owned(),
                example::SCHEMA_NAME.to_owned(),
                Some(file),
                Some(ExampleDir(dir)),
            )
        }
        Source::Files { schema, resolvers } => {
            let sdl = std::fs::read_to_string(schema)
                .with_context(|| format!("reading schema {}", schema.display()))?;
            (sdl, schema.display().to_string(), resolvers.clone(), None)
        }
    };
    let schema = Schema::parse(&sdl, &name).map_err(|errors| {
        let lines: Vec<String> = errors.0.iter().map(ToString::to_string).collect();
        anyhow::anyhow!("invalid schema:\n{}", lines.join("\n"))
    })?;
    Ok(Loaded {
        schema,
        resolvers,
        _example_dir: example_dir,
    })
}

async fn bind(addr: std::net::SocketAddr, what: &str) -> anyhow::Result<TcpListener> {
    fanout_core::listen::tcp_listener(addr)
        .with_context(|| format!("cannot listen for {what} on {addr}"))
}

async fn run(
    config: StandaloneConfig,
    auth: config::auth::Auth,
    limits: config::limits::Limits,
) -> anyhow::Result<()> {
    let admin = Admin::install()?;
    let loaded = load(&config.source)?;
    let schema = Arc::new(loaded.schema);

    let runtime = match &loaded.resolvers {
        None => None,
        Some(path) => {
            let runtime = PythonRuntime::start(PythonConfig {
                resolvers: path.clone(),
                virtualenv: config.virtualenv.clone(),
                timeout: config.resolver_timeout,
            })
            .map_err(|e| anyhow::anyhow!("{e}"))?;
            let unknown: Vec<String> = runtime
                .resolver_fields()
                .into_iter()
                .filter(|f| schema.subscription_field(f).is_none())
                .collect();
            if !unknown.is_empty() {
                anyhow::bail!(
                    "{}: resolvers for fields that are not Subscription fields of the schema: {} (run `fanout check` for lines)",
                    path.display(),
                    unknown.join(", ")
                );
            }
            Some(runtime)
        }
    };
    let verifier = auth.verifier;

    let ws_listener = bind(config.listen, "WebSocket").await?;
    let grpc_listener = bind(config.grpc_listen, "gRPC").await?;
    let admin_listener = bind(config.admin_listen, "admin").await?;
    let ws_addr = ws_listener.local_addr()?;
    let ws_scheme = if limits.ws_tls.is_some() { "wss" } else { "ws" };
    let grpc_scheme = if limits.grpc.tls.is_some() {
        "https"
    } else {
        "http"
    };
    if !limits.grpc.publishers.is_enabled() {
        tracing::warn!(
            "publishing is open: no publisher tokens are configured, so anyone who can reach \
             the gRPC port can publish to any channel (see --publisher-token)"
        );
    }
    let grpc_addr = grpc_listener.local_addr()?;
    let admin_addr = admin_listener.local_addr()?;

    let servers = Servers::new();
    let (shutdown, tracker) = (servers.shutdown.clone(), servers.tracker.clone());
    let bus: Arc<dyn Bus> = Arc::new(MemoryBus::new());

    let router = Router::start(
        RouterConfig {
            router_id: "standalone".into(),
            max_payload_bytes: config.max_payload_bytes,
            multi_tenant: config.multi_tenant,
            python_fields: runtime
                .as_ref()
                .map(|r| r.resolver_fields().into_iter().collect())
                .unwrap_or_default(),
            ..RouterConfig::default()
        },
        bus.clone(),
        &tracker,
        shutdown.clone(),
    );
    if let Some(runtime) = runtime {
        let worker = Worker::new(
            runtime,
            schema.clone(),
            bus.clone(),
            DeliveryPolicy::multi_tenant(config.multi_tenant),
        );
        let stop = shutdown.clone();
        tracker.spawn(async move {
            if let Err(e) = worker.run(stop).await {
                tracing::error!(error = %e, "resolver worker stopped");
            }
        });
    }
    let edge_config = EdgeConfig {
        edge_id: "standalone".into(),
        init_timeout: config.init_timeout,
        ping_interval: config.ping_interval,
        pong_timeout: config.pong_timeout,
        max_message_bytes: config.max_message_bytes,
        outbound_queue: config.outbound_queue,
        max_subscriptions_per_connection: config.max_subscriptions,
        limits: limits.edge,
        drain_window: config.drain_window,
        ..EdgeConfig::default()
    };
    let path = edge_config.path.clone();
    let edge = Edge::new(
        edge_config,
        schema.clone(),
        verifier.clone(),
        router.index(),
    );
    edge_tasks::spawn(
        &edge,
        bus.clone(),
        verifier,
        auth.reload_every,
        &tracker,
        &shutdown,
    );
    // Let the delivery loop and the worker subscribe before anyone can publish.
    for _ in 0..8 {
        tokio::task::yield_now().await;
    }

    servers.spawn("WebSocket", {
        let edge = edge.clone();
        let stop = shutdown.clone();
        let tls = limits.ws_tls;
        async move {
            match tls {
                Some(tls) => edge.serve_tls(ws_listener, tls, stop).await,
                None => edge.serve(ws_listener, stop).await,
            }
        }
    });
    {
        let router = router.clone();
        let stop = shutdown.clone();
        let grpc_security = limits.grpc;
        servers.spawn("gRPC", async move {
            fanout_router::grpc::serve_with(router, grpc_listener, grpc_security, stop).await
        });
    }
    // Before the admin server starts, so `/drain` never answers 501 on an edge.
    let drain = admin.enable_drain();
    edge.follow_drain_request(drain.clone());
    servers.spawn(
        "admin",
        admin.clone().serve(admin_listener, shutdown.clone()),
    );

    admin.set_ready(true);
    servers.tracker.spawn(fanout_core::role::mirror_readiness(
        admin.clone(),
        "standalone",
        shutdown.clone(),
    ));
    tracing::info!(%ws_addr, %grpc_addr, %admin_addr, "fanout standalone ready");
    {
        let mut out = std::io::stdout().lock();
        writeln!(
            out,
            "fanout ready ws={ws_scheme}://{ws_addr}{path} grpc={grpc_scheme}://{grpc_addr} admin=http://{admin_addr}"
        )?;
        out.flush()?;
    }

    // SIGTERM (or GET/POST /drain) drains the edge first: /readyz turns 503, upgrades
    // are refused and sockets close with 1012 over the drain window.
    servers
        .wait_for_stop_draining(&drain, edge.clone().drain())
        .await;
    admin.set_ready(false);
    if servers.stop().await {
        anyhow::bail!("a server failed");
    }
    Ok(())
}
