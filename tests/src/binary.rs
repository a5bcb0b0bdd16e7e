//! Builds the `fanout` binary of this checkout, once per test process.
//!
//! `CARGO_BIN_EXE_fanout` only exists for tests of the package that defines the binary,
//! so this crate runs `cargo build -p fanout-cli --bin fanout` itself and takes the
//! executable's path from cargo's JSON messages. Cargo decides whether anything needs
//! rebuilding, so `cargo test` always runs the binary of the sources on disk.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use anyhow::{Result, anyhow};
use serde_json::Value;

static FANOUT: OnceLock<Result<PathBuf, String>> = OnceLock::new();

/// Root of the cargo workspace (the parent of `tests/`).
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// Path of the freshly built `fanout` binary; builds it on first use.
///
/// Blocks while cargo runs (it may wait for the shared target dir's lock).
pub fn fanout_bin() -> Result<&'static Path> {
    match FANOUT.get_or_init(build) {
        Ok(path) => Ok(path.as_path()),
        Err(e) => Err(anyhow!("{e}")),
    }
}

fn build() -> Result<PathBuf, String> {
    let mut paths = cargo_build(&["fanout-cli"], &["fanout"])?;
    paths
        .pop()
        .ok_or_else(|| "cargo reported no `fanout` executable".to_string())
}

/// Builds `bins` of `packages` with cargo, in the tests' own profile, and returns the
/// executables' paths in the order of `bins`, as cargo's JSON messages report them.
pub fn cargo_build(packages: &[&str], bins: &[&str]) -> Result<Vec<PathBuf>, String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(&cargo);
    cmd.current_dir(workspace_root()).arg("build");
    for package in packages {
        cmd.args(["-p", package]);
    }
    for bin in bins {
        cmd.args(["--bin", bin]);
    }
    cmd.arg("--message-format=json-render-diagnostics");
    // Test the binaries of the same profile as the tests themselves.
    if !cfg!(debug_assertions) {
        cmd.arg("--release");
    }
    let what = bins.join(", ");
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {cargo:?} to build {what}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "building {what} failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    bins.iter()
        .map(|name| {
            stdout
                .lines()
                .filter_map(|line| serde_json::from_str::<Value>(line).ok())
                .filter(|msg| {
                    msg["reason"] == "compiler-artifact" && msg["target"]["name"] == *name
                })
                .find_map(|msg| msg["executable"].as_str().map(PathBuf::from))
                .ok_or_else(|| format!("cargo reported no `{name}` executable"))
        })
        .collect()
}
