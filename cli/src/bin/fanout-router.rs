//! `fanout-router`: see [`fanout_cli::router_role`].

fn main() -> std::process::ExitCode {
    fanout_cli::router_role::main()
}
