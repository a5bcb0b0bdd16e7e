//! Spreading connections over several client processes.
//!
//! One process holds at most ~19,900 sockets on this machine, and one source address
//! reaches one server port from at most ~28,000 ephemeral ports. Above `--per-process`
//! connections the generator re-executes itself as K child processes, child k bound to
//! 127.0.0.(k+1). The protocol on the children's stdin/stdout is three lines:
//! the child prints `READY <not ready>` once subscribed, reads `FINISH <drain ms>`, and
//! prints `RESULT <tally JSON>`.

use std::net::{IpAddr, Ipv4Addr};
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use crate::args::Args;
use crate::subscriber::{Plan, Swarm};
use crate::tally::Tally;

/// The subscribers of a run: in this process, or in child processes.
pub enum Clients {
    Local(Swarm),
    Spread(Vec<ClientProcess>),
}

pub struct ClientProcess {
    child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
}

impl Clients {
    /// The live count of `next` frames received, when there is one (`--window`, one
    /// client process).
    pub fn received(&self) -> Option<std::sync::Arc<std::sync::atomic::AtomicU64>> {
        match self {
            Clients::Local(swarm) => swarm.received.clone(),
            Clients::Spread(_) => None,
        }
    }

    /// Starts connecting every subscriber.
    pub fn start(args: &Args) -> anyhow::Result<Self> {
        let k = args.connections.div_ceil(args.per_process);
        if k <= 1 {
            return Ok(Clients::Local(Swarm::start(Plan::from_args(
                args,
                args.connections,
                0,
            ))));
        }
        anyhow::ensure!(k < 255, "too many client processes ({k})");
        let exe = std::env::current_exe().context("locating fanout-bench")?;
        let mut offset = 0;
        let mut children = Vec::with_capacity(k);
        for i in 0..k {
            let share = args.connections / k + usize::from(i < args.connections % k);
            let source = IpAddr::V4(Ipv4Addr::new(127, 0, 0, i as u8 + 1));
            let mut cmd = Command::new(&exe);
            cmd.arg("--child")
                .args(["--connections", &share.to_string()])
                .args(["--conn-offset", &offset.to_string()])
                .args(["--source-ip", &source.to_string()])
                .args(["--subscriptions", &args.subscriptions.to_string()])
                .args(["--channels", &args.channels.to_string()])
                .args(["--shapes", &args.shapes.to_string()])
                .args(["--field", args.field.flag()])
                .args(["--events", &args.events.to_string()])
                .args([
                    "--connect-concurrency",
                    &args.connect_concurrency.to_string(),
                ])
                .args(["--ready-secs", &args.ready_secs.to_string()]);
            for url in &args.urls {
                cmd.args(["--url", url]);
            }
            if args.idle {
                cmd.arg("--idle");
            }
            let mut child = cmd
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .kill_on_drop(true)
                .spawn()
                .context("starting a client process")?;
            let stdin = child.stdin.take().context("child stdin")?;
            let stdout = child.stdout.take().context("child stdout")?;
            children.push(ClientProcess {
                child,
                stdin,
                stdout: BufReader::new(stdout).lines(),
            });
            offset += share;
        }
        Ok(Clients::Spread(children))
    }

    /// Number of client processes.
    pub fn processes(&self) -> usize {
        match self {
            Clients::Local(_) => 1,
            Clients::Spread(c) => c.len(),
        }
    }

    /// Waits for every subscriber; returns how many did not get ready.
    pub async fn ready(&mut self, within: Duration) -> anyhow::Result<usize> {
        match self {
            Clients::Local(swarm) => Ok(swarm.ready(within).await),
            Clients::Spread(children) => {
                let mut not_ready = 0;
                for c in children {
                    let line =
                        tokio::time::timeout(within + Duration::from_secs(5), c.stdout.next_line())
                            .await
                            .context("a client process did not get ready")??
                            .context("a client process exited")?;
                    let n = line
                        .strip_prefix("READY ")
                        .and_then(|n| n.parse::<usize>().ok())
                        .with_context(|| {
                            format!("unexpected line from a client process: {line}")
                        })?;
                    not_ready += n;
                }
                Ok(not_ready)
            }
        }
    }

    /// Lets the subscribers drain for up to `drain`, stops them, and merges their tallies.
    pub async fn finish(self, drain: Duration) -> anyhow::Result<Tally> {
        match self {
            Clients::Local(swarm) => Ok(swarm.finish(drain).await),
            Clients::Spread(mut children) => {
                for c in &mut children {
                    let line = format!("FINISH {}\n", drain.as_millis());
                    c.stdin.write_all(line.as_bytes()).await?;
                    c.stdin.flush().await?;
                }
                let mut total = Tally::new();
                for mut c in children {
                    let line = c
                        .stdout
                        .next_line()
                        .await?
                        .context("a client process exited without a result")?;
                    let json = line.strip_prefix("RESULT ").with_context(|| {
                        format!("unexpected line from a client process: {line}")
                    })?;
                    let tally: Tally = serde_json::from_str(json)?;
                    total.merge(&tally);
                    let _ = c.child.wait().await;
                }
                Ok(total)
            }
        }
    }
}

/// Main of a child process: subscribe, report ready, drain when told, report the tally.
pub async fn child_main(args: &Args) -> anyhow::Result<()> {
    let plan = Plan::from_args(args, args.connections, args.conn_offset);
    let mut swarm = Swarm::start(plan);
    let not_ready = swarm.ready(Duration::from_secs(args.ready_secs)).await;
    println!("READY {not_ready}");
    let mut stdin = BufReader::new(tokio::io::stdin()).lines();
    let line = stdin.next_line().await?.unwrap_or_default();
    let drain_ms: u64 = line
        .strip_prefix("FINISH ")
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let tally = swarm.finish(Duration::from_millis(drain_ms)).await;
    println!("RESULT {}", serde_json::to_string(&tally)?);
    Ok(())
}
