//! What every role binary (`fanout-edge`, `fanout-router`, `fanout-worker`) does the
//! same way: logging, the YAML config file, cluster flags (NATS and membership),
//! readiness, and signals.

pub mod cluster_args;
pub mod config_file;
pub mod liveness;
pub mod servers;

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::admin::Admin;
use crate::otel::{Exporter, OtelError, OtlpArgs};

/// Exit code for bad flags or configuration (EX_USAGE).
pub const EXIT_USAGE: u8 = 64;

/// Sets up logging and, when `otlp` names an endpoint, span export as service
/// `service` (see [`crate::otel`]), then runs `fut` and flushes the exported spans
/// before returning its result. Runs inside the tokio runtime, which the exporter needs.
pub async fn with_telemetry<E: From<OtelError>>(
    json: bool,
    otlp: &OtlpArgs,
    service: &str,
    fut: impl std::future::Future<Output = Result<(), E>>,
) -> Result<(), E> {
    let telemetry = init_telemetry(json, otlp, service)?;
    let result = fut.await;
    telemetry.shutdown().await;
    result
}

/// Logging plus span export when `otlp` names an endpoint; call inside the tokio
/// runtime and [`Telemetry::shutdown`] at the end so batched spans are flushed.
pub fn init_telemetry(json: bool, otlp: &OtlpArgs, service: &str) -> Result<Telemetry, OtelError> {
    let Some(endpoint) = otlp.endpoint() else {
        install_subscriber(json, None);
        return Ok(Telemetry { exporter: None });
    };
    let (exporter, tracer) = Exporter::start(&endpoint, service)?;
    install_subscriber(json, Some(tracer));
    tracing::info!(%endpoint, "exporting trace spans over OTLP");
    Ok(Telemetry {
        exporter: Some(exporter),
    })
}

/// Logging and span export of a running role.
#[derive(Debug)]
pub struct Telemetry {
    exporter: Option<Exporter>,
}

impl Telemetry {
    /// Flushes and stops span export (nothing to do without it).
    pub async fn shutdown(self) {
        if let Some(exporter) = self.exporter {
            exporter.shutdown().await;
        }
    }
}

/// The fmt layer filtered by `FANOUT_LOG`, and the span exporter's layer (when there is
/// one) filtered to the per-event spans only: without it those spans are disabled.
fn install_subscriber(json: bool, tracer: Option<opentelemetry_sdk::trace::SdkTracer>) {
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;

    let filter = tracing_subscriber::EnvFilter::try_from_env("FANOUT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only on a terminal: logs captured to files or collectors stay plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let fmt = if json {
        fmt.json().boxed()
    } else {
        fmt.with_ansi(ansi).boxed()
    };
    let registry = tracing_subscriber::registry().with(fmt.with_filter(filter));
    let _ = match tracer {
        Some(tracer) => {
            let spans = tracing_subscriber::filter::Targets::new()
                .with_target(crate::trace::SPAN_TARGET, tracing::Level::TRACE);
            registry
                .with(
                    tracing_opentelemetry::layer()
                        .with_tracer(tracer)
                        .with_filter(spans),
                )
                .try_init()
        }
        None => registry.try_init(),
    };
}

/// Re-evaluates `ready` every 250 ms and publishes it on `/readyz`, and in the
/// `fanout_ready{role}` gauge, until `shutdown`.
pub async fn follow_readiness(
    admin: Admin,
    role: &'static str,
    ready: impl Fn() -> bool + Send + 'static,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            _ = tick.tick() => {
                admin.set_ready(ready());
                report_ready(&admin, role);
            }
        }
    }
    admin.set_ready(false);
    report_ready(&admin, role);
}

/// Mirrors `/readyz` of a process that sets its readiness itself in the
/// `fanout_ready{role}` gauge, every 250 ms until `shutdown`.
pub async fn mirror_readiness(admin: Admin, role: &'static str, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            _ = tick.tick() => report_ready(&admin, role),
        }
    }
    metrics::gauge!(crate::telemetry::READY, "role" => role).set(0.0);
}

fn report_ready(admin: &Admin, role: &'static str) {
    let ready = if admin.is_ready() { 1.0 } else { 0.0 };
    metrics::gauge!(crate::telemetry::READY, "role" => role).set(ready);
}

/// Resolves on the first SIGTERM or SIGINT.
pub async fn terminated() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {},
                _ = int.recv() => {},
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// This host's name (the pod name in Kubernetes): `HOSTNAME`, else `/etc/hostname`,
/// else one made from the process id.
pub fn host_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| format!("fanout-{}", std::process::id()))
}

/// Parses the command line of a role binary, with the config file's entries placed
/// first (see [`config_file`]); on failure prints the problem and returns the exit code
/// (0 for `--help`/`--version`, [`EXIT_USAGE`] otherwise).
pub fn parse_args<T: clap::Parser>() -> Result<T, std::process::ExitCode> {
    let raw = config_file::expand(std::env::args_os().collect()).map_err(|e| {
        eprintln!("error: {e}");
        std::process::ExitCode::from(EXIT_USAGE)
    })?;
    T::try_parse_from(raw).map_err(|e| {
        let code = if e.use_stderr() { EXIT_USAGE } else { 0 };
        let _ = e.print();
        std::process::ExitCode::from(code)
    })
}

/// Runs `fut` on a multi-threaded runtime; an error is printed with its causes and
/// exits with 1.
pub fn block_on<E: std::fmt::Debug>(
    fut: impl std::future::Future<Output = Result<(), E>>,
) -> std::process::ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::from(1);
        }
    };
    match runtime.block_on(fut) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:?}");
            std::process::ExitCode::from(1)
        }
    }
}
