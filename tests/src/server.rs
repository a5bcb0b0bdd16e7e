//! A running `fanout standalone`, on ephemeral ports, killed on drop.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow, bail};

use crate::binary::fanout_bin;

/// How long the server may take to print its ready line.
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// How much of the server's stderr is kept (the tail) for failure reports.
const STDERR_KEEP: usize = 64 * 1024;

/// A `fanout standalone` process with its three listeners on `127.0.0.1:0`.
pub struct Fanout {
    child: Child,
    /// `ws://127.0.0.1:P/graphql`.
    pub ws_url: String,
    /// `http://127.0.0.1:Q` (gRPC).
    pub grpc_url: String,
    /// `http://127.0.0.1:R` (`/healthz`, `/readyz`, `/metrics`).
    pub admin_url: String,
    stderr: Arc<Mutex<String>>,
}

impl Fanout {
    /// Starts `fanout standalone --listen 127.0.0.1:0 --grpc-listen 127.0.0.1:0
    /// --admin-listen 127.0.0.1:0 ARGS...` and waits for its ready line.
    pub async fn start<I, S>(args: I) -> Result<Fanout>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        Self::start_with_env(args, std::iter::empty::<(&str, &str)>()).await
    }

    /// Like [`Fanout::start`], with extra environment variables for the child only.
    pub async fn start_with_env<I, S, E, K, V>(args: I, envs: E) -> Result<Fanout>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
        E: IntoIterator<Item = (K, V)>,
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        let bin = fanout_bin()?;
        let mut cmd = Command::new(bin);
        cmd.args(["standalone", "--listen", "127.0.0.1:0"])
            .args(["--grpc-listen", "127.0.0.1:0"])
            .args(["--admin-listen", "127.0.0.1:0"])
            .args(args)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .envs(envs)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .with_context(|| format!("cannot spawn {}", bin.display()))?;

        let stderr = Arc::new(Mutex::new(String::new()));
        if let Some(pipe) = child.stderr.take() {
            let keep = Arc::clone(&stderr);
            std::thread::spawn(move || collect_stderr(pipe, &keep));
        }
        let (ready_tx, ready_rx) = mpsc::channel::<String>();
        if let Some(pipe) = child.stdout.take() {
            std::thread::spawn(move || {
                // The first line is the ready line; later stdout is drained so the
                // server never blocks on a full pipe.
                for line in BufReader::new(pipe).lines() {
                    let Ok(line) = line else { break };
                    let _ = ready_tx.send(line);
                }
            });
        }

        let first = tokio::task::spawn_blocking(move || ready_rx.recv_timeout(READY_TIMEOUT))
            .await
            .context("ready-line waiter panicked")?;
        let mut server = Fanout {
            child,
            ws_url: String::new(),
            grpc_url: String::new(),
            admin_url: String::new(),
            stderr,
        };
        let line = match first {
            Ok(line) => line,
            Err(mpsc::RecvTimeoutError::Timeout) => bail!(
                "fanout standalone printed no ready line within {READY_TIMEOUT:?}; stderr:\n{}",
                server.stderr()
            ),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = server.wait_exit(Duration::from_secs(5));
                bail!(
                    "fanout standalone closed stdout before its ready line (exit: {status}); stderr:\n{}",
                    server.stderr()
                )
            }
        };
        let ready = parse_ready_line(&line).with_context(|| {
            format!("unexpected first stdout line; stderr:\n{}", server.stderr())
        })?;
        server.ws_url = ready.ws;
        server.grpc_url = ready.grpc;
        server.admin_url = ready.admin;
        Ok(server)
    }

    /// Starts the server with the suite fixture (`tests/fixtures/suite`) plus `extra`.
    pub async fn suite(extra: &[&str]) -> Result<Fanout> {
        let mut args = crate::fixtures::suite_args();
        args.extend(extra.iter().map(|s| s.to_string()));
        Self::start(args).await
    }

    /// What the server has written to stderr so far (the last 64 KiB).
    pub fn stderr(&self) -> String {
        self.stderr
            .lock()
            .map(|s| s.clone())
            .unwrap_or_else(|e| e.into_inner().clone())
    }

    /// The OS process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends SIGTERM (the process drains, then exits).
    pub fn terminate(&self) -> Result<()> {
        terminate(self.pid())
    }

    /// The exit status, once the process has exited.
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Waits (polling every 20 ms) until the process exits; fails after `limit`.
    pub async fn exited_within(&mut self, limit: Duration) -> Result<ExitStatus> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if let Some(status) = self.exit_status() {
                return Ok(status);
            }
            if tokio::time::Instant::now() >= deadline {
                bail!(
                    "fanout standalone still running {limit:?} later; stderr:\n{}",
                    self.stderr()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn wait_exit(&mut self, limit: Duration) -> String {
        let deadline = std::time::Instant::now() + limit;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return status.to_string(),
                Ok(None) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Ok(None) => return "still running".into(),
                Err(e) => return format!("unknown ({e})"),
            }
        }
    }
}

