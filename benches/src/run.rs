//! The two kinds of run: load (publish and measure deliveries) and idle (hold
//! connections and measure the server's memory per connection).

use std::time::{Duration, Instant};

use crate::args::Args;
use crate::clock::now_us;
use crate::procstat::{self, PeakSampler};
use crate::publish::{self, Schedule};
use crate::report::{IdleMemory, Latency, Report, ServerUsage};
use crate::spread::Clients;
use crate::tally::Tally;

/// Subscribes, publishes, waits for the deliveries, and reports.
pub async fn load(args: &Args) -> anyhow::Result<Report> {
    let mut clients = Clients::start(args)?;
    let not_ready = clients.ready(Duration::from_secs(args.ready_secs)).await?;
    let before = sample(args)?;
    let own_before = procstat::own_cpu_seconds()?;
    let drops_before = procstat::backlog_drops();
    let sampler = PeakSampler::start(args.server_pids.clone());
    let started_us = now_us();
    let started = Instant::now();
    let schedule = Schedule::from_args(args, clients.received());
    let scheduled = schedule.total();
    let published = publish::run(args, schedule).await?;
    let publish_seconds = started.elapsed().as_secs_f64();
    let processes = clients.processes();
    let tally = clients.finish(Duration::from_secs(args.drain_secs)).await?;
    let after = sample(args)?;
    let own_cpu = procstat::own_cpu_seconds()? - own_before;
    let drops = drops_before
        .zip(procstat::backlog_drops())
        .map(|(before, after)| after.saturating_sub(before));
    let peak = sampler.stop();
    let seconds = if tally.last_delivery_us > started_us {
        (tally.last_delivery_us - started_us) as f64 / 1e6
    } else {
        started.elapsed().as_secs_f64()
    };
    let mut report = base_report(args, processes, not_ready, &tally);
    if published < scheduled {
        report.errors.push(format!(
            "publishing stopped after {published} of {scheduled} events: no delivery arrived \
             for {} s while --window {} events were outstanding (failed connections: {}); \
             the rest count as lost",
            publish::WINDOW_STALL.as_secs(),
            args.window,
            tally.failed_connections,
        ));
    }
    report.mode = "load";
    report.published = published;
    report.publish_seconds = publish_seconds;
    report.seconds = seconds;
    report.deliveries_per_second = tally.received as f64 / seconds.max(1e-9);
    // Client processes report their CPU only once they exit, connection set-up
    // included, so it is given for single-process runs only.
    report.generator_cpu_seconds = (processes == 1).then_some(own_cpu);
    report.backlog_drops = drops;
    if let (Some(before), Some(after)) = (before, after) {
        let cpu = after.cpu_seconds - before.cpu_seconds;
        report.server = Some(ServerUsage {
            pids: args.server_pids.clone(),
            cpu_seconds: cpu,
            cpu_cores: cpu / started.elapsed().as_secs_f64().max(1e-9),
            deliveries_per_cpu_second: tally.received as f64 / cpu.max(1e-9),
            peak_rss_bytes: peak.max(after.rss_bytes),
            vm_hwm_bytes: after.hwm_bytes,
            rss_before_bytes: before.rss_bytes,
            rss_after_bytes: after.rss_bytes,
        });
    }
    Ok(report)
}

/// Opens and subscribes every connection, holds them, and reports the growth of the
/// server's RSS per connection.
pub async fn idle(args: &Args) -> anyhow::Result<Report> {
    let before = procstat::sample(&args.server_pids)?;
    let mut clients = Clients::start(args)?;
    let not_ready = clients.ready(Duration::from_secs(args.ready_secs)).await?;
    tokio::time::sleep(Duration::from_secs(args.idle_secs)).await;
    let after = procstat::sample(&args.server_pids)?;
    let processes = clients.processes();
    let tally = clients.finish(Duration::ZERO).await?;
    let held = args.connections.saturating_sub(not_ready).max(1);
    let grown = after.rss_bytes.saturating_sub(before.rss_bytes) as f64;
    let mut report = base_report(args, processes, not_ready, &tally);
    report.mode = "idle";
    report.idle = Some(IdleMemory {
        rss_before_bytes: before.rss_bytes,
        rss_after_bytes: after.rss_bytes,
        bytes_per_connection: grown / held as f64,
        bytes_per_subscription: grown / (held * args.subscriptions) as f64,
        held_seconds: args.idle_secs,
    });
    report.server = Some(ServerUsage {
        pids: args.server_pids.clone(),
        cpu_seconds: after.cpu_seconds - before.cpu_seconds,
        cpu_cores: 0.0,
        deliveries_per_cpu_second: 0.0,
        peak_rss_bytes: after.rss_bytes,
        vm_hwm_bytes: after.hwm_bytes,
        rss_before_bytes: before.rss_bytes,
        rss_after_bytes: after.rss_bytes,
    });
    Ok(report)
}

fn sample(args: &Args) -> anyhow::Result<Option<procstat::Sample>> {
    if args.server_pids.is_empty() {
        Ok(None)
    } else {
        procstat::sample(&args.server_pids).map(Some)
    }
}

fn base_report(args: &Args, processes: usize, not_ready: usize, tally: &Tally) -> Report {
    Report {
        label: args.label.clone(),
        mode: "",
        connections: args.connections,
        subscriptions_per_connection: args.subscriptions,
        channels: args.channels,
        shapes: args.shapes,
        field: args.field.flag(),
        client_processes: processes,
        not_ready,
        published: 0,
        publish_seconds: 0.0,
        seconds: 0.0,
        expected_deliveries: tally.expected,
        deliveries: tally.received,
        lost: tally.lost(),
        duplicates: tally.duplicates,
        out_of_order: tally.out_of_order,
        failed_connections: tally.failed_connections,
        deliveries_per_second: 0.0,
        latency_us: Latency::of(tally),
        server: None,
        generator_cpu_seconds: None,
        backlog_drops: None,
        idle: None,
        errors: tally.errors.clone(),
    }
}
