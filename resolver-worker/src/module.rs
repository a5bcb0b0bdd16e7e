//! The `fanout` Python module that resolvers files import.
//!
//! ```python
//! import fanout
//!
//! @fanout.resolver("orderUpdated")
//! def order_updated(event: dict, args: dict, ctx: fanout.Context) -> dict | None: ...
//! ```
//!
//! The module is built in Rust and placed in `sys.modules` before a resolvers file is
//! imported. `fanout.resolver` does not write to any global registry: registrations go
//! to a collector that is active only on the thread importing a resolvers file (see
//! [`collect_registrations`]), so several runtimes can live in one process.

use std::cell::RefCell;
use std::sync::Arc;

use fanout_core::security::SecurityContext;
use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyList, PyString};

use crate::call::EventInput;
use crate::convert;

pyo3::create_exception!(
    fanout,
    ResolverTimeout,
    pyo3::exceptions::PyTimeoutError,
    "Raised inside a resolver that ran past Fanout's resolver timeout."
);

/// A resolver found while importing a resolvers file.
pub(crate) struct Registration {
    /// The Subscription field.
    pub field: String,
    /// The decorated function.
    pub func: Py<PyAny>,
    /// Where it was defined.
    pub file: String,
    /// Line of the definition (its first decorator), 1-based.
    pub line: usize,
}

thread_local! {
    /// Registrations made on this thread while a resolvers file is being imported.
    static COLLECTOR: RefCell<Option<Vec<Registration>>> = const { RefCell::new(None) };
}

/// Runs `import` with a fresh collector for `@fanout.resolver` on this thread and
/// returns what it collected.
pub(crate) fn collect_registrations<T>(import: impl FnOnce() -> T) -> (T, Vec<Registration>) {
    struct Restore(Option<Vec<Registration>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let previous = self.0.take();
            COLLECTOR.with(|c| *c.borrow_mut() = previous);
        }
    }
    let restore = Restore(COLLECTOR.with(|c| c.replace(Some(Vec::new()))));
    let out = import();
    let collected = COLLECTOR.with(|c| c.replace(None)).unwrap_or_default();
    drop(restore);
    (out, collected)
}

/// `fanout.resolver(field)`: a decorator registering a resolver for a Subscription field.
#[pyfunction]
fn resolver(field: &Bound<'_, PyAny>) -> PyResult<ResolverDecorator> {
    let Ok(field) = field.cast::<PyString>() else {
        return Err(PyTypeError::new_err(
            "fanout.resolver takes the Subscription field name: use @fanout.resolver(\"fieldName\")",
        ));
    };
    let field = field.to_str()?.to_owned();
    if field.is_empty() {
        return Err(PyValueError::new_err(
            "fanout.resolver: the field name is empty",
        ));
    }
    Ok(ResolverDecorator { field })
}

/// What `fanout.resolver("field")` returns; calling it registers the function.
#[pyclass(frozen, module = "fanout")]
pub(crate) struct ResolverDecorator {
    field: String,
}

#[pymethods]
impl ResolverDecorator {
    fn __call__<'py>(&self, func: Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        if !func.is_callable() {
            return Err(PyTypeError::new_err(format!(
                "@fanout.resolver(\"{}\") must decorate a function",
                self.field
            )));
        }
        let (file, line) = definition_site(&func);
        COLLECTOR.with(|c| {
            let mut collector = c.borrow_mut();
            let Some(registrations) = collector.as_mut() else {
                return Err(PyRuntimeError::new_err(
                    "@fanout.resolver can only be used in the resolvers file Fanout imports",
                ));
            };
            if let Some(first) = registrations.iter().find(|r| r.field == self.field) {
                return Err(PyValueError::new_err(format!(
                    "a resolver for field '{}' is already registered at {}:{}",
                    self.field, first.file, first.line
                )));
            }
            registrations.push(Registration {
                field: self.field.clone(),
                func: func.clone().unbind(),
                file,
                line,
            });
            Ok(())
        })?;
        Ok(func)
    }

    fn __repr__(&self) -> String {
        format!("fanout.resolver({:?})", self.field)
    }
}

