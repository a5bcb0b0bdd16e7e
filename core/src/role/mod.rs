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

/// Exit code for bad flags or configuration (EX_USAGE).
pub const EXIT_USAGE: u8 = 64;

/// Text logs (or JSON lines with `json`) on stderr, filtered by `FANOUT_LOG`
/// (default `info`).
pub fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("FANOUT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only on a terminal: logs captured to files or collectors stay plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// Re-evaluates `ready` every 250 ms and publishes it on `/readyz` until `shutdown`.
pub async fn follow_readiness(
    admin: Admin,
    ready: impl Fn() -> bool + Send + 'static,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            _ = tick.tick() => admin.set_ready(ready()),
        }
    }
    admin.set_ready(false);
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
