//! The PostgreSQL store (feature `postgres`).
//!
//! One row per record in a table made by [`PostgresStore::migrate`]. Each operation is one
//! statement (claim is a CTE that inserts or reads in one go), prepared once per
//! connection, on connections the store keeps itself (postgres_pipe.rs: pipelined, so the
//! statements of concurrent requests share writes), so one round trip on the wire. Expiry is judged by the database's `now()` only.
//! Expired rows are deleted in batches by a background sweep every `sweep_interval` (60 s,
//! B23), started with the store's first claim; an advisory lock keeps it to one process at
//! a time. [`PostgresStore::sweep`] runs one by hand.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use std::str::FromStr;

use sqlx::AssertSqlSafe;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgSslMode};
use tokio_postgres::Row;
use tokio_postgres::types::{FromSql, ToSql};

use super::postgres_events::Events;
use super::postgres_pipe::{Op, Pipe};
use super::{Claim, Completion, Release, Renewal, Store, StoreError, Tls, Token, Watch};
use crate::encryption::{EncryptionKeys, read_record, write_record};
use crate::fingerprint::{Fingerprint, RecordId};
use crate::record::{DecodeError, Record};

/// The default table name.
pub const DEFAULT_TABLE: &str = "idempo_records";
/// How many expired rows [`PostgresStore::sweep`] deletes per statement when not told.
pub const DEFAULT_SWEEP_BATCH: u32 = 1000;
/// How often the background sweep runs unless told (B23).
pub const DEFAULT_SWEEP_INTERVAL: Duration = Duration::from_secs(60);

/// The store's own connections for its operations when it makes its pool itself: each
/// takes several operations at once (postgres_pipe.rs), so a few serve much concurrency.
const OWN_CONNECTIONS: usize = 4;

/// How often a claim re-reads after losing a race for a row it could not yet see.
const CLAIM_ATTEMPTS: usize = 5;

/// The statements, built once for the configured table.
struct Statements {
    claim: Arc<str>,
    renew: Arc<str>,
    complete: Arc<str>,
    release: Arc<str>,
    mark: Arc<str>,
    sweep: Arc<str>,
    create_table: Arc<str>,
    add_waited: Arc<str>,
    create_index: Arc<str>,
}