/// `func.__code__.co_filename` and `co_firstlineno`, or `("<unknown>", 0)`.
pub(crate) fn definition_site(func: &Bound<'_, PyAny>) -> (String, usize) {
    let site = || -> PyResult<(String, usize)> {
        let code = func.getattr("__code__")?;
        Ok((
            code.getattr("co_filename")?.extract()?,
            code.getattr("co_firstlineno")?.extract()?,
        ))
    };
    site().unwrap_or_else(|_| ("<unknown>".into(), 0))
}

/// `fanout.Context`: who the subscribers of this shape are, and where the event is from.
///
/// Attributes: `claims` (dict), `tenant`, `subject` (str or None), `roles`, `scopes`
/// (lists), `channel`, `offset`, `epoch`, `headers` (dict) and `event_tenant` (the
/// tenant the publisher stamped on the event). Dicts and lists are fresh copies built
/// on access, so a resolver that never reads `claims` never pays for it.
#[pyclass(frozen, name = "Context", module = "fanout")]
pub(crate) struct Context {
    security: SecurityContext,
    event: Arc<EventInput>,
}

impl Context {
    pub(crate) fn new(security: SecurityContext, event: Arc<EventInput>) -> Self {
        Self { security, event }
    }
}

#[pymethods]
impl Context {
    #[getter]
    fn claims<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        convert::map_to_py(py, &self.security.claims)
    }

    #[getter]
    fn tenant(&self) -> Option<&str> {
        self.security.tenant.as_deref()
    }

    #[getter]
    fn subject(&self) -> Option<&str> {
        self.security.subject.as_deref()
    }

    #[getter]
    fn roles<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        PyList::new(py, &self.security.roles)
    }

    #[getter]
    fn scopes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        PyList::new(py, &self.security.scopes)
    }

    #[getter]
    fn channel(&self) -> &str {
        &self.event.channel
    }

    #[getter]
    fn offset(&self) -> u64 {
        self.event.offset
    }

    #[getter]
    fn epoch(&self) -> u64 {
        self.event.epoch
    }

    #[getter]
    fn headers<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let dict = PyDict::new(py);
        for (key, value) in &self.event.headers {
            dict.set_item(key, value)?;
        }
        Ok(dict)
    }

    #[getter]
    fn event_tenant(&self) -> Option<&str> {
        self.event.tenant.as_deref()
    }

    fn __repr__(&self) -> String {
        format!(
            "fanout.Context(channel={:?}, offset={}, epoch={}, tenant={:?}, subject={:?}, roles={:?}, scopes={:?})",
            self.event.channel,
            self.event.offset,
            self.event.epoch,
            self.security.tenant,
            self.security.subject,
            self.security.roles,
            self.security.scopes,
        )
    }
}

/// The module object, built once per process.
static MODULE: PyOnceLock<Py<PyModule>> = PyOnceLock::new();

/// Makes `import fanout` return the embedded module.
pub(crate) fn install(py: Python<'_>) -> PyResult<()> {
    let module = MODULE.get_or_try_init(py, || -> PyResult<Py<PyModule>> {
        let m = PyModule::new(py, "fanout")?;
        m.add(
            "__doc__",
            "Fanout's resolver API: @fanout.resolver(\"field\") and fanout.Context.",
        )?;
        m.add("__version__", env!("CARGO_PKG_VERSION"))?;
        m.add_function(wrap_pyfunction!(resolver, &m)?)?;
        m.add_class::<Context>()?;
        m.add_class::<ResolverDecorator>()?;
        m.add("ResolverTimeout", py.get_type::<ResolverTimeout>())?;
        Ok(m.unbind())
    })?;
    let modules = py.import("sys")?.getattr("modules")?;
    modules.set_item("fanout", module.bind(py))
}
