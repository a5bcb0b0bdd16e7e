//! JSON ⇄ Python conversion, written for the hot path.
//!
//! JSON → Python: objects become `dict`, arrays `list`, numbers `int` or `float`.
//! Python → JSON: `dict` (and subclasses) with `str` or `int` keys, `list`, `tuple`,
//! `str`, `int`, `float`, `bool` and `None`. Integers beyond 64 bits become strings of
//! their exact digits (a float would silently lose digits); `nan` and `inf`, other
//! types, and nesting deeper than [`MAX_DEPTH`] are errors naming the offending path.

use std::fmt;

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use serde_json::{Map, Number, Value};

/// Deepest nesting accepted from Python (also stops self-referencing lists).
pub const MAX_DEPTH: usize = 128;

/// Converts a JSON value to a Python object.
pub(crate) fn json_to_py<'py>(py: Python<'py>, value: &Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match value {
        Value::Null => py.None().into_bound(py),
        Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                i.into_pyobject(py)?.into_any()
            } else if let Some(u) = n.as_u64() {
                u.into_pyobject(py)?.into_any()
            } else {
                PyFloat::new(py, n.as_f64().unwrap_or(f64::NAN)).into_any()
            }
        }
        Value::String(s) => PyString::new(py, s).into_any(),
        Value::Array(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(json_to_py(py, item)?)?;
            }
            list.into_any()
        }
        Value::Object(map) => map_to_py(py, map)?.into_any(),
    })
}

/// Converts a JSON object to a Python `dict`.
pub(crate) fn map_to_py<'py>(
    py: Python<'py>,
    map: &Map<String, Value>,
) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    for (key, value) in map {
        dict.set_item(PyString::new(py, key), json_to_py(py, value)?)?;
    }
    Ok(dict)
}

/// A Python value that has no JSON form, with the path to it (`$.items[2].price`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotJson {
    /// Path segments from the innermost outwards (reversed while unwinding).
    path: Vec<Segment>,
    /// What is wrong, e.g. `object of type 'datetime'`.
    reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Key(String),
    Index(usize),
}

impl NotJson {
    fn new(reason: impl Into<String>) -> Self {
        Self {
            path: Vec::new(),
            reason: reason.into(),
        }
    }

    fn at(mut self, segment: Segment) -> Self {
        self.path.push(segment);
        self
    }
}

impl fmt::Display for NotJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("$")?;
        for segment in self.path.iter().rev() {
            match segment {
                Segment::Key(k) => write!(f, ".{k}")?,
                Segment::Index(i) => write!(f, "[{i}]")?,
            }
        }
        write!(f, ": {}", self.reason)
    }
}

/// Converts a Python object to JSON.
pub(crate) fn py_to_json(value: &Bound<'_, PyAny>) -> Result<Value, NotJson> {
    convert(value, 0)
}

fn convert(value: &Bound<'_, PyAny>, depth: usize) -> Result<Value, NotJson> {
    if depth > MAX_DEPTH {
        return Err(NotJson::new(format!(
            "nested deeper than {MAX_DEPTH} levels"
        )));
    }
    if value.is_none() {
        return Ok(Value::Null);
    }
    if let Ok(s) = value.cast::<PyString>() {
        return s
            .to_str()
            .map(|s| Value::String(s.to_owned()))
            .map_err(|_| NotJson::new("string is not valid Unicode"));
    }
    if let Ok(dict) = value.cast::<PyDict>() {
        let mut map = Map::new();
        for (key, item) in dict.iter() {
            let key = dict_key(&key)?;
            let item = convert(&item, depth + 1).map_err(|e| e.at(Segment::Key(key.clone())))?;
            map.insert(key, item);
        }
        return Ok(Value::Object(map));
    }
    // `bool` is a subclass of `int`: test it first.
    if let Ok(b) = value.cast::<PyBool>() {
        return Ok(Value::Bool(b.is_true()));
    }
    if value.cast::<PyInt>().is_ok() {
        return Ok(int_to_json(value));
    }
    if let Ok(f) = value.cast::<PyFloat>() {
        let f = f.value();
        return Number::from_f64(f)
            .map(Value::Number)
            .ok_or_else(|| NotJson::new(format!("float {f} is not valid JSON")));
    }
    if let Ok(list) = value.cast::<PyList>() {
        return sequence(list.iter(), list.len(), depth);
    }
    if let Ok(tuple) = value.cast::<PyTuple>() {
        return sequence(tuple.iter(), tuple.len(), depth);
    }
    Err(NotJson::new(format!(
        "object of type '{}' (return dict, list, str, int, float, bool or None)",
        type_name(value)
    )))
}