impl Statements {
    fn new(table: &str, index: &str, channel: &str) -> Statements {
        let ms = "* interval '1 millisecond'";
        // Complete and release tell the waiters (B20) in the same statement, and only for a
        // row a waiter marked: a NOTIFY serializes commits, so nobody else pays for it.
        let tell = |done: &str| {
            format!(
                "WITH done AS ({done} RETURNING waited)
                 SELECT (SELECT count(*) FROM done) AS n,
                        (SELECT pg_notify('{channel}', encode($1, 'hex')) FROM done WHERE waited) AS told"
            )
            .into()
        };
        Statements {
            // Reads the live row first; only when there is none does it insert a claim (or
            // take over an expired row), so a replay is a plain read that locks nothing.
            // Losing an insert race to a row committed after this statement's snapshot
            // leaves both empty: the caller retries.
            claim: format!(
                "WITH live AS (
                   SELECT fingerprint, token IS NOT NULL AS in_flight, record,
                          ceil(extract(epoch FROM (expires_at - now())) * 1000)::int8 AS left_ms
                   FROM {table} WHERE id = $1 AND expires_at > now()
                 ), claimed AS (
                   INSERT INTO {table} AS r (id, fingerprint, token, record, expires_at)
                   SELECT $1, $2, $3, NULL, now() + $4::int8 {ms}
                   WHERE NOT EXISTS (SELECT 1 FROM live)
                   ON CONFLICT (id) DO UPDATE
                     SET fingerprint = EXCLUDED.fingerprint, token = EXCLUDED.token,
                         record = NULL, expires_at = EXCLUDED.expires_at, waited = false
                     WHERE r.expires_at <= now()
                   RETURNING 1
                 )
                 SELECT EXISTS (SELECT 1 FROM claimed) AS claimed,
                        live.fingerprint, live.in_flight, live.record, live.left_ms
                 FROM (VALUES (1)) AS one(x) LEFT JOIN live ON true"
            )
            .into(),
            // Fenced by the token alone: an expired claim nobody took over is still its
            // holder's (LATE_COMPLETION); a new claim replaces the token.
            renew: format!("UPDATE {table} SET expires_at = now() + $3::int8 {ms} WHERE id = $1 AND token = $2").into(),
            complete: tell(&format!(
                "UPDATE {table} SET record = $3, token = NULL, expires_at = now() + $4::int8 {ms}
                 WHERE id = $1 AND token = $2"
            )),
            release: tell(&format!("DELETE FROM {table} WHERE id = $1 AND token = $2")),
            // A waiter's mark on a claim in flight: its completion or release will notify.
            mark: format!("UPDATE {table} SET waited = true WHERE id = $1 AND token IS NOT NULL AND NOT waited").into(),
            // Expired records; claims only once their holder can no longer finish them. Only
            // the process holding the table's advisory lock deletes (the lock lasts the
            // statement): another one sweeping at the same moment deletes nothing and stops.
            sweep: format!(
                "WITH lock AS MATERIALIZED (SELECT pg_try_advisory_xact_lock($2) AS held)
                 DELETE FROM {table} WHERE (SELECT held FROM lock) AND id IN (
                   SELECT id FROM {table}
                   WHERE expires_at <= now() - CASE WHEN token IS NULL THEN interval '0' ELSE interval '{late} seconds' END
                   LIMIT $1 FOR UPDATE SKIP LOCKED)",
                late = super::LATE_COMPLETION.as_secs()
            )
            .into(),
            create_table: format!(
                "CREATE TABLE IF NOT EXISTS {table} (
                   id bytea PRIMARY KEY,
                   fingerprint bytea NOT NULL,
                   token bytea,
                   record bytea,
                   expires_at timestamptz NOT NULL,
                   waited boolean NOT NULL DEFAULT false
                 )"
            )
            .into(),
            // Tables made before waiting existed (B20) gain the column.
            add_waited: format!("ALTER TABLE {table} ADD COLUMN IF NOT EXISTS waited boolean NOT NULL DEFAULT false")
                .into(),
            create_index: format!("CREATE INDEX IF NOT EXISTS {index} ON {table} (expires_at)").into(),
        }
    }
}

/// A store in PostgreSQL. Cheap to clone: clones share the pool and the sweep.
#[derive(Clone)]
pub struct PostgresStore {
    pool: PgPool,
    table: String,
    sql: Arc<Statements>,
    sweep: Arc<Sweep>,
    events: Arc<Events>,
    /// The connections claim, renew, complete, release and mark run on (postgres_pipe.rs).
    conns: Arc<Pipe>,
    /// The keys records are sealed with (B24); `None`: records are stored unencrypted.
    keys: Option<Arc<EncryptionKeys>>,
}

/// The background sweep: its interval and whether it has started.
struct Sweep {
    interval: Duration,
    started: AtomicBool,
    /// The advisory lock of the table, so that one process sweeps it at a time.
    lock: i64,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("table", &self.table)
            .field("sweep_interval", &self.sweep.interval)
            .field("encryption_keys", &self.keys)
            .finish_non_exhaustive()
    }
}

/// Whether a PostgreSQL URL says its `sslmode`.
fn url_sets_sslmode(url: &str) -> bool {
    url.split_once('?').is_some_and(|(_, query)| {
        query.split('&').any(|pair| pair.split('=').next().is_some_and(|k| k.eq_ignore_ascii_case("sslmode")))
    })
}

/// The advisory lock key of a table's sweep: FNV-1a of its name, so every process (and
/// every language) agrees on it without coordination.
fn sweep_lock(table: &str) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in "idempo.sweep:".bytes().chain(table.bytes()) {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    h as i64
}

fn unavailable(e: sqlx::Error) -> StoreError {
    StoreError::unavailable(e)
}

fn ms(d: Duration) -> i64 {
    d.as_millis().clamp(1, i64::MAX as u128) as i64
}

