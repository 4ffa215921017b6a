//! Stores as host languages make them: from a URL and named options, connected lazily and
//! once per process.
//!
//! Once per process because Python servers fork (gunicorn `--preload`): a store made in
//! the parent must not share its sockets with the children, so each process opens its own
//! connections on first use. [`ProcessStore`] does that for any host.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::OnceCell;

use super::options::{Checked, Dialect, STORE, Value, check};
use super::redact::Secrets;
pub use super::redact::redact_url;
use crate::config::ConfigError;
use crate::encryption::EncryptionKeys;
use crate::fingerprint::{Fingerprint, RecordId};
use crate::record::Record;
#[cfg(any(feature = "redis", feature = "postgres"))]
use crate::store::Tls;
use crate::store::{
    Claim, Completion, MemoryStore, MemoryStoreBuilder, Owner, Release, Renewal, Store, StoreError, Token, Watch,
};
#[cfg(feature = "redis")]
use crate::store::{DEFAULT_PREFIX, RedisStore};
#[cfg(feature = "postgres")]
use crate::store::{DEFAULT_SWEEP_INTERVAL, DEFAULT_TABLE, PostgresStore};

/// Which store, where, and its options (the defaults are the core's). Its Debug output is
/// [`StoreSpec::describe`]: never a password.
#[derive(Clone)]
pub enum StoreSpec {
    Memory {
        /// The bounds as set; `max_entries_per_scope` is `None` to follow `max_entries`.
        max_entries: Option<usize>,
        max_entries_per_scope: Option<usize>,
        max_bytes: Option<usize>,
    },
    #[cfg(feature = "redis")]
    Redis { url: String, prefix: String, tls: Tls, keys: Keys },
    #[cfg(feature = "redis")]
    RedisCluster { urls: Vec<String>, prefix: String, tls: Tls, keys: Keys },
    #[cfg(feature = "postgres")]
    Postgres {
        url: String,
        table: String,
        migrate: bool,
        /// The background sweep's interval (zero: off, B23).
        sweep_interval: Duration,
        tls: Tls,
        keys: Keys,
    },
}

/// The encryption keys of a networked store (B24); `None`: records unencrypted.
pub type Keys = Option<Arc<EncryptionKeys>>;

impl StoreSpec {
    /// The store a URL names: `memory`, `redis://…`/`rediss://…`, or
    /// `postgres://…`/`postgresql://…`, with the options that kind of store takes
    /// (`max_entries`, `max_entries_per_scope`, `max_bytes`; `prefix`; `table`, `migrate`,
    /// `sweep_interval`; `ca_file` for both networked stores).
    pub fn from_url(
        url: &str,
        dialect: Dialect,
        options: impl IntoIterator<Item = (String, Value)>,
    ) -> Result<StoreSpec, ConfigError> {
        match scheme(url).as_str() {
            "memory" => StoreSpec::memory(dialect, options),
            #[cfg(feature = "redis")]
            "redis" | "rediss" => StoreSpec::redis(url, dialect, options),
            #[cfg(feature = "postgres")]
            "postgres" | "postgresql" => StoreSpec::postgres(url, dialect, options),
            _ => Err(ConfigError(format!(
                "store URL {:?}: expected \"memory\", a redis:// URL or a postgres:// URL",
                redact_url(url)
            ))),
        }
    }

    /// An in-process store (options `max_entries`, `max_entries_per_scope`, `max_bytes`).
    pub fn memory(
        dialect: Dialect,
        options: impl IntoIterator<Item = (String, Value)>,
    ) -> Result<StoreSpec, ConfigError> {
        let spec = StoreSpec::Memory { max_entries: None, max_entries_per_scope: None, max_bytes: None };
        spec.with(dialect, checked(dialect, options)?)
    }

    /// One Redis server, `redis://…` or `rediss://…` (option `prefix`).
    #[cfg(feature = "redis")]
    pub fn redis(
        url: &str,
        dialect: Dialect,
        options: impl IntoIterator<Item = (String, Value)>,
    ) -> Result<StoreSpec, ConfigError> {
        expect_scheme(url, &["redis", "rediss"], "a Redis URL (redis://host:port, or rediss:// for TLS)")?;
        StoreSpec::Redis { url: url.to_owned(), prefix: DEFAULT_PREFIX.to_owned(), tls: Tls::default(), keys: None }
            .with(dialect, checked(dialect, options)?)
    }

