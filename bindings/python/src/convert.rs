//! Python values to the core's and back: option values, header lists, responses.

use bytes::Bytes;
use idempo::host::Value;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString};

use crate::error::config;

/// A response made by the engine (a replay or a problem): `(status, headers, body)`.
pub type PyResponse = (u16, Vec<(Py<PyBytes>, Py<PyBytes>)>, Py<PyBytes>);

pub fn response(py: Python<'_>, res: http::Response<Bytes>) -> PyResponse {
    let headers = res
        .headers()
        .iter()
        .map(|(n, v)| (PyBytes::new(py, n.as_str().as_bytes()).unbind(), PyBytes::new(py, v.as_bytes()).unbind()))
        .collect();
    (res.status().as_u16(), headers, PyBytes::new(py, res.body()).unbind())
}

/// An option value; `name` only names it in an error.
pub fn value(name: &str, v: &Bound<'_, PyAny>) -> PyResult<Value> {
    Ok(if v.is_none() {
        Value::Null
    } else if let Ok(b) = v.cast::<PyBool>() {
        Value::Bool(b.is_true())
    } else if v.is_instance_of::<PyInt>() || v.is_instance_of::<PyFloat>() {
        Value::Number(v.extract()?)
    } else if let Ok(s) = v.cast::<PyString>() {
        Value::Str(s.to_str()?.to_owned())
    } else if let Ok(b) = v.cast::<PyBytes>() {
        Value::Bytes(b.as_bytes().to_vec())
    } else if let Ok(items) = v.try_iter() {
        Value::List(items.map(|item| value(name, &item?)).collect::<PyResult<_>>()?)
    } else {
        return Err(config(format!("{name}: a {} is not an option value", v.get_type().name()?)));
    })
}

/// Keyword options as `(name, value)` pairs.
pub fn options(kwargs: Option<&Bound<'_, PyDict>>) -> PyResult<Vec<(String, Value)>> {
    let Some(kwargs) = kwargs else { return Ok(Vec::new()) };
    kwargs
        .iter()
        .map(|(k, v)| {
            let name: String = k.extract()?;
            let v = value(&name, &v)?;
            Ok((name, v))
        })
        .collect()
}

fn to_py<'py>(py: Python<'py>, v: Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match v {
        Value::Null => py.None().into_bound(py),
        Value::Bool(b) => PyBool::new(py, b).to_owned().into_any(),
        // Whole numbers read back as int, as they were given.
        Value::Number(n) if n.fract() == 0.0 && n.abs() < 9.0e15 => (n as i64).into_pyobject(py)?.into_any(),
        Value::Number(n) => PyFloat::new(py, n).into_any(),
        Value::Str(s) => PyString::new(py, &s).into_any(),
        Value::Bytes(b) => PyBytes::new(py, &b).into_any(),
        Value::List(items) => {
            PyList::new(py, items.into_iter().map(|i| to_py(py, i)).collect::<PyResult<Vec<_>>>()?)?.into_any()
        }
    })
}

/// Option values as a dict.
pub fn values(py: Python<'_>, pairs: Vec<(String, Value)>) -> PyResult<Bound<'_, PyDict>> {
    dict(py, pairs.into_iter().map(|(k, v)| Ok((k, to_py(py, v)?))).collect::<PyResult<Vec<_>>>()?)
}

/// `(name, value)` pairs as a dict.
pub fn dict<'py, V: IntoPyObject<'py>>(
    py: Python<'py>,
    pairs: impl IntoIterator<Item = (String, V)>,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    for (k, v) in pairs {
        d.set_item(k, v)?;
    }
    Ok(d)
}

/// Header bytes from `bytes`, or from a `str` of latin-1 code points (WSGI).
pub fn header_bytes(v: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    if let Ok(b) = v.cast::<PyBytes>() {
        return Ok(b.as_bytes().to_vec());
    }
    Ok(idempo::host::text::bytes_of(v.cast::<PyString>()?.to_str()?).into_owned())
}
