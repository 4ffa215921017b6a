//! Rust `tracing` events from idempo reach Python `logging` under the logger `idempo`,
//! through the core's log bridge: on a thread of their own, never taking the GIL on a
//! runtime thread. Which levels are wanted is read from the logger now and then (at most
//! once a second, on a request), so events nobody would see are not even formatted.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use idempo::log_bridge;
use pyo3::prelude::*;

/// The lowest Python level wanted (logging.DEBUG = 10 … logging.ERROR = 40).
static MIN_LEVEL: AtomicU8 = AtomicU8::new(30);
static LAST_REFRESH: AtomicU64 = AtomicU64::new(0);
static LOGGER: OnceLock<Py<PyAny>> = OnceLock::new();

/// Set the wanted level from the logger's effective level.
#[pyfunction]
pub fn _refresh_log_level(py: Python<'_>) -> PyResult<()> {
    if let Some(logger) = LOGGER.get() {
        let level: u8 = logger.call_method0(py, "getEffectiveLevel")?.extract(py)?;
        MIN_LEVEL.store(level.max(1), Ordering::Relaxed);
    }
    Ok(())
}

/// Re-read the logger's level if the last read is more than a second old.
pub fn refresh_now_and_then(py: Python<'_>) {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    if LAST_REFRESH.swap(now, Ordering::Relaxed) != now {
        let _ = _refresh_log_level(py);
    }
}

/// Install the bridge once, at module import.
pub fn install(py: Python<'_>) -> PyResult<()> {
    let logger = py.import("logging")?.call_method1("getLogger", ("idempo",))?.unbind();
    if LOGGER.set(logger).is_ok() {
        log_bridge::install(
            &MIN_LEVEL,
            log_bridge::on_own_thread(|level, text| {
                Python::attach(|py| {
                    if let Some(logger) = LOGGER.get() {
                        let _ = logger.call_method1(py, "log", (level, text));
                    }
                })
            }),
        );
    }
    _refresh_log_level(py)
}
