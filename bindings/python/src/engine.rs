//! `Engine`, `Pending` and `Lease`: the core's two-step request handling for the ASGI and
//! WSGI middleware. Conversion only: every rule is the core's (`idempo::host`).

use http::HeaderName;
use idempo::host::text::{bytes_of, environ_key, environ_target};
use idempo::host::{self, Dialect, Recorder};
use idempo::{Begun, Check, Decision, Idempotency};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};

use crate::bridge::run;
use crate::convert::{PyResponse, dict, header_bytes, options, response, values};
use crate::error::{config, config_error, runtime};

/// The idempotency engine over a store, with the options its user set.
#[pyclass(module = "idempo._native", frozen)]
pub struct Engine {
    idem: Idempotency,
    /// The request headers the engine reads, as (name, WSGI environ key).
    read: Vec<(HeaderName, String)>,
}

#[pymethods]
impl Engine {
    #[new]
    #[pyo3(signature = (store, **options))]
    fn new(store: &Bound<'_, PyAny>, options: Option<&Bound<'_, PyDict>>) -> PyResult<Engine> {
        let idem = host::options::build(crate::store::extract(store)?, Dialect::Python, self::options(options)?)
            .map_err(config_error)?;
        let read = idem.request_headers_read().iter().map(|n| (n.clone(), environ_key(n))).collect();
        Ok(Engine { idem, read })
    }

    /// Look at an ASGI request head: `raw_path` and `query_string` as the server gave them,
    /// `headers` the ASGI list of `(name, value)` byte pairs. Returns `None` (pass
    /// through), a response tuple, or a `Pending`.
    fn check_asgi(
        &self,
        py: Python<'_>,
        method: &str,
        path: &[u8],
        query: &[u8],
        headers: &Bound<'_, PyAny>,
    ) -> PyResult<Py<PyAny>> {
        if self.idem.covers(method).is_none() {
            return Ok(py.None());
        }
        // Without the key header a covered request passes through (B4): one name looked
        // for first, before the headers the engine reads are gathered and copied.
        if let (Some(key), Ok(list)) = (self.idem.passes_without(), headers.cast::<PyList>()) {
            let key = key.as_str().as_bytes();
            let named = |item: &Bound<'_, PyAny>| {
                let pair = item.cast::<PyTuple>().ok()?;
                let name = pair.get_borrowed_item(0).ok()?;
                Some(name.cast::<PyBytes>().ok()?.as_bytes().eq_ignore_ascii_case(key))
            };
            // A malformed pair is left to the full reading below, which says what is wrong.
            if list.iter().all(|item| named(&item) == Some(false)) {
                self.idem.count_bypassed(1);
                return Ok(py.None());
            }
        }
        let mut read: Vec<(&HeaderName, Vec<u8>)> = Vec::new();
        let mut take = |item: Bound<'_, PyAny>| -> PyResult<()> {
            let pair = item.cast::<PyTuple>().ok().filter(|p| p.len() == 2);
            let pair =
                pair.ok_or_else(|| PyValueError::new_err("ASGI headers must be (name, value) pairs of bytes"))?;
            if let Some(name) = self.idem.reads(pair.get_borrowed_item(0)?.cast::<PyBytes>()?.as_bytes()) {
                read.push((name, pair.get_borrowed_item(1)?.cast::<PyBytes>()?.as_bytes().to_vec()));
            }
            Ok(())
        };
        // Servers hand a list of tuples: read it without the generic iterator protocol.
        match headers.cast::<PyList>() {
            Ok(list) => list.iter().try_for_each(&mut take)?,
            Err(_) => headers.try_iter()?.try_for_each(|item| take(item?))?,
        }
        self.check(py, method, path, query, &read[..])
    }

    /// Look at a WSGI request, reading its method, target and headers from `environ`.
    fn check_wsgi(&self, py: Python<'_>, environ: &Bound<'_, PyDict>) -> PyResult<Py<PyAny>> {
        // PEP 3333: environ strings hold latin-1 code points; an empty one is an absent one.
        let get = |key: &str| -> PyResult<Option<Vec<u8>>> {
            let value = environ.get_item(key)?;
            value.map(|v| Ok(bytes_of(v.cast::<PyString>()?.to_str()?).into_owned())).transpose()
        };
        let method: String = environ.get_item("REQUEST_METHOD")?.map_or(Ok(String::new()), |m| m.extract())?;
        if self.idem.covers(&method).is_none() {
            return Ok(py.None());
        }
        let mut read: Vec<(&HeaderName, Vec<u8>)> = Vec::new();
        for (name, key) in &self.read {
            if let Some(value) = get(key)?.filter(|v| !v.is_empty() || name != http::header::CONTENT_LENGTH) {
                read.push((name, value));
            }
        }
        let (path, query) = environ_target(get)?;
        self.check(py, &method, &path, &query, &read[..])
    }

    /// The effective value of every option, the core's defaults included.
    fn options<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        values(py, host::options::read(self.idem.config(), Dialect::Python))
    }

    /// The counters (B19) as a dict.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        dict(py, host::counters(&self.idem.stats(), Dialect::Python))
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
        crate::logging::refresh_now_and_then(py);
        Ok(match self.idem.check(method, path, query, headers) {
            Check::Bypass => py.None(),
            Check::Respond(res) => response(py, res).into_pyobject(py)?.into_any().unbind(),
            Check::Proceed(p) => Py::new(py, Pending { inner: Some(p), gone: host::Gone::new() })?.into_any(),
        })
    }
}

