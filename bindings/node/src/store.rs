//! The native store handle. The package's `MemoryStore`, `RedisStore` and `PostgresStore`
//! classes (index.js) each hold one, made by these factories.

use std::sync::Arc;

use idempo::store::{PostgresStore, RedisStore};
use idempo::{MemoryStore, Store};
use napi_derive::napi;

/// Async napi functions reject with a plain error; the package's `RedisStore.connect` and
/// friends turn every rejection into a `StoreUnavailableError`.
type Result<T> = napi::Result<T>;

fn store_error(e: idempo::StoreError) -> napi::Error {
    napi::Error::from_reason(e.to_string())
}

/// A connected store.
#[napi]
pub struct NativeStore {
    pub(crate) inner: Arc<dyn Store>,
    pub(crate) postgres: Option<PostgresStore>,
    description: String,
}

#[napi]
impl NativeStore {
    /// An in-process store holding at most `max_entries` entries.
    #[napi]
    pub fn memory(max_entries: Option<u32>) -> NativeStore {
        let max = max_entries.map_or(idempo::store::DEFAULT_MAX_ENTRIES, |n| n as usize);
        NativeStore {
            inner: Arc::new(MemoryStore::with_max_entries(max)),
            postgres: None,
            description: format!("MemoryStore(maxEntries={max})"),
        }
    }

    /// Connect to Redis; rejects if the server cannot be reached.
    #[napi]
    pub async fn redis(url: String, prefix: Option<String>) -> Result<NativeStore> {
        let store = RedisStore::connect(&url).await.map_err(store_error)?;
        let store = match prefix {
            Some(p) => store.with_prefix(p),
            None => store,
        };
        Ok(NativeStore { inner: Arc::new(store), postgres: None, description: "RedisStore".into() })
    }

    /// Connect to a Redis Cluster through any of `urls`.
    #[napi]
    pub async fn redis_cluster(urls: Vec<String>, prefix: Option<String>) -> Result<NativeStore> {
        let store = RedisStore::connect_cluster(urls.iter().map(String::as_str)).await.map_err(store_error)?;
        let store = match prefix {
            Some(p) => store.with_prefix(p),
            None => store,
        };
        Ok(NativeStore { inner: Arc::new(store), postgres: None, description: "RedisStore(cluster)".into() })
    }

    /// Connect to PostgreSQL and (unless `migrate` is false) create the table.
    #[napi]
    pub async fn postgres(url: String, table: Option<String>, migrate: Option<bool>) -> Result<NativeStore> {
        let pool = PostgresStore::connect(&url).await.map_err(store_error)?.pool().clone();
        let table = table.unwrap_or_else(|| idempo::store::DEFAULT_TABLE.to_owned());
        let store = PostgresStore::with_table(pool, &table).map_err(store_error)?;
        if migrate.unwrap_or(true) {
            store.migrate().await.map_err(store_error)?;
        }
        Ok(NativeStore {
            inner: Arc::new(store.clone()),
            postgres: Some(store),
            description: format!("PostgresStore(table={table:?})"),
        })
    }

    /// Delete expired rows (PostgreSQL), `batch` at a time; resolves to how many.
    #[napi]
    pub async fn sweep(&self, batch: Option<u32>) -> Result<u32> {
        match &self.postgres {
            Some(pg) => pg.sweep(batch.unwrap_or(1000)).await.map(|n| n as u32).map_err(store_error),
            None => Err(napi::Error::from_reason("sweep() needs a PostgresStore")),
        }
    }

    #[napi]
    pub fn describe(&self) -> String {
        self.description.clone()
    }
}
