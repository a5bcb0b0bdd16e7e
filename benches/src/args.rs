//! Command-line flags of `fanout-bench`.

use std::net::IpAddr;

use clap::{Parser, ValueEnum};

/// Load generator for Fanout and its peers: opens N graphql-transport-ws connections with
/// S subscriptions each over C channels, publishes at a target rate and reports
/// deliveries per second, publish→deliver latency, lost and duplicated messages, and the
/// server's CPU seconds and memory (read from /proc for `--server-pid`).
#[derive(Debug, Clone, Parser)]
#[command(name = "fanout-bench", version, about)]
pub struct Args {
    /// WebSocket endpoint; repeat to spread connections round-robin over several edges.
    #[arg(long = "url", default_value = "ws://127.0.0.1:8080/graphql")]
    pub urls: Vec<String>,
    /// gRPC publish endpoint (Fanout's `PublishStream`).
    #[arg(long, default_value = "http://127.0.0.1:50051")]
    pub grpc: String,
    /// Publish with HTTP POST to this URL instead of gRPC (for peers without Fanout's
    /// API). The body is `{"channel": "chat.<room>", "payload": {...}}`.
    #[arg(long)]
    pub publish: Option<String>,
    /// WebSocket connections in total (over all client processes).
    #[arg(long, default_value_t = 1000)]
    pub connections: usize,
    /// Subscriptions per connection.
    #[arg(long, default_value_t = 1)]
    pub subscriptions: usize,
    /// Distinct channels; subscription g (counted over all connections) listens on g % C.
    #[arg(long, default_value_t = 1)]
    pub channels: usize,
    /// Distinct selection sets (shapes); subscription g uses shape g % shapes. With more
    /// than one, each shape selects the stamped field under its own alias.
    #[arg(long, default_value_t = 1)]
    pub shapes: usize,
    /// Subscription field: `chat` (no resolver) or `order` (Python resolver).
    #[arg(long, value_enum, default_value_t = Field::Chat)]
    pub field: Field,
    /// Events published per channel.
    #[arg(long, default_value_t = 1000)]
    pub events: u64,
    /// Target publish rate in events per second over all channels; 0 = as fast as possible.
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// With `--rate 0`: publish as fast as the subscribers keep up, with at most this
    /// many events' deliveries outstanding (closed loop; 0 = publish everything at once).
    /// Sustained throughput instead of how fast a burst drains. One client process only.
    #[arg(long, default_value_t = 0)]
    pub window: u64,
    /// Server process to sample (CPU seconds, RSS); repeat to sum several (a cluster).
    #[arg(long = "server-pid")]
    pub server_pids: Vec<u32>,
    /// Idle mode: open the connections, subscribe, wait `--idle-secs`, and report the
    /// server's memory per connection instead of publishing.
    #[arg(long)]
    pub idle: bool,
    /// Seconds to hold idle connections before measuring.
    #[arg(long, default_value_t = 5)]
    pub idle_secs: u64,
    /// Most connections per client process (the machine allows 20,000 open files per
    /// process); above it the generator re-executes itself as several processes, each
    /// bound to its own source address 127.0.0.(k+1).
    #[arg(long, default_value_t = 19_000)]
    pub per_process: usize,
    /// WebSocket handshakes in flight at once, per client process.
    #[arg(long, default_value_t = 200)]
    pub connect_concurrency: usize,
    /// Seconds to wait for outstanding deliveries after the last publish.
    #[arg(long, default_value_t = 30)]
    pub drain_secs: u64,
    /// Seconds allowed for all connections to subscribe.
    #[arg(long, default_value_t = 120)]
    pub ready_secs: u64,
    /// A name for this run, copied into the report.
    #[arg(long, default_value = "")]
    pub label: String,
    /// Print the report as one JSON object.
    #[arg(long)]
    pub json: bool,

    /// Internal: run as a client process of a spread run (stdin/stdout protocol).
    #[arg(long, hide = true)]
    pub child: bool,
    /// Internal: index of this process's first connection in the whole run.
    #[arg(long, hide = true, default_value_t = 0)]
    pub conn_offset: usize,
    /// Internal: local source address of this process's connections.
    #[arg(long, hide = true)]
    pub source_ip: Option<IpAddr>,
}

/// Which subscription field of the bundled example is exercised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Field {
    /// `chatMessage(room:)`: passes events through, no resolver.
    Chat,
    /// `orderUpdated(id:)`: every event goes through the Python resolver.
    Order,
}

impl Field {
    /// Value for `--field` when a child process is started.
    pub fn flag(self) -> &'static str {
        match self {
            Field::Chat => "chat",
            Field::Order => "order",
        }
    }
}

impl Args {
    /// Checks the combinations clap cannot express.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(self.channels >= 1, "--channels must be at least 1");
        anyhow::ensure!(self.shapes >= 1, "--shapes must be at least 1");
        anyhow::ensure!(
            self.subscriptions >= 1,
            "--subscriptions must be at least 1"
        );
        anyhow::ensure!(self.per_process >= 1, "--per-process must be at least 1");
        anyhow::ensure!(!self.urls.is_empty(), "--url is required");
        anyhow::ensure!(
            self.connect_concurrency >= 1,
            "--connect-concurrency must be at least 1"
        );
        anyhow::ensure!(
            self.window == 0 || self.rate == 0,
            "--window paces the publisher itself: use it with --rate 0"
        );
        anyhow::ensure!(
            self.window == 0 || self.connections <= self.per_process,
            "--window needs the subscribers in this process (at most --per-process connections)"
        );
        anyhow::ensure!(
            !(self.idle && self.server_pids.is_empty()) || self.child,
            "--idle measures the server's memory: give --server-pid"
        );
        Ok(())
    }
}