/// A keyed request waiting for its body.
#[pyclass(module = "idempo._native")]
pub struct Pending {
    inner: Option<idempo::Pending>,
    gone: host::Gone,
}

fn decided(py: Python<'_>, decision: Decision) -> PyResult<Py<PyAny>> {
    Ok(match decision {
        Decision::Bypass => py.None(),
        Decision::Respond(res) => response(py, res).into_pyobject(py)?.into_any().unbind(),
        Decision::Execute(lease) => Py::new(py, Lease { rec: Recorder::new(lease) })?.into_any(),
    })
}

fn none(py: Python<'_>, _: ()) -> PyResult<Py<PyAny>> {
    Ok(py.None())
}

impl Pending {
    fn get(&mut self) -> PyResult<&mut idempo::Pending> {
        self.inner.as_mut().ok_or_else(|| PyRuntimeError::new_err("this request was already decided"))
    }

    fn take(&mut self) -> PyResult<idempo::Pending> {
        self.inner.take().ok_or_else(|| PyRuntimeError::new_err("this request was already decided"))
    }
}

#[pymethods]
impl Pending {
    /// The largest body to buffer; past it answer `too_large()`.
    #[getter]
    fn body_limit(&mut self) -> PyResult<usize> {
        Ok(self.get()?.body_limit())
    }

    /// Whether `begin` may wait for an in-flight duplicate (B20): only then is it worth
    /// watching for the client leaving meanwhile (`leave`).
    #[getter]
    fn may_wait(&mut self) -> PyResult<bool> {
        Ok(self.get()?.may_wait())
    }

    /// The client left: a wait for an in-flight duplicate stops, freeing its place.
    fn leave(&self) {
        self.gone.leave();
    }

    /// The declared `Content-Length` (already within `body_limit`), or `None`.
    #[getter]
    fn declared_length(&mut self) -> PyResult<Option<u64>> {
        Ok(self.get()?.declared_length())
    }

    /// Put the key in a namespace (B5): what the scope function returned, which must be a
    /// string (`None` is an error: no request may fall into a shared namespace by mistake).
    fn set_scope(&mut self, scope: Option<String>) -> PyResult<()> {
        let scope = scope.ok_or_else(|| config(host::SCOPE_MISSING))?;
        self.get()?.set_scope(scope);
        Ok(())
    }

