//! `fanout-cli`: the `fanout` command and the cluster role binaries `fanout-edge` and
//! `fanout-router`, which share its configuration (authentication, limits, TLS,
//! publisher grants).
//!
//! - [`standalone`]: every role in one process on the in-memory bus.
//! - [`edge_role`], [`router_role`]: one role per process, joined by NATS and gRPC.
//! - [`publish`], [`subscribe`]: small clients; [`check`]: schema and resolver checks.
//! - [`config`]: flags, `FANOUT_*` variables and the YAML file of `fanout standalone`,
//!   with the [`config::auth`] and [`config::limits`] parts the role binaries reuse.
//! - [`example`]: the bundled example; [`key_reload`]: JWT key file reloading;
//!   [`edge_tasks`]: an edge's delivery loop and key reload, for both edge binaries.

/// mimalloc instead of glibc's malloc, for `fanout`, `fanout-edge` and `fanout-router`
/// alike: every delivery allocates its frames and frees them once written, from several
/// threads, and glibc's arenas spent a quarter of the edge's CPU on that under a burst
/// (benches/README.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub mod check;
pub mod config;
pub mod edge_role;
pub mod edge_tasks;
pub mod example;
pub mod key_reload;
pub mod publish;
pub mod router_role;
pub mod schema_file;
pub mod standalone;
pub mod subscribe;
