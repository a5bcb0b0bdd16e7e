//! The `python_resolver` micro-benchmark embeds CPython: give the bench binaries an
//! rpath to the directory of the `libpython` that pyo3 links (the interpreter named by
//! `PYO3_PYTHON`, else `python3`), as the worker binary has. The load generator itself
//! does not link Python.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=PYO3_PYTHON");
    let python = std::env::var("PYO3_PYTHON").unwrap_or_else(|_| "python3".into());
    let libdir = Command::new(&python)
        .args([
            "-c",
            "import sysconfig; print(sysconfig.get_config_var('LIBDIR') or '')",
        ])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    if !libdir.is_empty() {
        println!("cargo:rustc-link-arg-benches=-Wl,-rpath,{libdir}");
    }
}
