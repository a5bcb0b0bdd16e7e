//! Keeps the JWT verification keys current: key files (JWKS, PEM, secret files) are
//! checked for changes every `--key-reload-secs` and read again on SIGHUP. A file that
//! fails to load leaves the previous keys in place (and is logged).

use std::time::Duration;

use fanout_core::security::JwtVerifier;
use tokio_util::sync::CancellationToken;

/// The reload loop, to be spawned; runs until `shutdown`. `every` is the change-check
/// interval (`None`: SIGHUP only). The SIGHUP handler is installed before this returns,
/// so a SIGHUP sent once the server reports ready is never lost (or fatal).
pub fn run(
    verifier: JwtVerifier,
    every: Option<Duration>,
    shutdown: CancellationToken,
) -> impl Future<Output = ()> + Send + 'static {
    let hangup = hangup_signal();
    reload_loop(verifier, every, shutdown, hangup)
}

async fn reload_loop(
    verifier: JwtVerifier,
    every: Option<Duration>,
    shutdown: CancellationToken,
    mut hangup: Hangup,
) {
    let mut ticker = every.map(|every| {
        let mut t = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        t
    });
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = next_hangup(&mut hangup) => report(verifier.reload().map(Some), "SIGHUP"),
            () = tick(&mut ticker) => report(verifier.reload_if_changed(), "file change"),
        }
    }
}

fn report(result: Result<Option<usize>, fanout_core::security::KeyError>, trigger: &str) {
    match result {
        Ok(Some(keys)) => tracing::info!(keys, trigger, "JWT keys reloaded"),
        Ok(None) => {}
        Err(e) => {
            tracing::warn!(error = %e, trigger, "JWT keys not reloaded; keeping the current keys")
        }
    }
}

async fn tick(ticker: &mut Option<tokio::time::Interval>) {
    match ticker {
        Some(t) => {
            t.tick().await;
        }
        None => std::future::pending().await,
    }
}

#[cfg(unix)]
type Hangup = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
type Hangup = ();

#[cfg(unix)]
fn hangup_signal() -> Hangup {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok()
}
#[cfg(not(unix))]
fn hangup_signal() -> Hangup {}

#[cfg(unix)]
async fn next_hangup(hangup: &mut Hangup) {
    match hangup {
        Some(signal) => {
            if signal.recv().await.is_none() {
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending().await,
    }
}
#[cfg(not(unix))]
async fn next_hangup(_: &mut Hangup) {
    std::future::pending().await
}
