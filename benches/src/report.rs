//! The report of a run: one JSON object (`--json`) or a human table.

use serde::Serialize;

use crate::tally::Tally;

#[derive(Debug, Serialize)]
pub struct Report {
    pub label: String,
    /// `load` or `idle`.
    pub mode: &'static str,
    pub connections: usize,
    pub subscriptions_per_connection: usize,
    pub channels: usize,
    pub shapes: usize,
    pub field: &'static str,
    pub client_processes: usize,
    /// Connections that failed to subscribe within `--ready-secs`.
    pub not_ready: usize,
    pub published: u64,
    pub publish_seconds: f64,
    /// From the first publish to the last delivery.
    pub seconds: f64,
    pub expected_deliveries: u64,
    pub deliveries: u64,
    pub lost: u64,
    pub duplicates: u64,
    pub out_of_order: u64,
    pub failed_connections: u64,
    pub deliveries_per_second: f64,
    pub latency_us: Latency,
    pub server: Option<ServerUsage>,
    /// CPU seconds of the load generator itself during a load run (single-process runs
    /// only): it shares the machine with the server.
    pub generator_cpu_seconds: Option<f64>,
    /// Packets the kernel dropped during the run because an input backlog was full
    /// (/proc/net/softnet_stat; see `procstat::backlog_drops`).
    pub backlog_drops: Option<u64>,
    pub idle: Option<IdleMemory>,
    pub errors: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct Latency {
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
    pub mean: f64,
}

impl Latency {
    pub fn of(tally: &Tally) -> Self {
        let h = &tally.latency;
        Self {
            p50: h.value_at_quantile(0.5),
            p90: h.value_at_quantile(0.9),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
            mean: h.mean(),
        }
    }
}

/// The sampled server processes, summed over `pids`.
#[derive(Debug, Serialize)]
pub struct ServerUsage {
    pub pids: Vec<u32>,
    /// CPU seconds (user + system) spent between ready and the end of the run.
    pub cpu_seconds: f64,
    /// `cpu_seconds` per second of the run: cores kept busy.
    pub cpu_cores: f64,
    /// Deliveries per CPU second of the server.
    pub deliveries_per_cpu_second: f64,
    /// Highest summed RSS seen (sampled every 100 ms during the run).
    pub peak_rss_bytes: u64,
    /// Summed VmHWM at the end (each process's peak over its whole life).
    pub vm_hwm_bytes: u64,
    pub rss_before_bytes: u64,
    pub rss_after_bytes: u64,
}

/// Memory of idle, subscribed connections.
#[derive(Debug, Serialize)]
pub struct IdleMemory {
    /// Summed server RSS before the first connection.
    pub rss_before_bytes: u64,
    /// Summed server RSS with every connection subscribed and held.
    pub rss_after_bytes: u64,
    pub bytes_per_connection: f64,
    pub bytes_per_subscription: f64,
    pub held_seconds: u64,
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn ms(us: u64) -> String {
    format!("{:.2} ms", us as f64 / 1000.0)
}

impl Report {
    pub fn print_human(&self) {
        let row = |k: &str, v: String| println!("{k:<26}{v}");
        if !self.label.is_empty() {
            row("run", self.label.clone());
        }
        row(
            "connections",
            format!(
                "{} x {} subscriptions, {} channels, {} shapes, field {} ({} client processes)",
                self.connections,
                self.subscriptions_per_connection,
                self.channels,
                self.shapes,
                self.field,
                self.client_processes
            ),
        );
        if self.not_ready > 0 {
            row("not ready", self.not_ready.to_string());
        }
        if let Some(idle) = &self.idle {
            row(
                "server RSS",
                format!(
                    "{} before, {} with all connections held {} s",
                    mib(idle.rss_before_bytes),
                    mib(idle.rss_after_bytes),
                    idle.held_seconds
                ),
            );
            row(
                "memory per connection",
                format!(
                    "{:.0} bytes ({:.0} per subscription)",
                    idle.bytes_per_connection, idle.bytes_per_subscription
                ),
            );
        } else {
            row(
                "published",
                format!("{} events in {:.2} s", self.published, self.publish_seconds),
            );
            row(
                "deliveries",
                format!(
                    "{} of {} (lost {}, duplicates {}, out of order {})",
                    self.deliveries,
                    self.expected_deliveries,
                    self.lost,
                    self.duplicates,
                    self.out_of_order
                ),
            );
            row(
                "deliveries/s",
                format!(
                    "{:.0} (over {:.2} s)",
                    self.deliveries_per_second, self.seconds
                ),
            );
            let l = &self.latency_us;
            row(
                "latency p50/p90/p99",
                format!("{} / {} / {}", ms(l.p50), ms(l.p90), ms(l.p99)),
            );
            row(
                "latency p99.9/max",
                format!("{} / {}", ms(l.p999), ms(l.max)),
            );
        }
        if self.failed_connections > 0 {
            row("failed connections", self.failed_connections.to_string());
        }
        if let (Some(s), None) = (&self.server, &self.idle) {
            row(
                "server CPU",
                format!(
                    "{:.2} s ({:.2} cores, {:.0} deliveries per CPU second)",
                    s.cpu_seconds, s.cpu_cores, s.deliveries_per_cpu_second
                ),
            );
            row(
                "server RSS",
                format!(
                    "peak {} (VmHWM {}), {} before, {} after",
                    mib(s.peak_rss_bytes),
                    mib(s.vm_hwm_bytes),
                    mib(s.rss_before_bytes),
                    mib(s.rss_after_bytes)
                ),
            );
        }
        if let Some(cpu) = self.generator_cpu_seconds {
            row(
                "generator CPU",
                format!(
                    "{cpu:.2} s ({:.0} deliveries per CPU second)",
                    self.deliveries as f64 / cpu.max(1e-9)
                ),
            );
        }
        if let Some(drops) = self.backlog_drops.filter(|&d| d > 0) {
            row(
                "kernel backlog drops",
                format!(
                    "{drops} packets (each retransmitted after >= 200 ms; raise net.core.netdev_max_backlog)"
                ),
            );
        }
        for e in &self.errors {
            row("error", e.clone());
        }
    }
}
