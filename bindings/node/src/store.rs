//! The native store handle. The package's `MemoryStore`, `RedisStore` and `PostgresStore`
//! classes (lib/stores.js) each hold one, made by these factories (`idempo::host::store`).

use std::sync::Arc;

use idempo::host::Dialect;
use idempo::host::store::{ProcessStore, StoreSpec};
use napi::bindgen_prelude::Object;
use napi_derive::napi;

use crate::convert::options;
use crate::error::{Result, config_error};

/// Async factories reject with a plain error; the package's `RedisStore.connect` and
/// friends turn every rejection into a `StoreUnavailableError`.
fn store_error(e: idempo::StoreError) -> napi::Error {
    napi::Error::from_reason(e.to_string())
}

/// A store, connected (but for memory) when made.
#[napi]
pub struct NativeStore {
    pub(crate) inner: Arc<ProcessStore>,
}

#[napi]
impl NativeStore {
    /// An in-process store (`maxEntries`).
    #[napi(catch_unwind)]
    pub fn memory(options: Option<Object>) -> Result<NativeStore> {
        let spec = StoreSpec::of("memory", Vec::new(), Dialect::JavaScript, self::options(options)?);
        Ok(NativeStore { inner: ProcessStore::new(spec.map_err(config_error)?) })
    }

    /// Check a store's URL and options (`memory`, `redis://…`, `postgres://…`): the spec
    /// to connect with `connect`. Throws a configuration error.
    #[napi(catch_unwind)]
    pub fn spec(kind: String, urls: Vec<String>, options: Option<Object>) -> Result<StoreSpecHandle> {
        let spec = StoreSpec::of(&kind, urls, Dialect::JavaScript, self::options(options)?);
        Ok(StoreSpecHandle { spec: spec.map_err(config_error)? })
    }

    /// Connect to the store `spec` describes; rejects if it cannot be reached.
    #[napi]
    pub async fn connect(spec: &StoreSpecHandle) -> napi::Result<NativeStore> {
        let inner = ProcessStore::new(spec.spec.clone());
        inner.connected().await.map_err(store_error)?;
        Ok(NativeStore { inner })
    }

    /// Which store this is: `memory`, `redis` or `postgres`.
    #[napi(getter, catch_unwind)]
    pub fn kind(&self) -> &'static str {
        self.inner.spec().kind()
    }

    /// Delete expired rows (PostgreSQL), `batch` at a time; resolves to how many.
    #[napi]
    pub async fn sweep(&self, batch: Option<u32>) -> napi::Result<f64> {
        self.inner.sweep(batch).await.map(|n| n as f64).map_err(store_error)
    }

    /// The store, for a repr: kind, where (no password) and options.
    #[napi(catch_unwind)]
    pub fn describe(&self) -> String {
        self.inner.spec().describe()
    }
}

/// A checked store description, not yet connected.
#[napi]
pub struct StoreSpecHandle {
    spec: StoreSpec,
}
