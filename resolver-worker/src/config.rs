//! [`PythonConfig`] and locating a virtualenv's `site-packages`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{Error, Result};

/// Default time a resolver call may take: 1 s.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);

/// How to start the embedded Python resolvers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PythonConfig {
    /// The resolvers file (`resolvers.py`). Its directory goes on `sys.path`, so it can
    /// import sibling modules.
    pub resolvers: PathBuf,
    /// A virtualenv whose `lib/python3.X/site-packages` is added to `sys.path`. When
    /// `None`, the `VIRTUAL_ENV` environment variable is used if set.
    pub virtualenv: Option<PathBuf>,
    /// How long one resolver call may take (default [`DEFAULT_TIMEOUT`]).
    pub timeout: Duration,
}

impl PythonConfig {
    /// A configuration for `resolvers` with no explicit virtualenv and the default
    /// timeout.
    pub fn new(resolvers: impl Into<PathBuf>) -> Self {
        Self {
            resolvers: resolvers.into(),
            virtualenv: None,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// Sets the virtualenv.
    pub fn with_virtualenv(mut self, virtualenv: impl Into<PathBuf>) -> Self {
        self.virtualenv = Some(virtualenv.into());
        self
    }

    /// Sets the per-call timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The virtualenv to use: the configured one, else `VIRTUAL_ENV`.
    pub(crate) fn effective_virtualenv(&self) -> Option<PathBuf> {
        self.virtualenv.clone().or_else(|| {
            std::env::var_os("VIRTUAL_ENV")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        })
    }
}

/// The `site-packages` directory of `venv` for Python `major.minor`, or an error when
/// the virtualenv is missing or was made for another Python version.
pub(crate) fn site_packages(venv: &Path, major: u8, minor: u8) -> Result<PathBuf> {
    let interpreter = format!("{major}.{minor}");
    let bad = |reason: String| Error::Virtualenv {
        path: venv.to_owned(),
        reason,
    };
    if !venv.is_dir() {
        return Err(bad("not a directory".into()));
    }
    let mismatch = |found: String| Error::VirtualenvVersion {
        path: venv.to_owned(),
        venv: found,
        interpreter: interpreter.clone(),
    };
    match pyvenv_cfg_version(&venv.join("pyvenv.cfg")) {
        Some(version) if version != interpreter => return Err(mismatch(version)),
        _ => {}
    }
    let wanted = venv
        .join("lib")
        .join(format!("python{interpreter}"))
        .join("site-packages");
    if wanted.is_dir() {
        return Ok(wanted);
    }
    // Tell a version mismatch apart from a broken virtualenv.
    let others: Vec<String> = std::fs::read_dir(venv.join("lib"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let version = name.strip_prefix("python")?;
            entry
                .path()
                .join("site-packages")
                .is_dir()
                .then(|| version.to_owned())
        })
        .collect();
    match others.into_iter().next() {
        Some(version) => Err(mismatch(version)),
        None => Err(bad(format!("no {} directory", wanted.display()))),
    }
}

/// `major.minor` from a `pyvenv.cfg` (`version = 3.11.7` or `version_info = 3.11.7.final.0`).
fn pyvenv_cfg_version(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines().find_map(|line| {
        let (key, value) = line.split_once('=')?;
        if !matches!(key.trim(), "version" | "version_info") {
            return None;
        }
        let mut parts = value.trim().split('.');
        let major = parts.next()?.trim();
        let minor = parts.next()?.trim();
        (major.parse::<u8>().is_ok() && minor.parse::<u8>().is_ok())
            .then(|| format!("{major}.{minor}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "fanout-venv-{name}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create scratch dir");
        dir
    }

    #[test]
    fn finds_matching_site_packages() {
        let venv = scratch("ok");
        let sp = venv.join("lib/python3.11/site-packages");
        std::fs::create_dir_all(&sp).expect("mkdir");
        std::fs::write(venv.join("pyvenv.cfg"), "home = /usr\nversion = 3.11.7\n").expect("write");
        assert_eq!(site_packages(&venv, 3, 11).expect("ok"), sp);
        let _ = std::fs::remove_dir_all(&venv);
    }

    #[test]
    fn reports_version_mismatch() {
        let venv = scratch("mismatch");
        std::fs::create_dir_all(venv.join("lib/python3.12/site-packages")).expect("mkdir");
        let err = site_packages(&venv, 3, 11).expect_err("mismatch");
        assert!(
            matches!(&err, Error::VirtualenvVersion { venv, interpreter, .. } if venv == "3.12" && interpreter == "3.11"),
            "{err}"
        );
        std::fs::write(venv.join("pyvenv.cfg"), "version_info = 3.10.2.final.0\n").expect("write");
        let err = site_packages(&venv, 3, 11).expect_err("mismatch");
        assert!(
            matches!(&err, Error::VirtualenvVersion { venv, .. } if venv == "3.10"),
            "{err}"
        );
        let _ = std::fs::remove_dir_all(&venv);
    }

    #[test]
    fn reports_missing_virtualenv() {
        let err = site_packages(Path::new("/nonexistent/fanout/venv"), 3, 11).expect_err("missing");
        assert!(matches!(err, Error::Virtualenv { .. }), "{err}");
    }
}
