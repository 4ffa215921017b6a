//! One tokio runtime per process, created on first use and again after `fork()`.
//!
//! A runtime's threads do not survive `fork()`: a gunicorn worker started with `--preload`
//! inherits the master's runtime object but none of its threads. Each process therefore
//! gets its own runtime, found by process id; the one inherited from the parent is leaked,
//! since dropping it would wait for threads that do not exist.

use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};

use pyo3::PyResult;
use pyo3::exceptions::PyRuntimeError;
use tokio::runtime::Runtime;

static RUNTIME: Mutex<Option<(u32, &'static Runtime)>> = Mutex::new(None);

/// This process's runtime.
pub fn runtime() -> PyResult<&'static Runtime> {
    let pid = std::process::id();
    let mut current = RUNTIME.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((owner, rt)) = *current
        && owner == pid
    {
        return Ok(rt);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("idempo")
        .enable_all()
        .build()
        .map_err(|e| PyRuntimeError::new_err(format!("idempo could not start its I/O runtime: {e}")))?;
    let rt: &'static Runtime = Box::leak(Box::new(rt));
    *current = Some((pid, rt));
    Ok(rt)
}

/// Poll once, without a waker to be woken by: a memory store answers on the first poll.
pub fn poll_once<F: std::future::Future + ?Sized>(fut: Pin<&mut F>) -> Poll<F::Output> {
    fut.poll(&mut Context::from_waker(Waker::noop()))
}
