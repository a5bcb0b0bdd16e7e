//! A virtualenv's site-packages goes on sys.path; a venv of another Python is refused.

mod common;

use std::time::Duration;

use fanout_resolver_worker::{Error, PythonConfig, PythonRuntime, ResolveOutcome};
use serde_json::json;

const RESOLVERS: &str = "import fanout\nimport sys\nimport venv_only_pkg_fanout\n\n@fanout.resolver('where')\ndef where(e, a, c):\n    return {'answer': venv_only_pkg_fanout.ANSWER, 'pth': __import__('pth_only_pkg_fanout').X,\n            'on_path': [p for p in sys.path if 'fanout-rw-venv' in p]}\n";

#[test]
fn site_packages_of_the_virtualenv_is_importable() {
    let s = common::Scratch::new("venv");
    let (major, minor) = python_version();
    let site = format!("venv/lib/python{major}.{minor}/site-packages");
    s.write(
        "venv/pyvenv.cfg",
        &format!("home = /usr/bin\nversion = {major}.{minor}.0\n"),
    );
    s.write(&format!("{site}/venv_only_pkg_fanout.py"), "ANSWER = 42\n");
    // `.pth` files in site-packages are honoured, as in a real virtualenv.
    s.write("extra/pth_only_pkg_fanout.py", "X = 'pth'\n");
    s.write(
        &format!("{site}/extra.pth"),
        &format!("{}\n", s.path("extra").display()),
    );
    let path = s.write("app/resolvers.py", RESOLVERS);
    let config = PythonConfig::new(path)
        .with_virtualenv(s.path("venv"))
        .with_timeout(Duration::from_secs(1));
    let rt = PythonRuntime::start(config).expect("starts with the venv");
    let outcome = tokio::runtime::Runtime::new()
        .expect("tokio")
        .block_on(common::resolve_one(&rt, json!({}), "where"));
    let ResolveOutcome::Value(v) = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(v["answer"], json!(42));
    assert_eq!(v["pth"], json!("pth"));
    let on_path: Vec<String> = serde_json::from_value(v["on_path"].clone()).expect("list");
    let site_dir = std::fs::canonicalize(s.path(&site)).unwrap_or_else(|_| s.path(&site));
    assert!(
        on_path.iter().any(|p| p.ends_with("site-packages")
            && (p == site_dir.to_str().unwrap_or("") || p == s.path(&site).to_str().unwrap_or(""))),
        "{on_path:?}"
    );
}

#[test]
fn virtualenv_of_another_python_version_is_refused() {
    let s = common::Scratch::new("venv-other");
    s.write("venv/pyvenv.cfg", "version = 2.7.18\n");
    s.write("venv/lib/python2.7/site-packages/x.py", "");
    let path = s.write("resolvers.py", "import fanout\n");
    let err = PythonRuntime::start(PythonConfig::new(path).with_virtualenv(s.path("venv")))
        .expect_err("refused");
    assert!(
        matches!(&err, Error::VirtualenvVersion { venv, .. } if venv == "2.7"),
        "{err}"
    );
}

/// The embedded interpreter's version, asked from Python itself.
fn python_version() -> (u8, u8) {
    let s = common::Scratch::new("venv-version");
    let path = s.write("resolvers.py", "import fanout, sys\n\n@fanout.resolver('v')\ndef v(e, a, c):\n    return list(sys.version_info[:2])\n");
    let rt = PythonRuntime::start(PythonConfig::new(path)).expect("starts");
    let outcome = tokio::runtime::Runtime::new()
        .expect("tokio")
        .block_on(common::resolve_one(&rt, json!({}), "v"));
    match outcome {
        ResolveOutcome::Value(v) => (
            v[0].as_u64()
                .and_then(|n| u8::try_from(n).ok())
                .unwrap_or(3),
            v[1].as_u64()
                .and_then(|n| u8::try_from(n).ok())
                .unwrap_or(0),
        ),
        other => panic!("{other:?}"),
    }
}
