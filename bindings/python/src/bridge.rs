//! Handing a Rust future's result to asyncio without blocking the event loop.
//!
//! The future is polled once on the calling thread (a memory store answers right away, so
//! no asyncio future is made at all). Otherwise it runs on the process's tokio runtime and
//! its result goes into the event loop's completion queue; the loop drains the queue from
//! a reader callback on a pipe, and settles the asyncio futures there.
//!
//! Why not `loop.call_soon_threadsafe` from the runtime thread: that needs the GIL on the
//! runtime thread, and a busy event loop holds the GIL until CPython's switch interval
//! (5 ms) forces a hand-over. The core's `Inbox` needs no GIL on the runtime side.

use std::cell::RefCell;
use std::future::Future;
use std::sync::Arc;

use idempo::host::inbox::Inbox;
use idempo::host::{Now, now_if};
use pyo3::prelude::*;

use crate::error::runtime;

/// Work for the event loop's thread: settle one asyncio future (needs the GIL).
type Job = Box<dyn FnOnce(Python<'_>) + Send>;
type Queue = Inbox<Job>;

/// The reader callback registered with the event loop (`loop.add_reader`).
#[pyclass(frozen)]
struct Drain {
    queue: Arc<Queue>,
}

#[pymethods]
impl Drain {
    fn __call__(&self, py: Python<'_>) {
        for job in self.queue.take() {
            job(py);
        }
    }
}

/// The queue of the event loop last seen on a thread, in the process `pid`. Holding the
/// loop keeps its address from being reused by another loop while it is cached.
struct Current {
    pid: u32,
    event_loop: Py<PyAny>,
    queue: Arc<Queue>,
}

thread_local! {
    static CURRENT: RefCell<Option<Current>> = const { RefCell::new(None) };
}

/// The completion queue of `event_loop`, registered with it on first use.
fn queue_of(py: Python<'_>, event_loop: &Bound<'_, PyAny>) -> PyResult<Arc<Queue>> {
    let pid = std::process::id();
    let cached = CURRENT.with_borrow(|c| match c {
        Some(c) if c.pid == pid && c.event_loop.as_ptr() == event_loop.as_ptr() => Some(c.queue.clone()),
        _ => None,
    });
    if let Some(queue) = cached {
        return Ok(queue);
    }
    let queue = Arc::new(Queue::new()?);
    py.import("os")?.call_method1("set_blocking", (queue.fd(), false))?;
    event_loop.call_method1("add_reader", (queue.fd(), Drain { queue: queue.clone() }))?;
    CURRENT
        .with_borrow_mut(|c| *c = Some(Current { pid, event_loop: event_loop.clone().unbind(), queue: queue.clone() }));
    Ok(queue)
}

/// Run `fut`; its output is turned into a Python value by `convert` (with the GIL held).
/// The value itself when the future is ready at once (it is polled here only when
/// `in_process`: the store answers without I/O, `now_if`). Else, with an event loop, an
/// asyncio future on it; without one (WSGI, sync code), the value, the GIL released
/// meanwhile.
pub fn run<F, T>(
    py: Python<'_>,
    event_loop: Option<&Bound<'_, PyAny>>,
    in_process: bool,
    fut: F,
    convert: fn(Python<'_>, T) -> PyResult<Py<PyAny>>,
) -> PyResult<Py<PyAny>>
where
    F: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let rt = runtime()?;
    let entered = rt.enter();
    let fut = match now_if(in_process, fut) {
        Now::Ready(value) => return convert(py, value),
        Now::Later(fut) => fut,
    };
    drop(entered);
    let Some(event_loop) = event_loop else { return convert(py, py.detach(|| rt.block_on(fut))) };
    let queue = queue_of(py, event_loop)?;
    let py_future = event_loop.call_method0("create_future")?;
    let target = py_future.clone().unbind();
    rt.spawn(async move {
        let value = fut.await;
        queue.push(Box::new(move |py| settle(py, target.bind(py), convert(py, value))));
    });
    Ok(py_future.unbind())
}

/// Set an asyncio future's outcome unless it was cancelled in the meantime (then a lease
/// in it is released: the app never ran).
fn settle(py: Python<'_>, fut: &Bound<'_, PyAny>, outcome: PyResult<Py<PyAny>>) {
    if !matches!(fut.call_method0("done").and_then(|d| d.is_truthy()), Ok(false)) {
        if let Ok(Ok(mut lease)) =
            outcome.as_ref().map(|v| v.bind(py).cast::<crate::engine::Lease>().map(|l| l.borrow_mut()))
        {
            lease.rec.fail_in_background(); // the app never ran
        }
        return;
    }
    let result = match outcome {
        Ok(value) => fut.call_method1("set_result", (value,)),
        Err(e) => fut.call_method1("set_exception", (e.into_value(py),)),
    };
    if let Err(e) = result {
        tracing::debug!(target: "idempo", error = %e, "could not settle an asyncio future");
    }
}
