//! Rust `tracing` events from idempo reach Python `logging` under the logger `idempo`.
//!
//! Events can happen on tokio threads (a background completion that failed, a lost
//! lease). Taking the GIL there could stall the runtime for a whole switch interval, so
//! events go through a channel to one thread that logs them with the GIL. Which levels are
//! wanted is read from the logger now and then (at most once a second, on a request), so
//! events nobody would see are not even formatted.

use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::mpsc::{Sender, channel};
use std::sync::{Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use idempo::log_bridge::Bridge;
use pyo3::prelude::*;
use tracing_subscriber::prelude::*;

/// The lowest Python level wanted (logging.DEBUG = 10 … logging.ERROR = 40).
static MIN_LEVEL: AtomicU8 = AtomicU8::new(30);
static LAST_REFRESH: AtomicU64 = AtomicU64::new(0);
static LOGGER: OnceLock<Py<PyAny>> = OnceLock::new();
/// A log record on its way to the logging thread: (Python level, message).
type Record = (u8, String);
/// The logging thread's inbox, with the process it belongs to.
static SINK: Mutex<Option<(u32, Sender<Record>)>> = Mutex::new(None);

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

fn sender() -> Option<Sender<Record>> {
    let pid = std::process::id();
    let mut sink = SINK.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((owner, tx)) = &*sink
        && *owner == pid
    {
        return Some(tx.clone());
    }
    // First event in this process (or the first after fork): start the logging thread.
    let (tx, rx) = channel::<Record>();
    std::thread::Builder::new()
        .name("idempo-logging".into())
        .spawn(move || {
            while let Ok((level, message)) = rx.recv() {
                Python::attach(|py| {
                    if let Some(logger) = LOGGER.get() {
                        let _ = logger.call_method1(py, "log", (level, message));
                    }
                });
            }
        })
        .ok()?;
    *sink = Some((pid, tx.clone()));
    Some(tx)
}

/// Install the bridge once, at module import. If the process already has a global
/// `tracing` subscriber (a Rust host embedding Python), that one is left in charge.
pub fn install(py: Python<'_>) -> PyResult<()> {
    let logger = py.import("logging")?.call_method1("getLogger", ("idempo",))?.unbind();
    if LOGGER.set(logger).is_ok() {
        let bridge = Bridge::new(&MIN_LEVEL, |level, text| {
            if let Some(tx) = sender() {
                let _ = tx.send((level, text));
            }
        });
        let _ = tracing_subscriber::registry().with(bridge).try_init();
    }
    _refresh_log_level(py)
}