/// Validate a table name (`name` or `schema.name`): letters, digits and `_`, not starting
/// with a digit, so it can be placed in SQL text safely. Returns the quoted form and an
/// index name.
fn quoted_table(name: &str) -> Result<(String, String), StoreError> {
    let parts: Vec<&str> = name.split('.').collect();
    let valid = |p: &str| {
        !p.is_empty()
            && p.len() <= 48
            && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            && !p.as_bytes()[0].is_ascii_digit()
    };
    if parts.len() > 2 || !parts.iter().all(|p| valid(p)) {
        return Err(StoreError::unavailable(format!(
            "invalid table name {name:?}: use letters, digits and _ (at most 48), optionally schema.table"
        )));
    }
    let quoted = parts.iter().map(|p| format!("\"{p}\"")).collect::<Vec<_>>().join(".");
    let index = format!("\"{}_expires_at\"", parts[parts.len() - 1]);
    Ok((quoted, index))
}

impl PostgresStore {
    /// Connect to `postgres://user:password@host:port/db`: up to 4 connections of the
    /// store's own for its operations (each pipelines several at once), and a pool of up
    /// to 4 for the rest (migration, the sweep, the listener of waiters, B20).
    /// Fails if the database cannot be reached now. Call [`PostgresStore::migrate`] once.
    pub async fn connect(url: &str) -> Result<PostgresStore, StoreError> {
        PostgresStore::connect_with(url, &Tls::default()).await
    }

