//! The native store: one class, which the `idempo` package's MemoryStore, RedisStore and
//! PostgresStore subclass (`python/idempo/_stores.py`). It describes its store
//! (`idempo::host::store`: URL and options checked, the core's defaults) and connects once
//! per process, so a store made before `fork()` works in every worker.

use std::sync::Arc;

use idempo::host::Dialect;
use idempo::host::store::{ProcessStore, StoreSpec};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::error::{config, config_error, runtime, store_error};

#[pyclass(module = "idempo._native", subclass, frozen)]
pub struct Store {
    inner: Arc<ProcessStore>,
}

#[pymethods]
impl Store {
    /// A store of `kind` (`memory`, `redis`, `cluster`, `postgres`, or `url`: what the URL
    /// names). A durable store connects now, in this process, blocking with the GIL
    /// released, so a wrong URL fails here with `StoreUnavailableError`.
    #[new]
    #[pyo3(signature = (kind, urls, **options))]
    fn new(py: Python<'_>, kind: &str, urls: Vec<String>, options: Option<&Bound<'_, PyDict>>) -> PyResult<Store> {
        let options = crate::convert::options(options)?;
        let inner = ProcessStore::new(StoreSpec::of(kind, urls, Dialect::Python, options).map_err(config_error)?);
        if inner.spec().kind() != "memory" {
            let (rt, probe) = (runtime()?, inner.clone());
            py.detach(|| rt.block_on(async move { probe.connected().await.map(|_| ()) })).map_err(store_error)?;
        }
        Ok(Store { inner })
    }

    /// Delete expired rows (PostgreSQL), `batch` at a time; returns how many were deleted.
    #[pyo3(signature = (batch = None))]
    fn sweep(&self, py: Python<'_>, batch: Option<u32>) -> PyResult<u64> {
        let (rt, inner) = (runtime()?, self.inner.clone());
        py.detach(|| rt.block_on(async move { inner.sweep(batch).await })).map_err(store_error)
    }

    fn __repr__(&self) -> String {
        self.inner.spec().describe()
    }
}

/// The kind of store a URL names (`memory`, `redis` or `postgres`), checked, not connected.
#[pyfunction]
pub fn url_kind(url: &str) -> PyResult<&'static str> {
    StoreSpec::kind_of_url(url).map_err(config_error)
}

/// The store behind any of the store classes.
pub fn extract(store: &Bound<'_, PyAny>) -> PyResult<Arc<dyn idempo::Store>> {
    match store.cast::<Store>() {
        Ok(s) => Ok(s.get().inner.clone()),
        Err(_) => Err(config(format!(
            "store must be a MemoryStore, RedisStore or PostgresStore, not {}",
            store.get_type().name().map(|n| n.to_string()).unwrap_or_default()
        ))),
    }
}