    /// A Redis Cluster reached through any of `urls` (option `prefix`).
    #[cfg(feature = "redis")]
    pub fn redis_cluster(
        urls: Vec<String>,
        dialect: Dialect,
        options: impl IntoIterator<Item = (String, Value)>,
    ) -> Result<StoreSpec, ConfigError> {
        if urls.is_empty() {
            return Err(ConfigError("a Redis Cluster needs the URL of at least one node".into()));
        }
        for url in &urls {
            expect_scheme(url, &["redis", "rediss"], "a Redis URL (redis://host:port)")?;
        }
        StoreSpec::RedisCluster { urls, prefix: DEFAULT_PREFIX.to_owned(), tls: Tls::default(), keys: None }
            .with(dialect, checked(dialect, options)?)
    }

    /// A PostgreSQL database, `postgres://…` (options `table`, `migrate`).
    #[cfg(feature = "postgres")]
    pub fn postgres(
        url: &str,
        dialect: Dialect,
        options: impl IntoIterator<Item = (String, Value)>,
    ) -> Result<StoreSpec, ConfigError> {
        expect_scheme(url, &["postgres", "postgresql"], "a PostgreSQL URL (postgres://user@host:port/db)")?;
        let spec = StoreSpec::Postgres {
            url: url.to_owned(),
            table: DEFAULT_TABLE.to_owned(),
            migrate: true,
            sweep_interval: DEFAULT_SWEEP_INTERVAL,
            tls: Tls::default(),
            keys: None,
        };
        spec.with(dialect, checked(dialect, options)?)
    }

    fn with(mut self, dialect: Dialect, options: Vec<(&'static str, Checked)>) -> Result<StoreSpec, ConfigError> {
        for (name, value) in options {
            match (&mut self, name, value) {
                (StoreSpec::Memory { max_entries, .. }, "max_entries", Checked::Count(n)) => *max_entries = Some(n),
                (StoreSpec::Memory { max_entries_per_scope, .. }, "max_entries_per_scope", Checked::Count(n)) => {
                    *max_entries_per_scope = Some(n)
                }
                (StoreSpec::Memory { max_bytes, .. }, "max_bytes", Checked::Count(n)) => *max_bytes = Some(n),
                #[cfg(feature = "redis")]
                (
                    StoreSpec::Redis { prefix, .. } | StoreSpec::RedisCluster { prefix, .. },
                    "prefix",
                    Checked::Str(p),
                ) => {
                    crate::store::check_prefix(&p)?;
                    *prefix = p
                }
                #[cfg(feature = "postgres")]
                (StoreSpec::Postgres { table, .. }, "table", Checked::Str(t)) => *table = t,
                #[cfg(feature = "postgres")]
                (StoreSpec::Postgres { migrate, .. }, "migrate", Checked::Bool(m)) => *migrate = m,
                #[cfg(feature = "redis")]
                (StoreSpec::Redis { tls, .. } | StoreSpec::RedisCluster { tls, .. }, "ca_file", Checked::Str(path)) => {
                    tls.ca_file = Some(path.into())
                }
                #[cfg(feature = "postgres")]
                (StoreSpec::Postgres { tls, .. }, "ca_file", Checked::Str(path)) => tls.ca_file = Some(path.into()),
                #[cfg(feature = "postgres")]
                (StoreSpec::Postgres { sweep_interval, .. }, "sweep_interval", Checked::Duration(d)) => {
                    *sweep_interval = d
                }
                #[cfg(feature = "redis")]
                (
                    StoreSpec::Redis { keys, .. } | StoreSpec::RedisCluster { keys, .. },
                    "encryption_keys",
                    Checked::Keys(k),
                ) => *keys = Some(k),
                #[cfg(feature = "postgres")]
                (StoreSpec::Postgres { keys, .. }, "encryption_keys", Checked::Keys(k)) => *keys = Some(k),
                (StoreSpec::Memory { .. }, "encryption_keys", _) => {
                    return Err(ConfigError(format!(
                        "{} is not an option of a memory store: it keeps records in this process's memory, \
                         never on disk or the network (encryption applies to Redis and PostgreSQL)",
                        dialect.name(name)
                    )));
                }
                (spec, name, _) => {
                    return Err(ConfigError(format!("{} is not an option of {}", dialect.name(name), spec.what())));
                }
            }
        }
        Ok(self)
    }

    /// A store of `kind`: `memory`, `redis`, `cluster` (`urls` are its nodes), `postgres`,
    /// or `url` (whatever the URL names), as the bindings' store classes make them.
    pub fn of(
        kind: &str,
        urls: Vec<String>,
        dialect: Dialect,
        options: impl IntoIterator<Item = (String, Value)>,
    ) -> Result<StoreSpec, ConfigError> {
        let url = urls.first().map_or("", String::as_str);
        match kind {
            "memory" => StoreSpec::memory(dialect, options),
            #[cfg(feature = "redis")]
            "redis" => StoreSpec::redis(url, dialect, options),
            #[cfg(feature = "redis")]
            "cluster" => StoreSpec::redis_cluster(urls, dialect, options),
            #[cfg(feature = "postgres")]
            "postgres" => StoreSpec::postgres(url, dialect, options),
            "url" => StoreSpec::from_url(url, dialect, options),
            other => Err(ConfigError(format!("no store of kind {other:?}"))),
        }
    }

    /// `memory`, `redis` or `postgres`.
    pub fn kind(&self) -> &'static str {
        match self {
            StoreSpec::Memory { .. } => "memory",
            #[cfg(feature = "redis")]
            StoreSpec::Redis { .. } | StoreSpec::RedisCluster { .. } => "redis",
            #[cfg(feature = "postgres")]
            StoreSpec::Postgres { .. } => "postgres",
        }
    }

