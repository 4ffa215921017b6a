//! `idempo._native`: the idempo core for Python. The `idempo` package's ASGI and WSGI
//! middleware are written over these classes; see `python/idempo`.

mod bridge;
mod engine;
mod error;
mod logging;
mod runtime;
mod store;

use pyo3::prelude::*;

#[pymodule]
#[pyo3(name = "_native")]
fn native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add_class::<store::MemoryStore>()?;
    m.add_class::<store::RedisStore>()?;
    m.add_class::<store::PostgresStore>()?;
    m.add_class::<engine::Engine>()?;
    m.add_class::<engine::Pending>()?;
    m.add_class::<engine::Lease>()?;
    m.add("IdempoError", py.get_type::<error::IdempoError>())?;
    m.add("ConfigurationError", py.get_type::<error::ConfigurationError>())?;
    m.add("StoreUnavailableError", py.get_type::<error::StoreUnavailableError>())?;
    m.add("StoreCorruptError", py.get_type::<error::StoreCorruptError>())?;
    m.add_function(wrap_pyfunction!(logging::_refresh_log_level, m)?)?;
    logging::install(py)?;
    Ok(())
}