    /// Put the key in the one global namespace, chosen explicitly (B5).
    fn set_global_scope(&mut self) -> PyResult<()> {
        self.get()?.set_global_scope();
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

    /// Claim the key: a `Lease` (run the app), a response tuple, or `None` (run the app
    /// unprotected); with an event loop, an asyncio future of one when the store needs
    /// I/O; without one (WSGI), blocking with the GIL released.
    #[pyo3(signature = (body, event_loop = None))]
    fn begin(
        &mut self,
        py: Python<'_>,
        body: &Bound<'_, PyBytes>,
        event_loop: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let pending = self.take()?;
        // Decided here when the store answers in this process (memory): no future at all.
        let begun = {
            let _entered = runtime()?.enter();
            pending.begin_now(body.as_bytes())
        };
        match begun {
            Begun::Decided(decision) => decided(py, decision),
            Begun::Claiming(claiming) => {
                let left = self.gone.left();
                run(py, event_loop, false, async move { claiming.finish(left).await }, decided)
            }
        }
    }
}

/// Ownership of a claimed key while the app runs: the core's response recorder. Feed it the
/// response (`start`, `push`), then `complete`; or `release` it. Dropped unfinished, it
/// keeps the claim until `max_lease` (the app may have done its work).
#[pyclass(module = "idempo._native")]
pub struct Lease {
    pub(crate) rec: Recorder,
}

#[pymethods]
impl Lease {
    /// The response head: status, `(name, value)` header pairs (bytes or str), and what
    /// the user's `store_status` said of the status: a bool, an error message if it
    /// raised, or `None` without one. True when the head is the whole response (204,
    /// 304, `Content-Length: 0`): complete before sending it on.
    #[pyo3(signature = (status, headers, verdict = None))]
    fn start(&mut self, status: u32, headers: &Bound<'_, PyAny>, verdict: Option<&Bound<'_, PyAny>>) -> PyResult<bool> {
        let verdict = match verdict.map(|v| (v.cast::<PyString>().map(|s| s.to_string()), v)) {
            Some((Ok(error), _)) => Some(Err(error)),
            Some((Err(_), v)) => Some(Ok(v.is_truthy()?)),
            None => None,
        };
        let mut pairs = Vec::new();
        for item in headers.try_iter()? {
            let item = item?;
            pairs.push((header_bytes(&item.get_item(0)?)?, header_bytes(&item.get_item(1)?)?));
        }
        self.rec.start_raw(status, pairs, verdict).map_err(|e| config(e.to_string()))?;
        Ok(self.rec.head_is_whole())
    }

    /// A chunk of the body, as it goes to the client.
    fn push(&mut self, chunk: &[u8]) {
        self.rec.push(chunk);
    }

    /// The response ended: store it (or release the key for a status not stored);
    /// `omitted`: without its body, the rest of which cannot be had (the client left).
    /// With an event loop, `None` when done at once, else an asyncio future; without one
    /// (WSGI), blocking with the GIL released.
    #[pyo3(signature = (event_loop = None, omitted = false))]
    fn complete(
        &mut self,
        py: Python<'_>,
        event_loop: Option<&Bound<'_, PyAny>>,
        omitted: bool,
    ) -> PyResult<Py<PyAny>> {
        if omitted {
            self.rec.omit();
        }
        let in_process = self.rec.in_process();
        self.rec.finish().map_or(Ok(py.None()), |write| run(py, event_loop, in_process, write, none))
    }

    /// Give the key up so that a retry runs the app again (an exception from the app or
    /// its body), so the key is free by the time the error reaches the client. Returns as
    /// `complete` does.
    #[pyo3(signature = (event_loop = None))]
    fn release(&mut self, py: Python<'_>, event_loop: Option<&Bound<'_, PyAny>>) -> PyResult<Py<PyAny>> {
        let in_process = self.rec.in_process();
        self.rec.fail().map_or(Ok(py.None()), |release| run(py, event_loop, in_process, release, none))
    }

    /// Whether the response has not ended yet (the key is still held).
    #[getter]
    fn active(&self) -> bool {
        self.rec.is_active()
    }

    /// Whether the body is still copied whole: worth reading on for the record.
    #[getter]
    fn capturing(&self) -> bool {
        self.rec.capturing()
    }
}
