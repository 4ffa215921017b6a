//! `Engine`, `Pending` and `Lease`: the core's two-step request handling (DESIGN.md §2),
//! shaped for the ASGI and WSGI middleware. No rule lives here: requests and responses
//! are translated and handed to the core.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use idempo::capture::Capture;
use idempo::{Check, Decision, Idempotency, OnStoreError};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};

use crate::bridge::{run_async, run_blocking};
use crate::error::{config, config_error};
use crate::store;

/// A response made by the engine (a replay or a problem): `(status, headers, body)`.
type PyResponse = (u16, Vec<(Py<PyBytes>, Py<PyBytes>)>, Py<PyBytes>);

fn response(py: Python<'_>, res: http::Response<Bytes>) -> PyResponse {
    let headers = res
        .headers()
        .iter()
        .map(|(n, v)| (PyBytes::new(py, n.as_str().as_bytes()).unbind(), PyBytes::new(py, v.as_bytes()).unbind()))
        .collect();
    (res.status().as_u16(), headers, PyBytes::new(py, res.body()).unbind())
}

fn seconds(option: &str, value: f64) -> PyResult<Duration> {
    Duration::try_from_secs_f64(value)
        .map_err(|_| config(format!("{option} must be a number of seconds ≥ 0, got {value}")))
}

/// The idempotency engine over a store, with every option of DESIGN.md §3.
#[pyclass(module = "idempo._native", frozen)]
pub struct Engine {
    idem: Idempotency,
    /// The request headers the engine reads, as (name, WSGI environ key).
    read: Vec<(HeaderName, String)>,
}