impl Drop for Fanout {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Captured by the test harness: shown only when the test fails.
        eprintln!(
            "---- fanout standalone stderr (tail) ----\n{}\n---- end ----",
            self.stderr()
        );
    }
}

/// Sends SIGTERM to process `pid` (with the `kill` command: no libc binding needed).
pub fn terminate(pid: u32) -> Result<()> {
    let status = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .context("cannot run `kill`")?;
    if !status.success() {
        bail!("`kill -TERM {pid}` failed: {status}");
    }
    Ok(())
}

fn collect_stderr(pipe: impl Read, keep: &Mutex<String>) {
    for line in BufReader::new(pipe).lines() {
        let Ok(line) = line else { break };
        let Ok(mut buf) = keep.lock() else { break };
        buf.push_str(&line);
        buf.push('\n');
        if buf.len() > STDERR_KEEP {
            let mut cut = buf.len() - STDERR_KEEP / 2;
            while !buf.is_char_boundary(cut) {
                cut += 1;
            }
            buf.drain(..cut);
        }
    }
}

/// The URLs of a ready line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadyLine {
    /// WebSocket URL.
    pub ws: String,
    /// gRPC URL.
    pub grpc: String,
    /// Admin HTTP URL.
    pub admin: String,
}

/// Parses `fanout ready ws=URL grpc=URL admin=URL`.
pub fn parse_ready_line(line: &str) -> Result<ReadyLine> {
    let rest = line
        .strip_prefix("fanout ready ")
        .ok_or_else(|| anyhow!("not a ready line: {line:?}"))?;
    let (mut ws, mut grpc, mut admin) = (None, None, None);
    for part in rest.split_whitespace() {
        match part.split_once('=') {
            Some(("ws", v)) => ws = Some(v.to_string()),
            Some(("grpc", v)) => grpc = Some(v.to_string()),
            Some(("admin", v)) => admin = Some(v.to_string()),
            _ => {}
        }
    }
    match (ws, grpc, admin) {
        (Some(ws), Some(grpc), Some(admin)) => Ok(ReadyLine { ws, grpc, admin }),
        _ => bail!("ready line lacks ws=, grpc= or admin=: {line:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ready_line() {
        let r = parse_ready_line(
            "fanout ready ws=ws://127.0.0.1:1/graphql grpc=http://127.0.0.1:2 admin=http://127.0.0.1:3",
        )
        .expect("valid line");
        assert_eq!(r.ws, "ws://127.0.0.1:1/graphql");
        assert_eq!(r.grpc, "http://127.0.0.1:2");
        assert_eq!(r.admin, "http://127.0.0.1:3");
        assert!(parse_ready_line("listening on 8080").is_err());
        assert!(parse_ready_line("fanout ready ws=x").is_err());
    }
}
