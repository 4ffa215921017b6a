//! The Python store classes. Each holds a description of its store and connects lazily,
//! once per process, so a store made before `fork()` (gunicorn `--preload`) works in every
//! worker: the child opens its own connections instead of sharing the parent's sockets.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use idempo::fingerprint::{Fingerprint, RecordId};
use idempo::record::Record;
use idempo::store::{PostgresStore as PgStore, RedisStore as RStore};
use idempo::{Claim, Completion, MemoryStore as MemStore, Release, Renewal, Store, StoreError, Token};
use pyo3::prelude::*;
use tokio::sync::OnceCell;

use crate::error::store_error;
use crate::runtime::runtime;

enum Spec {
    Memory { max_entries: usize },
    Redis { url: String, prefix: String },
    RedisCluster { urls: Vec<String>, prefix: String },
    Postgres { url: String, table: String, migrate: bool },
}

/// A connected store; the PostgreSQL one is also kept by its type, for `sweep`.
#[derive(Clone)]
struct Connected {
    store: Arc<dyn Store>,
    postgres: Option<PgStore>,
}

type Cell = Arc<OnceCell<Connected>>;

/// A store connected once per process.
pub struct PerProcess {
    spec: Spec,
    current: Mutex<Option<(u32, Cell)>>,
}

impl PerProcess {
    fn new(spec: Spec) -> Arc<PerProcess> {
        Arc::new(PerProcess { spec, current: Mutex::new(None) })
    }

    fn cell(&self) -> Cell {
        let pid = std::process::id();
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        match &*current {
            Some((owner, cell)) if *owner == pid => cell.clone(),
            _ => {
                let cell = Cell::default();
                *current = Some((pid, cell.clone()));
                cell
            }
        }
    }

    async fn connect(&self) -> Result<Connected, StoreError> {
        let store: Arc<dyn Store> = match &self.spec {
            Spec::Memory { max_entries } => Arc::new(MemStore::with_max_entries(*max_entries)),
            Spec::Redis { url, prefix } => Arc::new(RStore::connect(url).await?.with_prefix(prefix.clone())),
            Spec::RedisCluster { urls, prefix } => {
                Arc::new(RStore::connect_cluster(urls.iter().map(String::as_str)).await?.with_prefix(prefix.clone()))
            }
            Spec::Postgres { url, table, migrate } => {
                let pool = PgStore::connect(url).await?.pool().clone();
                let store = PgStore::with_table(pool, table)?;
                if *migrate {
                    store.migrate().await?;
                }
                return Ok(Connected { store: Arc::new(store.clone()), postgres: Some(store) });
            }
        };
        Ok(Connected { store, postgres: None })
    }

    async fn connected(&self) -> Result<Connected, StoreError> {
        self.cell().get_or_try_init(|| self.connect()).await.cloned()
    }

    async fn get(&self) -> Result<Arc<dyn Store>, StoreError> {
        Ok(self.connected().await?.store)
    }

    /// Connect now, blocking with the GIL released; a typed exception if it fails.
    fn connect_now(self: &Arc<Self>, py: Python<'_>) -> PyResult<()> {
        let rt = runtime()?;
        let this = self.clone();
        py.detach(|| rt.block_on(async move { this.get().await.map(|_| ()) })).map_err(store_error)
    }
}

#[async_trait]
impl Store for PerProcess {
    async fn claim(&self, id: &RecordId, fingerprint: &Fingerprint, lease_ttl: Duration) -> Result<Claim, StoreError> {
        self.get().await?.claim(id, fingerprint, lease_ttl).await
    }

    async fn renew(&self, id: &RecordId, token: Token, lease_ttl: Duration) -> Result<Renewal, StoreError> {
        self.get().await?.renew(id, token, lease_ttl).await
    }

    async fn complete(
        &self,
        id: &RecordId,
        token: Token,
        record: &Record,
        ttl: Duration,
    ) -> Result<Completion, StoreError> {
        self.get().await?.complete(id, token, record, ttl).await
    }

    async fn release(&self, id: &RecordId, token: Token) -> Result<Release, StoreError> {
        self.get().await?.release(id, token).await
    }
}

/// Implemented by the three store classes: the engine takes any of them.
pub trait PyStore {
    fn store(&self) -> Arc<PerProcess>;
}

/// An in-process store: one process, no services. `max_entries` bounds it.
#[pyclass(module = "idempo._native", frozen)]
pub struct MemoryStore {
    inner: Arc<PerProcess>,
}

