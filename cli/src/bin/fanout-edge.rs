//! `fanout-edge`: see [`fanout_cli::edge_role`].

fn main() -> std::process::ExitCode {
    fanout_cli::edge_role::main()
}
