//! `fanout-router`: see [`fanout_cli::router_role`].

/// mimalloc instead of glibc's malloc: every delivery allocates its frames and frees them
/// once written, from several threads; glibc's arenas spent a quarter of the edge's CPU
/// on that (benches/README.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    fanout_cli::router_role::main()
}
