//! Runs `fanout` subcommands as a user would, bounded in time.

use std::ffi::OsStr;
use std::process::{Output, Stdio};
use std::time::Duration;

use anyhow::{Context as _, Result};
use tokio::process::Command;

use crate::binary::fanout_bin;
use crate::within;

/// Runs `fanout ARGS...` to completion within `limit`; the process is killed on timeout.
pub async fn run<I, S>(args: I, limit: Duration) -> Result<Output>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let bin = fanout_bin()?;
    let args: Vec<_> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
    let child = Command::new(bin)
        .args(&args)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot spawn {}", bin.display()))?;
    let what = format!("`fanout {}` to exit", describe(&args));
    within(limit, &what, child.wait_with_output())
        .await?
        .with_context(|| format!("running `fanout {}`", describe(&args)))
}

/// Spawns `fanout ARGS...` without waiting (killed when the child is dropped).
pub fn spawn<I, S>(args: I) -> Result<tokio::process::Child>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let bin = fanout_bin()?;
    Command::new(bin)
        .args(args)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot spawn {}", bin.display()))
}

/// stdout and stderr of `out`, for assertion messages.
pub fn show(out: &Output) -> String {
    format!(
        "exit: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn describe(args: &[std::ffi::OsString]) -> String {
    args.iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}