    /// The kind of store a URL names (`memory`, `redis` or `postgres`), without connecting.
    pub fn kind_of_url(url: &str) -> Result<&'static str, ConfigError> {
        StoreSpec::from_url(url, Dialect::Python, []).map(|spec| spec.kind())
    }

    fn what(&self) -> &'static str {
        match self.kind() {
            "memory" => "a memory store",
            "redis" => "a Redis store",
            _ => "a PostgreSQL store",
        }
    }

    /// What a repr shows: the kind, where (without passwords) and the options.
    pub fn describe(&self) -> String {
        match self {
            StoreSpec::Memory { .. } => {
                let l = self.memory_builder().limits();
                format!(
                    "MemoryStore(max_entries={}, max_entries_per_scope={}, max_bytes={})",
                    l.max_entries, l.max_entries_per_scope, l.max_bytes
                )
            }
            #[cfg(feature = "redis")]
            StoreSpec::Redis { url, prefix, tls, keys } => {
                format!("RedisStore({:?}, prefix={prefix:?}{}{})", redact_url(url), shown(tls), key_ids(keys))
            }
            #[cfg(feature = "redis")]
            StoreSpec::RedisCluster { urls, prefix, tls, keys } => {
                format!("RedisStore.cluster({} nodes, prefix={prefix:?}{}{})", urls.len(), shown(tls), key_ids(keys))
            }
            #[cfg(feature = "postgres")]
            StoreSpec::Postgres { url, table, sweep_interval, tls, keys, .. } => format!(
                "PostgresStore({:?}, table={table:?}, sweep_interval={}s{}{})",
                redact_url(url),
                sweep_interval.as_secs_f64(),
                shown(tls),
                key_ids(keys)
            ),
        }
    }

    /// The keys this store encrypts records with (B24), if any.
    pub fn encryption_keys(&self) -> Option<&Arc<EncryptionKeys>> {
        match self {
            StoreSpec::Memory { .. } => None,
            #[cfg(feature = "redis")]
            StoreSpec::Redis { keys, .. } | StoreSpec::RedisCluster { keys, .. } => keys.as_ref(),
            #[cfg(feature = "postgres")]
            StoreSpec::Postgres { keys, .. } => keys.as_ref(),
        }
    }

    /// The memory store's builder with the bounds set (the core's defaults for the rest).
    #[allow(irrefutable_let_patterns)] // with neither networked store built in
    fn memory_builder(&self) -> MemoryStoreBuilder {
        let mut b = MemoryStore::builder();
        if let StoreSpec::Memory { max_entries, max_entries_per_scope, max_bytes } = self {
            if let Some(n) = max_entries {
                b = b.max_entries(*n);
            }
            if let Some(n) = max_entries_per_scope {
                b = b.max_entries_per_scope(*n);
            }
            if let Some(n) = max_bytes {
                b = b.max_bytes(*n);
            }
        }
        b
    }

    /// The secrets in this store's URLs.
    fn secrets(&self) -> Secrets {
        match self {
            StoreSpec::Memory { .. } => Secrets::default(),
            #[cfg(feature = "redis")]
            StoreSpec::Redis { url, .. } => Secrets::of([url.as_str()]),
            #[cfg(feature = "redis")]
            StoreSpec::RedisCluster { urls, .. } => Secrets::of(urls.iter().map(String::as_str)),
            #[cfg(feature = "postgres")]
            StoreSpec::Postgres { url, .. } => Secrets::of([url.as_str()]),
        }
    }

    /// `e` without this store's secrets, should the client library have put them in it.
    pub fn scrub(&self, e: StoreError) -> StoreError {
        let StoreError::Unavailable(inner) = &e else { return e };
        let text = inner.to_string();
        match self.secrets().scrub(&text) {
            std::borrow::Cow::Borrowed(_) => e,
            std::borrow::Cow::Owned(clean) => StoreError::unavailable(clean),
        }
    }

    /// Connect (and for PostgreSQL with `migrate`, create the table).
    pub async fn connect(&self) -> Result<Connected, StoreError> {
        self.connect_unscrubbed().await.map_err(|e| self.scrub(e))
    }

    async fn connect_unscrubbed(&self) -> Result<Connected, StoreError> {
        let store: Arc<dyn Store> = match self {
            StoreSpec::Memory { .. } => Arc::new(self.memory_builder().build()),
            #[cfg(feature = "redis")]
            StoreSpec::Redis { url, prefix, tls, keys } => Arc::new(encrypted(
                RedisStore::connect_with(url, tls)
                    .await?
                    .with_prefix(prefix.clone())
                    .map_err(StoreError::unavailable)?,
                keys,
                RedisStore::with_encryption_keys,
            )),
            #[cfg(feature = "redis")]
            StoreSpec::RedisCluster { urls, prefix, tls, keys } => Arc::new(encrypted(
                RedisStore::connect_cluster_with(urls.iter().map(String::as_str), tls)
                    .await?
                    .with_prefix(prefix.clone())
                    .map_err(StoreError::unavailable)?,
                keys,
                RedisStore::with_encryption_keys,
            )),
            #[cfg(feature = "postgres")]
            StoreSpec::Postgres { url, table, migrate, sweep_interval, tls, keys } => {
                let pool = PostgresStore::connect_with(url, tls).await?.pool().clone();
                let store = PostgresStore::with_table(pool, table)?.with_sweep_interval(*sweep_interval);
                let store = encrypted(store, keys, PostgresStore::with_encryption_keys);
                if *migrate {
                    store.migrate().await?;
                }
                return Ok(Connected { store: Arc::new(store.clone()), postgres: Some(store) });
            }
        };
        Ok(Connected::of(store))
    }
}