    /// Connect to `url` trusting what `tls` says. The URL's `sslmode` chooses TLS
    /// (`disable`, `prefer` by default, `require`, `verify-ca`, `verify-full`) and
    /// `sslrootcert` a CA file; `tls.ca_file` is that CA file too, and without an `sslmode`
    /// in the URL it asks for `verify-full`.
    pub async fn connect_with(url: &str, tls: &Tls) -> Result<PostgresStore, StoreError> {
        let mut options = PgConnectOptions::from_str(url).map_err(unavailable)?;
        if let Some(ca) = &tls.ca_file {
            tls.ca_pem()?;
            options = options.ssl_root_cert(ca.as_path());
            if !url_sets_sslmode(url) {
                options = options.ssl_mode(PgSslMode::VerifyFull);
            }
        }
        let pool = PgPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(2))
            .test_before_acquire(false)
            .connect_with(options)
            .await
            .map_err(unavailable)?;
        PostgresStore::build(pool, DEFAULT_TABLE, OWN_CONNECTIONS)
    }

    /// Use an existing pool, with the default table. Its options make the store's own
    /// connections too, as many as the pool may hold; the pool itself serves migration,
    /// the sweep and the listener of waiters.
    pub fn from_pool(pool: PgPool) -> Result<PostgresStore, StoreError> {
        PostgresStore::with_table(pool, DEFAULT_TABLE)
    }

    /// Use an existing pool and the table `name` (or `schema.name`).
    pub fn with_table(pool: PgPool, name: &str) -> Result<PostgresStore, StoreError> {
        let size = pool.options().get_max_connections() as usize;
        PostgresStore::build(pool, name, size)
    }

    fn build(pool: PgPool, name: &str, connections: usize) -> Result<PostgresStore, StoreError> {
        let (table, index) = quoted_table(name)?;
        let channel = format!("idempo_{:016x}", sweep_lock(name) as u64);
        let sql = Arc::new(Statements::new(&table, &index, &channel));
        let sweep = Sweep { interval: DEFAULT_SWEEP_INTERVAL, started: AtomicBool::new(false), lock: sweep_lock(name) };
        let events = Arc::new(Events::new(pool.clone(), channel));
        let statements = [&sql.claim, &sql.renew, &sql.complete, &sql.release, &sql.mark].map(Arc::clone);
        let conns = Arc::new(Pipe::new(&pool.connect_options(), statements, connections)?);
        Ok(PostgresStore { pool, table: name.to_owned(), sql, sweep: Arc::new(sweep), events, conns, keys: None })
    }

    /// Encrypt every record written with the first of `keys`, and open records with any of
    /// them (B24). Records stored unencrypted before stay readable.
    pub fn with_encryption_keys(mut self, keys: impl Into<Arc<EncryptionKeys>>) -> Self {
        self.keys = Some(keys.into());
        self
    }

    /// Sweep expired rows every `interval` in the background (default 60 s), from the
    /// first claim on; `Duration::ZERO` turns the sweep off, for those who run
    /// [`PostgresStore::sweep`] on a schedule of their own.
    pub fn with_sweep_interval(mut self, interval: Duration) -> Self {
        let lock = self.sweep.lock;
        self.sweep = Arc::new(Sweep { interval, started: AtomicBool::new(false), lock });
        self
    }

    /// The advisory lock a sweep of this table holds while it deletes (one process at a
    /// time; another one sweeping meanwhile deletes nothing).
    pub fn sweep_lock(&self) -> i64 {
        self.sweep.lock
    }

    /// The background sweep's interval (zero: off).
    pub fn sweep_interval(&self) -> Duration {
        self.sweep.interval
    }

    /// Start the background sweep once, on the runtime the store is used from. It stops
    /// when every clone of the store has been dropped.
    fn start_sweep(&self) {
        // A load first: every claim passes here, and only the first may write.
        if self.sweep.interval.is_zero()
            || self.sweep.started.load(Ordering::Relaxed)
            || self.sweep.started.swap(true, Ordering::Relaxed)
        {
            return;
        }
        let weak = Arc::downgrade(&self.sweep);
        let (pool, sql, events, conns) = (self.pool.clone(), self.sql.clone(), self.events.clone(), self.conns.clone());
        let interval = self.sweep.interval;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(sweep) = weak.upgrade() else { return };
                let store = PostgresStore {
                    pool: pool.clone(),
                    table: String::new(),
                    sql: sql.clone(),
                    sweep,
                    events: events.clone(),
                    conns: conns.clone(),
                    // Sweeping deletes rows by their expiry; it never reads a record.
                    keys: None,
                };
                match store.sweep(DEFAULT_SWEEP_BATCH).await {
                    Ok(0) => {}
                    Ok(n) => tracing::debug!(target: "idempo", deleted = n, "swept expired records"),
                    Err(e) => {
                        tracing::warn!(target: "idempo", error = %e, "sweeping expired records failed; trying again next interval")
                    }
                }
            }
        });
    }

    /// The pool this store uses.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Create the table and its expiry index if they do not exist. Safe to run from many
    /// processes at once.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(unavailable)?;
        // Concurrent CREATE TABLE IF NOT EXISTS can still collide: serialize them.
        sqlx::query("SELECT pg_advisory_xact_lock(7309224733741612032)")
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        sqlx::query(AssertSqlSafe(self.sql.create_table.clone())).execute(&mut *tx).await.map_err(unavailable)?;
        sqlx::query(AssertSqlSafe(self.sql.add_waited.clone())).execute(&mut *tx).await.map_err(unavailable)?;
        sqlx::query(AssertSqlSafe(self.sql.create_index.clone())).execute(&mut *tx).await.map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)
    }

    /// Delete expired rows, `batch` at a time, until none is left; returns how many.
    pub async fn sweep(&self, batch: u32) -> Result<u64, StoreError> {
        let mut total = 0;
        loop {
            let done = sqlx::query(AssertSqlSafe(self.sql.sweep.clone()))
                .bind(i64::from(batch.max(1)))
                .bind(self.sweep.lock)
                .execute(&self.pool)
                .await
                .map_err(unavailable)?
                .rows_affected();
            total += done;
            if done < u64::from(batch.max(1)) {
                return Ok(total);
            }
        }
    }

    /// Whether a complete or release statement (which tells waiters) found its row.
    async fn told(&self, op: Op, params: &[&(dyn ToSql + Sync)]) -> Result<bool, StoreError> {
        let row = self.conns.row(op, params).await?;
        Ok(column::<i64>(&row, "n")? == 1)
    }
}

fn column<'r, T: FromSql<'r>>(row: &'r Row, name: &str) -> Result<T, StoreError> {
    row.try_get(name).map_err(|e| StoreError::unavailable(format!("unexpected column {name} in the idempo table: {e}")))
}

