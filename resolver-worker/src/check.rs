//! `fanout check`: import a resolvers file once and report what is wrong with it.

use std::fmt;
use std::path::Path;

use pyo3::prelude::*;

use crate::config::PythonConfig;
use crate::error::Error;
use crate::loader;

/// One problem found in a resolvers file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file the problem is in.
    pub file: String,
    /// 1-based line; 0 when unknown.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.message)
    }
}

/// Checks the resolvers file at `path` (with the virtualenv from `VIRTUAL_ENV`, if
/// set) against the Subscription fields of the schema. See [`check_config`].
pub fn check_resolvers(path: &Path, known_fields: &[String]) -> Vec<Diagnostic> {
    check_config(&PythonConfig::new(path), known_fields)
}

/// Imports the resolvers file of `config` in this process and reports syntax errors,
/// exceptions at import (with the line from the traceback), resolvers for fields
/// that are not in `known_fields` (at the line of the decorated function) and
/// resolvers that cannot be called as `f(event, args, ctx)`. An empty result means
/// the file is fine.
///
/// The module is removed from `sys.modules` afterwards, but anything the file did to
/// the process (its imports, `sys.path`) stays: this is meant for a command that
/// exits after checking.
pub fn check_config(config: &PythonConfig, known_fields: &[String]) -> Vec<Diagnostic> {
    let file = loader::canonical(&config.resolvers)
        .to_string_lossy()
        .into_owned();
    Python::attach(|py| {
        let loaded = match loader::load(py, config) {
            Ok(loaded) => loaded,
            Err(e) => return vec![diagnostic_of(&file, config, e)],
        };
        let mut diagnostics = Vec::new();
        for registration in &loaded.registrations {
            let at = |message: String| Diagnostic {
                file: registration.file.clone(),
                line: registration.line,
                message,
            };
            if !known_fields.contains(&registration.field) {
                diagnostics.push(at(format!(
                    "resolver for unknown Subscription field '{}'",
                    registration.field
                )));
            }
            if let Some(problem) = signature_problem(py, registration.func.bind(py)) {
                diagnostics.push(at(problem));
            }
        }
        loader::unload(py, &loaded.module_name);
        diagnostics.sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
        diagnostics
    })
}

fn diagnostic_of(file: &str, config: &PythonConfig, error: Error) -> Diagnostic {
    match error {
        Error::Import {
            file,
            line,
            message,
        } => Diagnostic {
            file,
            line,
            message,
        },
        Error::Virtualenv { ref path, .. } | Error::VirtualenvVersion { ref path, .. } => {
            Diagnostic {
                file: path.display().to_string(),
                line: 0,
                message: error.to_string(),
            }
        }
        Error::ResolversFile { ref source, .. } => Diagnostic {
            file: config.resolvers.display().to_string(),
            line: 0,
            message: format!("cannot read the resolvers file: {source}"),
        },
        other => Diagnostic {
            file: file.to_owned(),
            line: 0,
            message: other.to_string(),
        },
    }
}

/// Whether `inspect.signature(func).bind(event, args, ctx)` fails.
fn signature_problem(py: Python<'_>, func: &Bound<'_, PyAny>) -> Option<String> {
    let signature = match py
        .import("inspect")
        .and_then(|inspect| inspect.call_method1("signature", (func,)))
    {
        Ok(signature) => signature,
        // Builtins and some callables have no signature: nothing to check.
        Err(_) => return None,
    };
    let none = py.None();
    match signature.call_method1("bind", (&none, &none, &none)) {
        Ok(_) => None,
        Err(e) => Some(format!(
            "resolver cannot be called as f(event, args, ctx): {}",
            loader::summarize(py, &e)
        )),
    }
}
