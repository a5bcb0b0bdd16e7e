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
                // The schema has problems, but its Subscription fields are usually still
                // readable: use them so resolvers are checked against them too.
                declared_subscription_fields(&sdl, &name)
            }
        },
    };
    if let Some(resolvers) = &args.resolvers {
        let fields_known = !fields.is_empty() || problems.is_empty();
        for d in fanout_resolver_worker::check_resolvers(resolvers, &fields) {
            // When not even the field names could be read, every field would look
            // unknown: report only the Python problems then.
            if !fields_known && d.message.contains("unknown Subscription field") {
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

/// The field names of the subscription root type as written, without validation.
fn declared_subscription_fields(sdl: &str, name: &str) -> Vec<String> {
    let schema = match apollo_compiler::Schema::parse(sdl, name) {
        Ok(schema) => schema,
        Err(with_errors) => with_errors.partial,
    };
    let root = schema
        .schema_definition
        .subscription
        .as_ref()
        .map(|n| n.name.to_string())
        .unwrap_or_else(|| "Subscription".to_owned());
    match schema.types.get(root.as_str()) {
        Some(apollo_compiler::schema::ExtendedType::Object(object)) => {
            object.fields.keys().map(ToString::to_string).collect()
        }
        _ => Vec::new(),
    }
}
