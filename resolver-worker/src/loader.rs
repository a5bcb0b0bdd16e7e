//! Importing a resolvers file: `sys.path`, a unique module name, and turning Python
//! import errors into file:line messages.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use pyo3::exceptions::PySyntaxError;
use pyo3::prelude::*;
use pyo3::types::{PyList, PyString};

use crate::config::{self, PythonConfig};
use crate::error::{Error, Result};
use crate::module::{self, Registration};

/// Gives every imported resolvers file its own module name.
static NEXT_MODULE: AtomicU64 = AtomicU64::new(1);

/// A resolvers file that imported cleanly.
pub(crate) struct Loaded {
    /// The name it has in `sys.modules`.
    pub module_name: String,
    /// The resolvers it registered, in definition order.
    pub registrations: Vec<Registration>,
}

/// Prepares `sys.path` (resolvers directory, virtualenv) and imports the resolvers file.
pub(crate) fn load(py: Python<'_>, config: &PythonConfig) -> Result<Loaded> {
    let path = std::fs::canonicalize(&config.resolvers).map_err(|source| Error::ResolversFile {
        path: config.resolvers.clone(),
        source,
    })?;
    if !path.is_file() {
        return Err(Error::ResolversFile {
            path: config.resolvers.clone(),
            source: std::io::Error::other("not a file"),
        });
    }
    module::install(py).map_err(|e| setup_error(py, "installing the fanout module", &e))?;
    if let Some(venv) = config.effective_virtualenv() {
        add_virtualenv(py, &venv)?;
    }
    if let Some(dir) = path.parent() {
        prepend_sys_path(py, dir).map_err(|e| setup_error(py, "extending sys.path", &e))?;
    }
    import_file(py, &path)
}

/// Removes an imported resolvers module from `sys.modules`.
pub(crate) fn unload(py: Python<'_>, module_name: &str) {
    let removed = py
        .import("sys")
        .and_then(|sys| sys.getattr("modules"))
        .and_then(|modules| modules.del_item(module_name));
    if let Err(e) = removed {
        tracing::debug!(module_name, error = %e, "could not remove resolvers module");
    }
}

fn prepend_sys_path(py: Python<'_>, dir: &Path) -> PyResult<()> {
    let sys_path = sys_path(py)?;
    let dir = dir.to_string_lossy();
    if !sys_path.contains(dir.as_ref())? {
        sys_path.insert(0, dir.as_ref())?;
    }
    Ok(())
}