fn sequence<'py>(
    items: impl Iterator<Item = Bound<'py, PyAny>>,
    len: usize,
    depth: usize,
) -> Result<Value, NotJson> {
    let mut out = Vec::with_capacity(len);
    for (i, item) in items.enumerate() {
        out.push(convert(&item, depth + 1).map_err(|e| e.at(Segment::Index(i)))?);
    }
    Ok(Value::Array(out))
}

fn int_to_json(value: &Bound<'_, PyAny>) -> Value {
    if let Ok(i) = value.extract::<i64>() {
        return Value::from(i);
    }
    if let Ok(u) = value.extract::<u64>() {
        return Value::from(u);
    }
    // Beyond 64 bits: keep every digit as a string.
    match value.str() {
        Ok(s) => Value::String(s.to_string()),
        Err(_) => Value::Null,
    }
}

/// Keys as `json.dumps` accepts them: `str`, and `int` written in decimal.
fn dict_key(key: &Bound<'_, PyAny>) -> Result<String, NotJson> {
    if let Ok(s) = key.cast::<PyString>() {
        return s
            .to_str()
            .map(str::to_owned)
            .map_err(|_| NotJson::new("dict key is not valid Unicode"));
    }
    let int_key = key.cast::<PyInt>().is_ok() && key.cast::<PyBool>().is_err();
    match key.str() {
        Ok(s) if int_key => return Ok(s.to_string()),
        _ => {}
    }
    Err(NotJson::new(format!(
        "dict key of type '{}' is not a string",
        type_name(key)
    )))
}

fn type_name(value: &Bound<'_, PyAny>) -> String {
    value
        .get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn eval(py: Python<'_>, code: &std::ffi::CStr) -> Py<PyAny> {
        py.eval(code, None, None).expect("eval").unbind()
    }

    #[test]
    fn round_trips_json() {
        Python::attach(|py| {
            let value = json!({
                "s": "héllo", "i": -3, "u": u64::MAX, "f": 1.5, "b": true, "n": null,
                "list": [1, [2, {"x": []}]], "empty": {}
            });
            let obj = json_to_py(py, &value).expect("to py");
            assert_eq!(py_to_json(&obj).expect("to json"), value);
        });
    }

    #[test]
    fn converts_python_specific_values() {
        Python::attach(|py| {
            let obj = eval(
                py,
                c"{'t': (1, 2), 1: 'int key', 'big': 2**70, 'neg': -2**70}",
            );
            assert_eq!(
                py_to_json(obj.bind(py)).expect("json"),
                json!({"t": [1, 2], "1": "int key",
                       "big": "1180591620717411303424", "neg": "-1180591620717411303424"})
            );
        });
    }

    #[test]
    fn names_the_path_of_bad_values() {
        Python::attach(|py| {
            let obj = eval(py, c"{'a': [1, {'b': object()}]}");
            let err = py_to_json(obj.bind(py)).expect_err("not json");
            assert!(
                err.to_string()
                    .starts_with("$.a[1].b: object of type 'object'"),
                "{err}"
            );
            let obj = eval(py, c"[float('nan')]");
            let err = py_to_json(obj.bind(py)).expect_err("nan");
            assert_eq!(err.to_string(), "$[0]: float NaN is not valid JSON");
            let obj = eval(py, c"{(1, 2): 3}");
            assert!(py_to_json(obj.bind(py)).is_err());
        });
    }

    #[test]
    fn stops_at_self_reference() {
        Python::attach(|py| {
            let obj = eval(py, c"(lambda l: (l.append(l), l)[1])([])");
            let err = py_to_json(obj.bind(py)).expect_err("cycle");
            assert!(err.to_string().contains("nested deeper"), "{err}");
        });
    }
}
