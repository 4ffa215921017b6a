//! `idempo._native`: the idempo core for Python. The `idempo` package's ASGI and WSGI
//! middleware are written over these classes; see `python/idempo`.

/// The extension's own allocations (not Python's) come from mimalloc: Python's threads and
/// the runtime's allocate and free for each other on every store operation, and glibc's
/// arenas make them wait on one another's locks for it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod bridge;
mod convert;
mod engine;
mod error;
mod logging;
mod store;

use idempo::host::{self, Dialect};
use pyo3::prelude::*;
use pyo3::types::PyDict;

/// The core's default of every engine option, as `Engine.options()` reports them.
#[pyfunction]
fn defaults(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    convert::values(py, host::options::defaults(Dialect::Python))
}

#[pymodule]
#[pyo3(name = "_native")]
fn native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add_class::<store::Store>()?;
    m.add_class::<engine::Engine>()?;
    m.add_class::<engine::Pending>()?;
    m.add_class::<engine::Lease>()?;
    m.add_function(wrap_pyfunction!(store::url_kind, m)?)?;
    m.add_function(wrap_pyfunction!(defaults, m)?)?;
    m.add("COUNTERS", idempo::StatsSnapshot::NAMES.to_vec())?;
    m.add("DRAIN_LIMIT", host::DRAIN_LIMIT)?;
    m.add("IdempoError", py.get_type::<error::IdempoError>())?;
    m.add("ConfigurationError", py.get_type::<error::ConfigurationError>())?;
    m.add("StoreUnavailableError", py.get_type::<error::StoreUnavailableError>())?;
    m.add("StoreCorruptError", py.get_type::<error::StoreCorruptError>())?;
    m.add_function(wrap_pyfunction!(logging::_refresh_log_level, m)?)?;
    logging::install(py)?;
    Ok(())
}
