//! `fanout`: the command-line entry point.
//!
//! - `fanout standalone`: every role in one process on the in-memory bus ([`standalone`]).
//! - `fanout publish`: publish one event over gRPC ([`publish`]).
//! - `fanout subscribe`: a small graphql-transport-ws client ([`subscribe`]).
//! - `fanout check`: validate a schema and a resolvers file ([`check`]).
//!
//! The subcommands live in the `fanout_cli` library, which the role binaries
//! `fanout-edge` and `fanout-router` share.

use std::process::ExitCode;

use fanout_cli::{check, config, publish, standalone, subscribe};

use clap::{Parser, Subcommand};

/// Fanout delivers GraphQL subscriptions to very many WebSocket clients.
#[derive(Debug, Parser)]
#[command(name = "fanout", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run every role (edge, router, resolver worker) in one process on an in-memory bus.
    Standalone(Box<config::StandaloneArgs>),
    /// Publish one event through the gRPC publish API and print its offset.
    Publish(publish::PublishArgs),
    /// Subscribe over graphql-transport-ws and print each `next` payload as a JSON line.
    Subscribe(subscribe::SubscribeArgs),
    /// Validate a schema and a resolvers file; print every problem with file and line.
    Check(check::CheckArgs),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // `--help` and `--version` are not errors; bad flags exit with EX_USAGE.
            let code = if e.use_stderr() { 64 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(async move {
        match cli.command {
            Command::Standalone(args) => standalone::main(*args).await,
            Command::Publish(args) => publish::main(args).await,
            Command::Subscribe(args) => subscribe::main(args).await,
            Command::Check(args) => check::main(args),
        }
    })
}