/// `store` given `keys`, when there are some.
#[cfg(any(feature = "redis", feature = "postgres"))]
fn encrypted<S>(store: S, keys: &Keys, with: fn(S, Arc<EncryptionKeys>) -> S) -> S {
    match keys {
        Some(keys) => with(store, keys.clone()),
        None => store,
    }
}

/// A store's key ids as its description shows them ("" without encryption): never a key.
#[cfg(any(feature = "redis", feature = "postgres"))]
fn key_ids(keys: &Keys) -> String {
    keys.as_ref().map(|k| format!(", encryption_keys={:?}", k.ids().collect::<Vec<_>>())).unwrap_or_default()
}

/// A store's CA file as its description shows it ("" without one).
#[cfg(any(feature = "redis", feature = "postgres"))]
fn shown(tls: &Tls) -> String {
    tls.ca_file.as_ref().map(|p| format!(", ca_file={:?}", p.display().to_string())).unwrap_or_default()
}

fn scheme(url: &str) -> String {
    url.split_once("://").map_or(url, |(s, _)| s).to_ascii_lowercase()
}

#[cfg(any(feature = "redis", feature = "postgres"))]
fn expect_scheme(url: &str, schemes: &[&str], what: &str) -> Result<(), ConfigError> {
    if url.contains("://") && schemes.contains(&scheme(url).as_str()) {
        return Ok(());
    }
    Err(ConfigError(format!("store URL {:?} is not {what}", redact_url(url))))
}

fn checked(
    dialect: Dialect,
    options: impl IntoIterator<Item = (String, Value)>,
) -> Result<Vec<(&'static str, Checked)>, ConfigError> {
    let mut out = Vec::new();
    for (name, value) in options {
        out.extend(check(STORE, "store", dialect, &name, value)?);
    }
    Ok(out)
}

