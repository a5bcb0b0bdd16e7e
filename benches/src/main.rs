//! `fanout-bench`: a load generator for Fanout and its peers.
//!
//! Opens `--connections` graphql-transport-ws connections with `--subscriptions` each over
//! `--channels` channels, publishes `--events` events per channel through Fanout's gRPC
//! `PublishStream` (or `--publish` HTTP POST for peers) at `--rate`, and reports
//! deliveries per second, publish→deliver latency (the publish time travels in the
//! payload), lost/duplicated/reordered messages (sequence numbers), and the server's CPU
//! seconds and RSS (`--server-pid`). `--idle` measures memory per idle connection.
//!
//! Modules:
//! - [`args`]: the flags.
//! - [`workload`]: channels, subscription documents and stamped payloads.
//! - [`subscriber`]: the connections of one process (`Swarm`).
//! - [`spread`]: re-executing as several client processes above `--per-process`.
//! - [`publish`]: gRPC and HTTP publishers.
//! - [`procstat`]: CPU and memory of server pids from /proc.
//! - [`tally`]: counts and latency histogram, mergeable across processes.
//! - [`run`]: load and idle runs; [`report`]: the table and JSON.

mod args;
mod clock;
mod procstat;
mod publish;
mod report;
mod run;
mod spread;
mod subscriber;
mod tally;
mod workload;
mod ws_client;

use clap::Parser;

/// The same allocator as the servers'; the generator's own cost is part of every figure.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = args::Args::parse();
    args.validate()?;
    if args.child {
        return spread::child_main(&args).await;
    }
    let report = if args.idle {
        run::idle(&args).await?
    } else {
        run::load(&args).await?
    };
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        report.print_human();
    }
    Ok(())
}