#[pymethods]
impl Engine {
    #[new]
    #[pyo3(signature = (
        store, *, methods = None, header = None, required = false, max_key_length = 255,
        strict_key_syntax = false, max_request_body = 1048576, max_response_body = 1048576,
        lease_ttl = 60.0, max_lease = 3600.0, ttl = 86400.0, store_status = None,
        replay_headers = None, replayed_header = None, on_store_error = "fail_closed",
        persist_timeout = 10.0, fingerprint_headers = None, fingerprint_secret = None, problem_base = None
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        store: &Bound<'_, PyAny>,
        methods: Option<Vec<String>>,
        header: Option<String>,
        required: bool,
        max_key_length: usize,
        strict_key_syntax: bool,
        max_request_body: usize,
        max_response_body: usize,
        lease_ttl: f64,
        max_lease: f64,
        ttl: f64,
        store_status: Option<Bound<'_, PyAny>>,
        replay_headers: Option<Vec<String>>,
        replayed_header: Option<String>,
        on_store_error: &str,
        persist_timeout: f64,
        fingerprint_headers: Option<Vec<String>>,
        fingerprint_secret: Option<Bound<'_, PyAny>>,
        problem_base: Option<String>,
    ) -> PyResult<Engine> {
        let mut b = Idempotency::builder_shared(store::extract(store)?)
            .required(required)
            .max_key_length(max_key_length)
            .strict_key_syntax(strict_key_syntax)
            .max_request_body(max_request_body)
            .max_response_body(max_response_body)
            .lease_ttl(seconds("lease_ttl", lease_ttl)?)
            .max_lease(seconds("max_lease", max_lease)?)
            .ttl(seconds("ttl", ttl)?)
            .persist_timeout(seconds("persist_timeout", persist_timeout)?)
            .on_store_error(match on_store_error {
                "fail_closed" => OnStoreError::FailClosed,
                "fail_open" => OnStoreError::FailOpen,
                other => {
                    return Err(config(format!(
                        "on_store_error must be \"fail_closed\" or \"fail_open\", not {other:?}"
                    )));
                }
            });
        if let Some(m) = methods {
            b = b.methods(m);
        }
        if let Some(h) = header {
            b = b.header(h);
        }
        if let Some(h) = replay_headers {
            b = b.replay_headers(h);
        }
        if let Some(h) = replayed_header {
            b = b.replayed_header(h);
        }
        if let Some(h) = fingerprint_headers {
            b = b.fingerprint_headers(h);
        }
        if let Some(base) = problem_base {
            b = b.problem_base(base);
        }
        if let Some(secret) = fingerprint_secret {
            let bytes: Vec<u8> = if let Ok(s) = secret.cast::<PyString>() {
                s.to_str()?.as_bytes().to_vec()
            } else {
                secret.extract().map_err(|_| config("fingerprint_secret must be str or bytes"))?
            };
            b = b.fingerprint_secret(bytes);
        }
        if let Some(f) = store_status {
            if !f.is_callable() {
                return Err(config("store_status must be a callable taking the status code and returning a bool"));
            }
            let f = f.unbind();
            b = b.store_status(move |status| {
                Python::attach(|py| f.call1(py, (status,)).and_then(|r| r.is_truthy(py))).unwrap_or_else(|e| {
                    tracing::warn!(target: "idempo", error = %e, "store_status raised; using the default (status < 500)");
                    status < 500
                })
            });
        }
        let idem = b.try_build().map_err(config_error)?;
        let read = idem
            .request_headers_read()
            .into_iter()
            .map(|name| {
                let key = match name.as_str() {
                    "content-length" => "CONTENT_LENGTH".to_owned(),
                    "content-type" => "CONTENT_TYPE".to_owned(),
                    other => format!("HTTP_{}", other.to_ascii_uppercase().replace('-', "_")),
                };
                (name, key)
            })
            .collect();
        Ok(Engine { idem, read })
    }

    /// Look at an ASGI request head. `headers` is the ASGI list of `(name, value)` byte
    /// pairs. Returns `None` (pass through), a response tuple, or a `Pending`.
    fn check_asgi(
        &self,
        py: Python<'_>,
        method: &str,
        path: &[u8],
        query: &[u8],
        headers: &Bound<'_, PyAny>,
    ) -> PyResult<Py<PyAny>> {
        if !self.idem.covers(method) {
            self.idem.bypass();
            return Ok(py.None());
        }
        let without = self.idem.passes_without().map(|n| n.as_str().as_bytes());
        let mut keyed = false;
        let mut read: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        let mut take = |item: Bound<'_, PyAny>| -> PyResult<()> {
            let (name, value) = match item.cast::<PyTuple>() {
                Ok(pair) if pair.len() == 2 => (pair.get_borrowed_item(0)?, pair.get_borrowed_item(1)?),
                _ => return Err(PyValueError::new_err("ASGI headers must be (name, value) pairs of bytes")),
            };
            let name = name.cast::<PyBytes>()?;
            let name = name.as_bytes();
            if self.read.iter().any(|(n, _)| n.as_str().as_bytes().eq_ignore_ascii_case(name)) {
                keyed |= without.is_some_and(|w| w.eq_ignore_ascii_case(name));
                read.push((name.to_vec(), value.cast::<PyBytes>()?.as_bytes().to_vec()));
            }
            Ok(())
        };
        // Servers hand a list of tuples: read it without the generic iterator protocol.
        match headers.cast::<PyList>() {
            Ok(list) => list.iter().try_for_each(&mut take)?,
            Err(_) => headers.try_iter()?.try_for_each(|item| take(item?))?,
        }
        // B4, as the core publishes it: no key header, nothing else to look at.
        if without.is_some() && !keyed {
            self.idem.bypass();
            return Ok(py.None());
        }
        crate::logging::refresh_now_and_then(py);
        self.check(py, method, path, query, &read[..])
    }

    /// Look at a WSGI request head, reading the headers from `environ`.
    fn check_wsgi(
        &self,
        py: Python<'_>,
        method: &str,
        path: &[u8],
        query: &[u8],
        environ: &Bound<'_, PyDict>,
    ) -> PyResult<Py<PyAny>> {
        if !self.idem.covers(method) {
            self.idem.bypass();
            return Ok(py.None());
        }
        crate::logging::refresh_now_and_then(py);
        let mut read: Vec<(&[u8], Vec<u8>)> = Vec::new();
        for (name, key) in &self.read {
            if let Some(value) = environ.get_item(key)? {
                // PEP 3333: header values are str holding latin-1 code points.
                let value = value.cast::<PyString>()?.to_str()?;
                let bytes: Option<Vec<u8>> = value.chars().map(|c| u8::try_from(u32::from(c)).ok()).collect();
                read.push((name.as_str().as_bytes(), bytes.unwrap_or_else(|| value.as_bytes().to_vec())));
            }
        }
        self.check(py, method, path, query, &read[..])
    }

    /// The counters (B19) as a dict.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for (name, value) in self.idem.stats().fields() {
            d.set_item(name, value)?;
        }
        Ok(d)
    }
}

