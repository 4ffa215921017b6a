//! Handing a Rust future's result to asyncio without blocking the event loop.
//!
//! The future is polled once on the calling thread (a memory store answers right away, so
//! no asyncio future is made at all). Otherwise it runs on the process's tokio runtime and
//! its result reaches an asyncio future through `loop.call_soon_threadsafe`.

use std::future::Future;
use std::task::Poll;

use pyo3::prelude::*;

use crate::runtime::{poll_once, runtime};

/// Sets an asyncio future's outcome unless it was cancelled in the meantime.
#[pyfunction]
pub fn _settle(fut: &Bound<'_, PyAny>, ok: bool, value: Bound<'_, PyAny>) -> PyResult<()> {
    if fut.call_method0("done")?.is_truthy()? {
        return Ok(());
    }
    if ok { fut.call_method1("set_result", (value,)) } else { fut.call_method1("set_exception", (value,)) }.map(|_| ())
}

/// Run `fut`; its output is turned into a Python value by `convert` (with the GIL held).
/// Returns the value itself when the future is ready at once, else an asyncio future on
/// `event_loop`.
pub fn run_async<F, T>(
    py: Python<'_>,
    event_loop: &Bound<'_, PyAny>,
    fut: F,
    convert: fn(Python<'_>, T) -> PyResult<Py<PyAny>>,
) -> PyResult<Py<PyAny>>
where
    F: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let rt = runtime()?;
    let _entered = rt.enter();
    let mut fut = Box::pin(fut);
    if let Poll::Ready(value) = poll_once(fut.as_mut()) {
        return convert(py, value);
    }
    let py_future = event_loop.call_method0("create_future")?;
    let settle = wrap_pyfunction!(_settle, py)?.into_any().unbind();
    let (target, event_loop) = (py_future.clone().unbind(), event_loop.clone().unbind());
    rt.spawn(async move {
        let value = fut.await;
        Python::attach(|py| {
            let (ok, value) = match convert(py, value) {
                Ok(v) => (true, v),
                Err(e) => (false, e.into_value(py).into_any()),
            };
            let result = event_loop.call_method1(py, "call_soon_threadsafe", (settle, target, ok, value));
            // The loop is closed: nobody is waiting any more; dropping the value (a lease)
            // releases the key.
            if let Err(e) = result {
                tracing::debug!(target: "idempo", error = %e, "event loop gone before the store answered");
            }
        });
    });
    Ok(py_future.unbind())
}

/// Run `fut` to completion on the runtime, with the GIL released (WSGI, sync code).
pub fn run_blocking<F, T>(py: Python<'_>, fut: F) -> PyResult<T>
where
    F: Future<Output = T> + Send,
    T: Send,
{
    let rt = runtime()?;
    let _entered = rt.enter();
    let mut fut = Box::pin(fut);
    if let Poll::Ready(value) = poll_once(fut.as_mut()) {
        return Ok(value);
    }
    drop(_entered);
    Ok(py.detach(|| rt.block_on(fut)))
}
