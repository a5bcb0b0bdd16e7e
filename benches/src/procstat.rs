//! Server CPU time and memory, read from /proc for one or several pids (summed).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use serde::Serialize;
use tokio::task::JoinHandle;

/// Clock ticks per second of utime/stime (USER_HZ, 100 on Linux x86-64 and arm64).
const TICKS_PER_SECOND: f64 = 100.0;

/// One reading of all sampled processes, summed.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Sample {
    /// utime + stime, in seconds.
    pub cpu_seconds: f64,
    /// VmRSS in bytes.
    pub rss_bytes: u64,
    /// VmHWM (the peak RSS of each process's life) in bytes.
    pub hwm_bytes: u64,
}

/// Reads /proc/PID/stat and /proc/PID/status of every pid and sums them.
pub fn sample(pids: &[u32]) -> anyhow::Result<Sample> {
    let mut total = Sample::default();
    for &pid in pids {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .with_context(|| format!("server pid {pid} is not running"))?;
        total.cpu_seconds +=
            cpu_ticks(&stat).with_context(|| format!("unexpected /proc/{pid}/stat"))? as f64
                / TICKS_PER_SECOND;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .with_context(|| format!("server pid {pid} is not running"))?;
        total.rss_bytes += status_kib(&status, "VmRSS:").unwrap_or(0) * 1024;
        total.hwm_bytes += status_kib(&status, "VmHWM:").unwrap_or(0) * 1024;
    }
    Ok(total)
}

/// Packets dropped so far because a CPU's input backlog was full (second column of
/// /proc/net/softnet_stat, summed over CPUs). On loopback each drop is retransmitted
/// after at least 200 ms, so a run with drops has latency tails that are the machine's.
pub fn backlog_drops() -> Option<u64> {
    let table = std::fs::read_to_string("/proc/net/softnet_stat").ok()?;
    table
        .lines()
        .map(|line| {
            let column = line.split_whitespace().nth(1)?;
            u64::from_str_radix(column, 16).ok()
        })
        .sum()
}

/// CPU seconds (user + system) of this process and of its children that have been
/// waited for.
pub fn own_cpu_seconds() -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").context("reading /proc/self/stat")?;
    let rest = &stat[stat.rfind(')').context("unexpected /proc/self/stat")? + 1..];
    // utime, stime, cutime, cstime: fields 14 to 17.
    let ticks: u64 = rest
        .split_whitespace()
        .skip(11)
        .take(4)
        .map(|f| f.parse::<u64>().context("unexpected /proc/self/stat"))
        .sum::<anyhow::Result<u64>>()?;
    Ok(ticks as f64 / TICKS_PER_SECOND)
}

/// utime + stime (fields 14 and 15) of a /proc/PID/stat line. The command name (field 2)
/// may contain spaces, so fields are counted after its closing parenthesis.
fn cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

fn status_kib(status: &str, key: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(key))?;
    line[key.len()..].split_whitespace().next()?.parse().ok()
}

/// Samples the summed RSS every 100 ms and keeps the peak until stopped.
pub struct PeakSampler {
    peak: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl PeakSampler {
    pub fn start(pids: Vec<u32>) -> Self {
        let peak = Arc::new(AtomicU64::new(0));
        let seen = peak.clone();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            loop {
                tick.tick().await;
                if let Ok(s) = sample(&pids) {
                    seen.fetch_max(s.rss_bytes, Ordering::Relaxed);
                }
            }
        });
        Self { peak, task }
    }

    /// Stops sampling and returns the highest summed RSS seen.
    pub fn stop(self) -> u64 {
        self.task.abort();
        self.peak.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let s = sample(&[std::process::id()]).expect("own /proc entry");
        assert!(s.rss_bytes > 0 && s.hwm_bytes >= s.rss_bytes);
    }

    #[test]
    fn stat_with_spaces_in_the_name() {
        let stat = "42 (a b) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 1 0";
        assert_eq!(cpu_ticks(stat), Some(300));
    }
}