impl Engine {
    fn check<H: idempo::HeaderSource + ?Sized>(
        &self,
        py: Python<'_>,
        method: &str,
        path: &[u8],
        query: &[u8],
        headers: &H,
    ) -> PyResult<Py<PyAny>> {
        Ok(match self.idem.check(method, path, query, headers) {
            Check::Bypass => py.None(),
            Check::Respond(res) => response(py, res).into_pyobject(py)?.into_any().unbind(),
            Check::Proceed(p) => Py::new(py, Pending { inner: Some(p) })?.into_any(),
        })
    }
}

/// A keyed request waiting for its body.
#[pyclass(module = "idempo._native")]
pub struct Pending {
    inner: Option<idempo::Pending>,
}

fn decided(py: Python<'_>, decision: Decision) -> PyResult<Py<PyAny>> {
    Ok(match decision {
        Decision::Bypass => py.None(),
        Decision::Respond(res) => response(py, res).into_pyobject(py)?.into_any().unbind(),
        Decision::Execute(lease) => Py::new(py, Lease::new(lease))?.into_any(),
    })
}

impl Pending {
    fn take(&mut self) -> PyResult<idempo::Pending> {
        self.inner.take().ok_or_else(|| PyRuntimeError::new_err("this request was already decided"))
    }
}

#[pymethods]
impl Pending {
    /// The largest body to buffer; past it answer `too_large()`.
    #[getter]
    fn body_limit(&self) -> PyResult<usize> {
        self.inner.as_ref().map(idempo::Pending::body_limit).ok_or_else(|| PyRuntimeError::new_err("already decided"))
    }

    /// Put the key in a namespace (B5).
    fn set_scope(&mut self, scope: String) -> PyResult<()> {
        self.inner.as_mut().ok_or_else(|| PyRuntimeError::new_err("already decided"))?.set_scope(scope);
        Ok(())
    }

    /// The 413 response for a body over `body_limit` (B7).
    fn too_large(&mut self, py: Python<'_>) -> PyResult<PyResponse> {
        Ok(response(py, self.take()?.too_large()))
    }

    /// The 400 response for a body that could not be read.
    fn unreadable(&mut self, py: Python<'_>, reason: &str) -> PyResult<PyResponse> {
        Ok(response(py, self.take()?.unreadable(reason)))
    }

    /// Claim the key. Returns a `Lease` (run the app), a response tuple, or `None` (run the
    /// app unprotected) — or an asyncio future of one of those when the store needs I/O.
    fn begin(
        &mut self,
        py: Python<'_>,
        body: &Bound<'_, PyBytes>,
        event_loop: &Bound<'_, PyAny>,
    ) -> PyResult<Py<PyAny>> {
        let pending = self.take()?;
        let body = Bytes::copy_from_slice(body.as_bytes());
        run_async(py, event_loop, async move { pending.begin(&body).await }, decided)
    }

    /// Claim the key, blocking with the GIL released (WSGI).
    fn begin_blocking(&mut self, py: Python<'_>, body: &Bound<'_, PyBytes>) -> PyResult<Py<PyAny>> {
        let pending = self.take()?;
        let body = Bytes::copy_from_slice(body.as_bytes());
        let decision = run_blocking(py, async move { pending.begin(&body).await })?;
        decided(py, decision)
    }
}

/// Ownership of a claimed key while the app runs. Feed it the response (`start`, `push`),
/// then `complete`; or `release` it. Dropped unfinished, it releases the key.
#[pyclass(module = "idempo._native")]
pub struct Lease {
    inner: Option<idempo::Lease>,
    status: Option<StatusCode>,
    headers: HeaderMap,
    capture: Option<Capture>,
}

/// What `complete` hands to the core: the lease and the recorded response.
type Finished = (idempo::Lease, StatusCode, HeaderMap, Option<Bytes>);