/// A connected store; a PostgreSQL one is also kept by its type, for `sweep`.
#[derive(Clone)]
pub struct Connected {
    pub store: Arc<dyn Store>,
    #[cfg(feature = "postgres")]
    pub postgres: Option<PostgresStore>,
}

impl Connected {
    /// A connected store that is not PostgreSQL.
    fn of(store: Arc<dyn Store>) -> Connected {
        Connected {
            store,
            #[cfg(feature = "postgres")]
            postgres: None,
        }
    }
}

type Cell = Arc<OnceCell<Connected>>;

/// Connecting for an operation ([`ProcessStore::get`]), in a box of its own.
type Connecting<'a> = Pin<Box<dyn Future<Output = Result<Arc<dyn Store>, StoreError>> + Send + 'a>>;

/// A store connected once per process (see the module's documentation).
pub struct ProcessStore {
    spec: StoreSpec,
    /// This process's connection, and the fork count (`crate::forks`) it was made under:
    /// a forked child finds it made before its fork and makes its own.
    current: Mutex<Option<(u64, Cell)>>,
    /// The fork count when it was made: a process forked since is another one.
    creator: u64,
}

impl std::fmt::Debug for StoreSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl std::fmt::Debug for ProcessStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.spec.describe())
    }
}

impl ProcessStore {
    pub fn new(spec: StoreSpec) -> Arc<ProcessStore> {
        Arc::new(ProcessStore { spec, current: Mutex::new(None), creator: crate::forks::generation() })
    }

    pub fn spec(&self) -> &StoreSpec {
        &self.spec
    }

    fn cell(&self) -> Cell {
        let forks = crate::forks::generation();
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        match &*current {
            Some((made, cell)) if *made == forks => cell.clone(),
            _ => {
                // A memory store made in another process (before a fork): this one starts
                // empty, and a key sent to two workers runs twice (B21). Said once.
                static WARNED: AtomicBool = AtomicBool::new(false);
                if forks != self.creator
                    && matches!(self.spec, StoreSpec::Memory { .. })
                    && !WARNED.swap(true, Ordering::Relaxed)
                {
                    tracing::warn!(
                        target: "idempo",
                        "a MemoryStore made in another process is used in this one (a forked worker): \
                         each process has its own, empty store, so a key sent to two workers runs twice; \
                         use a RedisStore or PostgresStore with several workers"
                    );
                }
                let cell = Cell::default();
                *current = Some((forks, cell.clone()));
                cell
            }
        }
    }

    /// This process's connection, made on first use.
    pub async fn connected(&self) -> Result<Connected, StoreError> {
        self.cell().get_or_try_init(|| self.spec.connect()).await.cloned()
    }

    /// The store for an operation. Connecting is a separate boxed future: its state (some
    /// 15 KB with the clients' connect futures) would otherwise be part of every
    /// operation's future, copied whole each time one is boxed or spawned.
    async fn get(&self) -> Result<Arc<dyn Store>, StoreError> {
        match self.ready() {
            Some(store) => Ok(store),
            None => self.connect_boxed().await,
        }
    }

    fn connect_boxed(&self) -> Connecting<'_> {
        Box::pin(async move { Ok(self.connected().await?.store) })
    }

    /// The store, if it is there without waiting: connected already, or a memory store
    /// (made on the spot). For the in-process operations, which must not wait.
    fn ready(&self) -> Option<Arc<dyn Store>> {
        let cell = self.cell();
        if let Some(connected) = cell.get() {
            return Some(connected.store.clone());
        }
        if !matches!(self.spec, StoreSpec::Memory { .. }) {
            return None;
        }
        // Another thread may have made it first: theirs is the one.
        let _ = cell.set(Connected::of(Arc::new(self.spec.memory_builder().build())));
        cell.get().map(|c| c.store.clone())
    }

    /// An operation's error, without the store's secrets.
    fn scrubbed<T>(&self, result: Result<T, StoreError>) -> Result<T, StoreError> {
        result.map_err(|e| self.spec.scrub(e))
    }

    /// Delete expired rows, `batch` at a time (PostgreSQL only; by default
    /// [`DEFAULT_SWEEP_BATCH`](crate::store::DEFAULT_SWEEP_BATCH)); how many were deleted.
    pub async fn sweep(&self, batch: Option<u32>) -> Result<u64, StoreError> {
        #[cfg(feature = "postgres")]
        if let Some(pg) = self.connected().await?.postgres {
            return self.scrubbed(pg.sweep(batch.unwrap_or(crate::store::DEFAULT_SWEEP_BATCH)).await);
        }
        let _ = batch;
        Err(StoreError::unavailable(format!("sweep needs a PostgreSQL store, not {}", self.spec.what())))
    }
}