fn sys_path(py: Python<'_>) -> PyResult<Bound<'_, PyList>> {
    Ok(py.import("sys")?.getattr("path")?.cast_into::<PyList>()?)
}

/// Adds the virtualenv's `site-packages` (and its `.pth` entries, through
/// `site.addsitedir`) ahead of the interpreter's own `site-packages`.
fn add_virtualenv(py: Python<'_>, venv: &Path) -> Result<()> {
    let version = py.version_info();
    let site_packages = config::site_packages(venv, version.major, version.minor)?;
    add_site_dir(py, &site_packages)
        .map_err(|e| setup_error(py, "adding the virtualenv to sys.path", &e))
}

fn add_site_dir(py: Python<'_>, dir: &Path) -> PyResult<()> {
    let sys_path = sys_path(py)?;
    let dir = dir.to_string_lossy();
    if sys_path.contains(dir.as_ref())? {
        return Ok(());
    }
    let before: Vec<Bound<'_, PyAny>> = sys_path.iter().collect();
    py.import("site")?
        .call_method1("addsitedir", (dir.as_ref(),))?;
    // Move what addsitedir appended in front of the first site-packages entry, so the
    // virtualenv wins over packages installed next to the interpreter.
    let mut added = Vec::new();
    let mut kept = Vec::new();
    for entry in sys_path.iter() {
        let mut is_new = true;
        for old in &before {
            if entry.eq(old)? {
                is_new = false;
                break;
            }
        }
        if is_new {
            added.push(entry)
        } else {
            kept.push(entry)
        }
    }
    let position = kept
        .iter()
        .position(|entry| {
            entry
                .extract::<String>()
                .is_ok_and(|s| s.ends_with("site-packages") || s.ends_with("dist-packages"))
        })
        .unwrap_or(kept.len());
    let ordered: Vec<Bound<'_, PyAny>> = kept[..position]
        .iter()
        .chain(added.iter())
        .chain(kept[position..].iter())
        .cloned()
        .collect();
    let new_path = PyList::new(py, ordered)?;
    sys_path.call_method0("clear")?;
    sys_path.call_method1("extend", (new_path,))?;
    Ok(())
}

fn import_file(py: Python<'_>, path: &Path) -> Result<Loaded> {
    let stem = path
        .file_stem()
        .map(|s| {
            s.to_string_lossy()
                .replace(|c: char| !c.is_ascii_alphanumeric(), "_")
        })
        .unwrap_or_else(|| "resolvers".into());
    let module_name = format!(
        "_fanout_resolvers_{}_{stem}",
        NEXT_MODULE.fetch_add(1, Ordering::Relaxed)
    );
    let file = path.to_string_lossy().into_owned();
    let (result, registrations) =
        module::collect_registrations(|| exec_module(py, &module_name, &file));
    match result {
        Ok(()) => Ok(Loaded {
            module_name,
            registrations,
        }),
        Err(err) => {
            unload(py, &module_name);
            let (file, line, message) = describe_import_error(py, &err, &file);
            Err(Error::Import {
                file,
                line,
                message,
            })
        }
    }
}

/// `importlib` steps of `import <module_name>` from `file`, whatever its extension.
fn exec_module(py: Python<'_>, module_name: &str, file: &str) -> PyResult<()> {
    let util = py.import("importlib.util")?;
    let loader = py
        .import("importlib.machinery")?
        .getattr("SourceFileLoader")?
        .call1((module_name, file))?;
    let kwargs = pyo3::types::PyDict::new(py);
    kwargs.set_item("loader", &loader)?;
    let spec = util
        .getattr("spec_from_file_location")?
        .call((module_name, file), Some(&kwargs))?;
    let module = util.call_method1("module_from_spec", (&spec,))?;
    py.import("sys")?
        .getattr("modules")?
        .set_item(module_name, &module)?;
    loader.call_method1("exec_module", (&module,))?;
    Ok(())
}

/// File, line and message of an exception raised while importing `file`.
///
/// Syntax errors carry their own location. For other exceptions the line is the last
/// traceback frame in `file`; when the exception came from deeper (a sibling module),
/// the message says where it was raised.
pub(crate) fn describe_import_error(
    py: Python<'_>,
    err: &PyErr,
    file: &str,
) -> (String, usize, String) {
    let summary = summarize(py, err);
    if err.is_instance_of::<PySyntaxError>(py) {
        let value = err.value(py);
        let filename = value
            .getattr("filename")
            .and_then(|f| f.extract::<String>())
            .unwrap_or_else(|_| file.to_owned());
        let line = value
            .getattr("lineno")
            .and_then(|l| l.extract::<usize>())
            .unwrap_or(0);
        let message = value
            .getattr("msg")
            .and_then(|m| m.extract::<String>())
            .map(|msg| format!("{}: {msg}", exception_type_name(py, err)))
            .unwrap_or(summary);
        return (filename, line, message);
    }
    let frames = traceback_frames(py, err);
    let in_file = frames.iter().rev().find(|(f, _)| f == file);
    match (in_file, frames.last()) {
        (Some((f, line)), Some((deepest_file, deepest_line)))
            if (f, line) != (deepest_file, deepest_line) =>
        {
            (
                f.clone(),
                *line,
                format!("{summary} (raised at {deepest_file}:{deepest_line})"),
            )
        }
        (Some((f, line)), _) => (f.clone(), *line, summary),
        (None, Some((f, line))) => (f.clone(), *line, summary),
        (None, None) => (file.to_owned(), 0, summary),
    }
}

/// `(co_filename, tb_lineno)` of every traceback frame, outermost first.
fn traceback_frames(py: Python<'_>, err: &PyErr) -> Vec<(String, usize)> {
    let mut frames = Vec::new();
    let mut tb = err.traceback(py).map(Bound::into_any);
    while let Some(current) = tb.filter(|t| !t.is_none()) {
        let frame = || -> PyResult<(String, usize)> {
            let filename = current
                .getattr("tb_frame")?
                .getattr("f_code")?
                .getattr("co_filename")?
                .extract()?;
            let line = current.getattr("tb_lineno")?.extract()?;
            Ok((filename, line))
        };
        if let Ok(frame) = frame() {
            frames.push(frame);
        }
        tb = current.getattr("tb_next").ok();
    }
    frames
}

/// `ValueError: message`, or just `ValueError` when the message is empty.
pub(crate) fn summarize(py: Python<'_>, err: &PyErr) -> String {
    let name = exception_type_name(py, err);
    let message = err
        .value(py)
        .str()
        .map(|s| s.to_string())
        .unwrap_or_default();
    if message.is_empty() {
        name
    } else {
        format!("{name}: {message}")
    }
}

/// The exception class's `__name__`.
pub(crate) fn exception_type_name(py: Python<'_>, err: &PyErr) -> String {
    err.get_type(py)
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "Exception".into())
}

/// The formatted traceback of `err`, for server-side logs.
pub(crate) fn format_traceback(py: Python<'_>, err: &PyErr) -> String {
    let formatted = || -> PyResult<String> {
        let lines = py
            .import("traceback")?
            .call_method1("format_exception", (err.value(py),))?;
        PyString::new(py, "")
            .call_method1("join", (lines,))?
            .extract()
    };
    formatted().unwrap_or_else(|_| summarize(py, err))
}

fn setup_error(py: Python<'_>, doing: &str, err: &PyErr) -> Error {
    Error::Setup(format!("{doing}: {}", summarize(py, err)))
}

/// The canonical path of a resolvers file as Python sees it in tracebacks.
pub(crate) fn canonical(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned())
}