impl Lease {
    fn new(lease: idempo::Lease) -> Lease {
        Lease { inner: Some(lease), status: None, headers: HeaderMap::new(), capture: None }
    }

    fn finish(&mut self) -> PyResult<Finished> {
        let lease = self.inner.take().ok_or_else(|| PyRuntimeError::new_err("this lease was already finished"))?;
        let status = self.status.ok_or_else(|| PyRuntimeError::new_err("complete() before start()"))?;
        let body = self.capture.take().and_then(Capture::finish);
        Ok((lease, status, std::mem::take(&mut self.headers), body))
    }
}

fn none(py: Python<'_>, _: ()) -> PyResult<Py<PyAny>> {
    Ok(py.None())
}

#[pymethods]
impl Lease {
    /// The response head: status and `(name, value)` header pairs (bytes or str).
    fn start(&mut self, status: u16, headers: &Bound<'_, PyAny>) -> PyResult<()> {
        self.status = Some(StatusCode::from_u16(status).map_err(|_| config(format!("invalid status code {status}")))?);
        let mut map = HeaderMap::new();
        for item in headers.try_iter()? {
            let item = item?;
            let (name, value) = (item.get_item(0)?, item.get_item(1)?);
            let name = header_bytes(&name)?;
            let value = header_bytes(&value)?;
            // A header the app made that HTTP cannot carry is not one to replay.
            if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(&name), HeaderValue::from_bytes(&value)) {
                map.append(n, v);
            }
        }
        let length = map.get(http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse().ok());
        self.capture = self.inner.as_ref().map(|l| l.capture(length));
        self.headers = map;
        Ok(())
    }

    /// A chunk of the body, as it goes to the client.
    fn push(&mut self, chunk: &[u8]) {
        if let Some(c) = &mut self.capture {
            c.push(chunk);
        }
    }

    /// Store the response (or release the key for a status that is not stored). Returns
    /// `None` when done at once, else an asyncio future.
    fn complete(&mut self, py: Python<'_>, event_loop: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let (lease, status, headers, body) = self.finish()?;
        run_async(py, event_loop, async move { lease.complete(status, &headers, body).await }, none)
    }

    /// Store the response, blocking with the GIL released (WSGI).
    fn complete_blocking(&mut self, py: Python<'_>) -> PyResult<()> {
        let (lease, status, headers, body) = self.finish()?;
        run_blocking(py, async move { lease.complete(status, &headers, body).await })
    }

    /// Give the key up so that a retry runs the app again (an exception). With an event
    /// loop, returns `None` or an asyncio future to await, so the key is free by the time
    /// the error reaches the client; without one, the release runs in the background.
    #[pyo3(signature = (event_loop = None))]
    fn release(&mut self, py: Python<'_>, event_loop: Option<&Bound<'_, PyAny>>) -> PyResult<Py<PyAny>> {
        let Some(lease) = self.inner.take() else { return Ok(py.None()) };
        match event_loop {
            Some(event_loop) => run_async(py, event_loop, lease.release(), none),
            None => {
                let rt = crate::runtime::runtime()?;
                let _entered = rt.enter();
                drop(lease);
                Ok(py.None())
            }
        }
    }

    /// Give the key up, blocking with the GIL released (WSGI).
    fn release_blocking(&mut self, py: Python<'_>) -> PyResult<()> {
        match self.inner.take() {
            Some(lease) => run_blocking(py, lease.release()),
            None => Ok(()),
        }
    }

    /// Whether the lease is still open.
    #[getter]
    fn active(&self) -> bool {
        self.inner.is_some()
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        // Dropping the core lease spawns its release on the runtime it was made in.
        if let Some(lease) = self.inner.take()
            && let Ok(rt) = crate::runtime::runtime()
        {
            let _entered = rt.enter();
            drop(lease);
        }
    }
}

fn header_bytes(v: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    if let Ok(b) = v.cast::<PyBytes>() {
        return Ok(b.as_bytes().to_vec());
    }
    let s = v.cast::<PyString>()?.to_str()?;
    // WSGI header strings are latin-1.
    Ok(s.chars().map(|c| u8::try_from(u32::from(c)).unwrap_or(b'?')).collect())
}