#[async_trait]
impl Store for ProcessStore {
    async fn claim(&self, id: &RecordId, fingerprint: &Fingerprint, lease_ttl: Duration) -> Result<Claim, StoreError> {
        let store = self.get().await?;
        self.scrubbed(store.claim(id, fingerprint, lease_ttl).await)
    }

    async fn claim_for(
        &self,
        owner: Owner<'_>,
        id: &RecordId,
        fingerprint: &Fingerprint,
        lease_ttl: Duration,
    ) -> Result<Claim, StoreError> {
        let store = self.get().await?;
        self.scrubbed(store.claim_for(owner, id, fingerprint, lease_ttl).await)
    }

    fn in_process(&self) -> bool {
        matches!(self.spec, StoreSpec::Memory { .. })
    }

    fn claim_in_process(
        &self,
        owner: Owner<'_>,
        id: &RecordId,
        fingerprint: &Fingerprint,
        lease_ttl: Duration,
    ) -> Option<Result<Claim, StoreError>> {
        let store = self.ready()?;
        Some(self.scrubbed(store.claim_in_process(owner, id, fingerprint, lease_ttl)?))
    }

    fn complete_in_process(
        &self,
        id: &RecordId,
        fingerprint: &Fingerprint,
        token: Token,
        record: &Record,
        ttl: Duration,
    ) -> Option<Result<Completion, StoreError>> {
        let store = self.ready()?;
        Some(self.scrubbed(store.complete_in_process(id, fingerprint, token, record, ttl)?))
    }

    async fn renew(&self, id: &RecordId, token: Token, lease_ttl: Duration) -> Result<Renewal, StoreError> {
        let store = self.get().await?;
        self.scrubbed(store.renew(id, token, lease_ttl).await)
    }

    async fn complete(
        &self,
        id: &RecordId,
        fingerprint: &Fingerprint,
        token: Token,
        record: &Record,
        ttl: Duration,
    ) -> Result<Completion, StoreError> {
        let store = self.get().await?;
        self.scrubbed(store.complete(id, fingerprint, token, record, ttl).await)
    }

    async fn release(&self, id: &RecordId, token: Token) -> Result<Release, StoreError> {
        let store = self.get().await?;
        self.scrubbed(store.release(id, token).await)
    }

    async fn watch(&self, id: &RecordId) -> Option<Watch> {
        self.get().await.ok()?.watch(id).await
    }