fn claim_from_row(row: &Row, id: &RecordId, keys: Option<&EncryptionKeys>) -> Result<Option<Claim>, StoreError> {
    let Some(fingerprint) = column::<Option<Vec<u8>>>(row, "fingerprint")? else { return Ok(None) };
    let fingerprint = <[u8; 32]>::try_from(fingerprint.as_slice())
        .map(Fingerprint)
        .map_err(|_| StoreError::Corrupt(DecodeError("the stored fingerprint is not 32 bytes")))?;
    if let Some(record) = column::<Option<Vec<u8>>>(row, "record")? {
        let record = read_record(keys, id, &fingerprint, &record)?;
        return Ok(Some(Claim::Completed { fingerprint, record: Arc::new(record) }));
    }
    if column::<Option<bool>>(row, "in_flight")? == Some(true) {
        let left = column::<Option<i64>>(row, "left_ms")?.unwrap_or(1).max(1);
        return Ok(Some(Claim::InFlight { fingerprint, lease_left: Duration::from_millis(left as u64) }));
    }
    Err(StoreError::Corrupt(DecodeError("a row is neither in flight nor completed")))
}

#[async_trait]
impl Store for PostgresStore {
    async fn claim(&self, id: &RecordId, fingerprint: &Fingerprint, lease_ttl: Duration) -> Result<Claim, StoreError> {
        self.start_sweep();
        for _ in 0..CLAIM_ATTEMPTS {
            let token = Token::random();
            let params: [&(dyn ToSql + Sync); 4] =
                [&&id.0[..], &&fingerprint.0[..], &&token.to_bytes()[..], &ms(lease_ttl)];
            let row = self.conns.row(Op::Claim, &params).await?;
            if column::<bool>(&row, "claimed")? {
                return Ok(Claim::Claimed { token });
            }
            if let Some(claim) = claim_from_row(&row, id, self.keys.as_deref())? {
                return Ok(claim);
            }
        }
        Err(StoreError::unavailable("claim kept racing with concurrent claims; try again"))
    }

    async fn renew(&self, id: &RecordId, token: Token, lease_ttl: Duration) -> Result<Renewal, StoreError> {
        let params: [&(dyn ToSql + Sync); 3] = [&&id.0[..], &&token.to_bytes()[..], &ms(lease_ttl)];
        let renewed = self.conns.execute(Op::Renew, &params).await? == 1;
        Ok(if renewed { Renewal::Renewed } else { Renewal::LeaseLost })
    }

    async fn complete(
        &self,
        id: &RecordId,
        fingerprint: &Fingerprint,
        token: Token,
        record: &Record,
        ttl: Duration,
    ) -> Result<Completion, StoreError> {
        let encoded = write_record(self.keys.as_deref(), id, fingerprint, record)?;
        let params: [&(dyn ToSql + Sync); 4] = [&&id.0[..], &&token.to_bytes()[..], &&encoded[..], &ms(ttl)];
        Ok(if self.told(Op::Complete, &params).await? { Completion::Stored } else { Completion::LeaseLost })
    }

    async fn release(&self, id: &RecordId, token: Token) -> Result<Release, StoreError> {
        let params: [&(dyn ToSql + Sync); 2] = [&&id.0[..], &&token.to_bytes()[..]];
        Ok(if self.told(Op::Release, &params).await? { Release::Released } else { Release::LeaseLost })
    }

    async fn watch(&self, id: &RecordId) -> Option<Watch> {
        let watch = self.events.wakers.watch(id);
        watch
            .arm(|| async {
                let listening = self.events.listening().await;
                // Marked after LISTEN took effect: the notification it asks for cannot be missed.
                listening && self.conns.execute(Op::Mark, &[&&id.0[..]]).await.is_ok()
            })
            .await;
        Some(watch)
    }

    fn encrypts(&self) -> bool {
        self.keys.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::quoted_table;

    #[test]
    fn table_names_are_validated() {
        assert_eq!(quoted_table("idempo_records").unwrap().0, "\"idempo_records\"");
        assert_eq!(quoted_table("app.keys").unwrap(), ("\"app\".\"keys\"".into(), "\"keys_expires_at\"".into()));
        for bad in ["", "a b", "a;drop table x", "1abc", "a.b.c", "x\"y", &"a".repeat(49)] {
            assert!(quoted_table(bad).is_err(), "{bad:?} accepted");
        }
    }
}
