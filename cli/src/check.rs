//! `fanout check`: validate a schema and a resolvers file, reporting every problem with
//! its file and line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use fanout_core::graphql::Schema;

/// Arguments of `fanout check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// GraphQL SDL schema file.
    #[arg(long, env = "FANOUT_SCHEMA", value_name = "FILE")]
    pub schema: PathBuf,
    /// Python resolvers file.
    #[arg(long, env = "FANOUT_RESOLVERS", value_name = "FILE.py")]
    pub resolvers: Option<PathBuf>,
}

/// Entry point of the subcommand.
pub fn main(args: CheckArgs) -> ExitCode {
    let mut problems = Vec::new();
    let name = args.schema.display().to_string();
    let fields: Vec<String> = match std::fs::read_to_string(&args.schema) {
        Err(e) => {
            problems.push(format!("{name}: cannot read: {e}"));
            Vec::new()
        }
        Ok(sdl) => match Schema::parse(&sdl, &name) {
            Ok(schema) => schema
                .subscription_fields()
                .map(|f| f.name.clone())
                .collect(),
            Err(errors) => {
                problems.extend(
                    errors
                        .0
                        .iter()
                        .map(|d| format!("{}:{}: {}", d.file, d.line, d.message)),
                );
                Vec::new()
            }
        },
    };
    if let Some(resolvers) = &args.resolvers {
        let schema_ok = problems.is_empty();
        for d in fanout_resolver_worker::check_resolvers(resolvers, &fields) {
            // Without a valid schema every field would look unknown: report only the
            // Python problems then.
            if !schema_ok && d.message.contains("unknown Subscription field") {
                continue;
            }
            problems.push(format!("{}:{}: {}", d.file, d.line, d.message));
        }
    }
    if problems.is_empty() {
        println!("ok");
        ExitCode::SUCCESS
    } else {
        for p in &problems {
            println!("{p}");
        }
        ExitCode::from(1)
    }
}