#[pymethods]
impl MemoryStore {
    #[new]
    #[pyo3(signature = (*, max_entries = 100_000))]
    fn new(max_entries: usize) -> MemoryStore {
        MemoryStore { inner: PerProcess::new(Spec::Memory { max_entries }) }
    }

    fn __repr__(&self) -> String {
        let Spec::Memory { max_entries } = self.inner.spec else { unreachable!("a MemoryStore holds a memory spec") };
        format!("MemoryStore(max_entries={max_entries})")
    }
}

/// A store in Redis (`redis://host:port/db`) or, with `RedisStore.cluster`, Redis Cluster.
/// Connects at construction, so a wrong URL fails here with `StoreUnavailableError`.
#[pyclass(module = "idempo._native", frozen)]
pub struct RedisStore {
    inner: Arc<PerProcess>,
    description: String,
}

#[pymethods]
impl RedisStore {
    #[new]
    #[pyo3(signature = (url, *, prefix = "idempo:"))]
    fn new(py: Python<'_>, url: String, prefix: &str) -> PyResult<RedisStore> {
        let description = format!("RedisStore({:?})", redact_url(&url));
        let inner = PerProcess::new(Spec::Redis { url, prefix: prefix.to_owned() });
        inner.connect_now(py)?;
        Ok(RedisStore { inner, description })
    }

    /// A store in a Redis Cluster, reached through any of `urls`.
    #[staticmethod]
    #[pyo3(signature = (urls, *, prefix = "idempo:"))]
    fn cluster(py: Python<'_>, urls: Vec<String>, prefix: &str) -> PyResult<RedisStore> {
        let description = format!("RedisStore.cluster({} nodes)", urls.len());
        let inner = PerProcess::new(Spec::RedisCluster { urls, prefix: prefix.to_owned() });
        inner.connect_now(py)?;
        Ok(RedisStore { inner, description })
    }

    fn __repr__(&self) -> String {
        self.description.clone()
    }
}

/// A store in PostgreSQL (`postgres://user:password@host:port/db`). Connects, and by default
/// creates its table, at construction.
#[pyclass(module = "idempo._native", frozen)]
pub struct PostgresStore {
    inner: Arc<PerProcess>,
    description: String,
}

#[pymethods]
impl PostgresStore {
    #[new]
    #[pyo3(signature = (url, *, table = "idempo_records", migrate = true))]
    fn new(py: Python<'_>, url: String, table: &str, migrate: bool) -> PyResult<PostgresStore> {
        let description = format!("PostgresStore({:?}, table={table:?})", redact_url(&url));
        let inner = PerProcess::new(Spec::Postgres { url, table: table.to_owned(), migrate });
        inner.connect_now(py)?;
        Ok(PostgresStore { inner, description })
    }

    /// Delete expired rows, `batch` at a time; returns how many were deleted.
    #[pyo3(signature = (batch = 1000))]
    fn sweep(&self, py: Python<'_>, batch: u32) -> PyResult<u64> {
        let rt = runtime()?;
        let inner = self.inner.clone();
        py.detach(|| {
            rt.block_on(async move {
                match inner.connected().await?.postgres {
                    Some(pg) => pg.sweep(batch).await,
                    None => Err(StoreError::unavailable("sweep needs a PostgreSQL store")),
                }
            })
        })
        .map_err(store_error)
    }

    fn __repr__(&self) -> String {
        self.description.clone()
    }
}

macro_rules! py_store {
    ($($t:ty),*) => {$(
        impl PyStore for $t {
            fn store(&self) -> Arc<PerProcess> {
                self.inner.clone()
            }
        }
    )*};
}
py_store!(MemoryStore, RedisStore, PostgresStore);

/// The store behind any of the three classes.
pub fn extract(store: &Bound<'_, PyAny>) -> PyResult<Arc<PerProcess>> {
    if let Ok(s) = store.cast::<MemoryStore>() {
        return Ok(s.get().store());
    }
    if let Ok(s) = store.cast::<RedisStore>() {
        return Ok(s.get().store());
    }
    if let Ok(s) = store.cast::<PostgresStore>() {
        return Ok(s.get().store());
    }
    Err(crate::error::config(format!(
        "store must be a MemoryStore, RedisStore or PostgresStore, not {}",
        store.get_type().name().map(|n| n.to_string()).unwrap_or_default()
    )))
}

/// A URL without its password, for reprs.
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{user}:***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}