    fn encrypts(&self) -> bool {
        self.spec.encryption_keys().is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stores_from_urls_with_their_options() {
        let none = Vec::<(String, Value)>::new;
        assert!(matches!(
            StoreSpec::from_url("memory", Dialect::Python, none()),
            Ok(StoreSpec::Memory { max_entries: None, max_entries_per_scope: None, max_bytes: None })
        ));
        let spec = StoreSpec::from_url(
            "postgres://u:pw@h/db",
            Dialect::JavaScript,
            [("table".to_owned(), Value::Str("t".into())), ("migrate".to_owned(), Value::Bool(false))],
        )
        .unwrap();
        assert_eq!(spec.describe(), "PostgresStore(\"postgres://u:***@h/db\", table=\"t\", sweep_interval=60s)");
        let err =
            StoreSpec::from_url("redis://h", Dialect::JavaScript, [("maxEntries".to_owned(), Value::Number(5.0))]);
        assert_eq!(err.unwrap_err().0, "maxEntries is not an option of a Redis store");
        let err = StoreSpec::from_url("mysql://u:pw@h", Dialect::Python, none()).unwrap_err();
        assert!(err.0.contains("mysql://u:***@h") && !err.0.contains("pw"), "{err}");
        let err = StoreSpec::redis("postgres://h/db", Dialect::Python, none()).unwrap_err();
        assert_eq!(err.0, "store URL \"postgres://h/db\" is not a Redis URL (redis://host:port, or rediss:// for TLS)");
        assert!(StoreSpec::postgres("not a url", Dialect::Python, none()).is_err());
    }

    #[test]
    fn b24_encryption_keys_as_text_or_pairs_shown_by_id_only() {
        use base64::Engine as _;
        let key = [0x5a_u8; 32];
        let text = format!("k2:{},k1:{}", base64::engine::general_purpose::STANDARD.encode(key), "A".repeat(43));
        let opt = |name: &str, v: Value| vec![(name.to_owned(), v)];
        let spec = StoreSpec::from_url("redis://h", Dialect::Python, opt("encryption_keys", Value::Str(text.clone())))
            .unwrap();
        assert_eq!(spec.describe(), "RedisStore(\"redis://h\", prefix=\"idempo:\", encryption_keys=[\"k2\", \"k1\"])");
        assert_eq!(format!("{spec:?}"), spec.describe());
        assert!(ProcessStore::new(spec).encrypts());
        let pairs = Value::List(vec![Value::List(vec![Value::Str("k1".into()), Value::Bytes(key.to_vec())])]);
        let spec = StoreSpec::from_url("postgres://h/db", Dialect::JavaScript, opt("encryptionKeys", pairs)).unwrap();
        assert!(spec.describe().ends_with("encryption_keys=[\"k1\"])"), "{}", spec.describe());
        assert!(!ProcessStore::new(StoreSpec::from_url("redis://h", Dialect::Python, Vec::new()).unwrap()).encrypts());
        // Errors name the option as the host spells it and never show a key.
        let err =
            |url: &str, d: Dialect, name: &str, v: Value| StoreSpec::from_url(url, d, opt(name, v)).unwrap_err().0;
        let e = err("memory", Dialect::Python, "encryption_keys", Value::Str(text.clone()));
        assert!(e.starts_with("encryption_keys is not an option of a memory store"), "{e}");
        let e = err("redis://h", Dialect::JavaScript, "encryptionKeys", Value::Str("k1:c2hvcnQ=".into()));
        assert_eq!(e, "encryptionKeys: key \"k1\" must be 32 bytes, got 5 (make one with `openssl rand -base64 32`)");
        let e = err("redis://h", Dialect::Python, "encryption_keys", Value::Bytes(key.to_vec()));
        assert!(e.contains("encryption_keys must be a list of (id, key bytes) pairs") && !e.contains("90"), "{e}");
        let bad_pair = Value::List(vec![Value::List(vec![Value::Str("k1".into()), Value::Str("text".into())])]);
        assert!(err("redis://h", Dialect::Python, "encryption_keys", bad_pair).contains("(id, key bytes) pairs"));
    }

    #[test]
    fn an_operation_s_future_does_not_carry_the_connect_future() {
        // Each operation's future is boxed (async_trait) and spawned by the bindings, a copy
        // of its whole size each time: connecting (some 15 KB of client state) is boxed apart.
        let spec = StoreSpec::from_url("redis://127.0.0.1:1", Dialect::Python, Vec::new()).unwrap();
        let store = ProcessStore::new(spec);
        let (id, fp) = (RecordId([9; 32]), crate::fingerprint::Fingerprint([1; 32]));
        let claim = Store::claim(&*store, &id, &fp, Duration::from_secs(1));
        assert!(std::mem::size_of_val(&*claim) < 1024, "claim's future: {} bytes", std::mem::size_of_val(&*claim));
        let record = Record { status: http::StatusCode::OK, headers: Vec::new(), body: None };
        let token = crate::store::Token::random();
        let complete = Store::complete(&*store, &id, &fp, token, &record, Duration::from_secs(1));
        assert!(
            std::mem::size_of_val(&*complete) < 1024,
            "complete's future: {} bytes",
            std::mem::size_of_val(&*complete)
        );
    }

    #[tokio::test]
    async fn b20_a_process_store_passes_its_store_s_events_on() {
        let spec = StoreSpec::from_url("memory", Dialect::Python, Vec::new()).unwrap();
        let store = ProcessStore::new(spec);
        let (id, fp) = (RecordId([9; 32]), crate::fingerprint::Fingerprint([1; 32]));
        let Ok(Claim::Claimed { token }) = store.claim(&id, &fp, Duration::from_secs(60)).await else { panic!() };
        let mut watch = store.watch(&id).await.expect("the memory store's events reach the waiter");
        store.release(&id, token).await.unwrap();
        tokio::time::timeout(Duration::from_secs(1), watch.woken()).await.expect("woken by the release");
    }
}
