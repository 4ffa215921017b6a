//! The PostgreSQL store's own connections for its four operations (issue 17).
//!
//! An sqlx pool pings every connection given back to it (Sync, then ReadyForQuery) before
//! it is idle again: a second network round trip for every statement, which
//! `pg_stat_statements` does not see. The claim, renew, complete and release statements
//! run instead on a small set of connections the store keeps itself and never pings. A
//! connection that fails for any reason but an SQL error (the server's own answer, after
//! which the connection is fine), or whose statement was abandoned half way (its future
//! dropped), is closed and made again on its next use: a dead connection fails one
//! operation, as with the pool. Connections are made as concurrency needs them, the
//! first free one taken first, so a sequential caller uses one.

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{ConnectOptions, PgPool};
use tokio::sync::{Mutex, MutexGuard, Semaphore, SemaphorePermit};

use super::StoreError;

/// How long an operation waits for a free connection, or for a new one to be made.
const ACQUIRE: Duration = Duration::from_secs(2);

pub(super) struct Conns {
    options: Arc<PgConnectOptions>,
    slots: Box<[Mutex<Option<PgConnection>>]>,
    /// One permit per slot: a holder always finds a slot nobody has locked.
    free: Semaphore,
}

impl Conns {
    /// Up to `size` connections made with the options of `pool`.
    pub(super) fn new(pool: &PgPool, size: usize) -> Conns {
        let size = size.max(1);
        Conns {
            options: pool.connect_options(),
            slots: (0..size).map(|_| Mutex::new(None)).collect(),
            free: Semaphore::new(size),
        }
    }

    /// A connection of this store's, made if need be.
    pub(super) async fn get(&self) -> Result<Conn<'_>, StoreError> {
        let busy = || StoreError::unavailable(format!("all {} PostgreSQL connections stayed busy", self.slots.len()));
        let permit =
            tokio::time::timeout(ACQUIRE, self.free.acquire()).await.map_err(|_| busy())?.map_err(|_| busy())?;
        let mut slot = self.slots.iter().find_map(|s| s.try_lock().ok()).ok_or_else(busy)?;
        if slot.is_none() {
            let made = tokio::time::timeout(ACQUIRE, self.options.connect())
                .await
                .map_err(|_| StoreError::unavailable("connecting to PostgreSQL timed out"))?
                .map_err(StoreError::unavailable)?;
            *slot = Some(made);
        }
        Ok(Conn { slot, _permit: permit, settled: false })
    }
}

/// One connection, for one statement: [`Conn::settle`] its outcome.
pub(super) struct Conn<'a> {
    slot: MutexGuard<'a, Option<PgConnection>>,
    _permit: SemaphorePermit<'a>,
    settled: bool,
}

impl Conn<'_> {
    pub(super) fn connection(&mut self) -> Result<&mut PgConnection, StoreError> {
        self.slot.as_mut().ok_or_else(|| StoreError::unavailable("the PostgreSQL connection was closed"))
    }

    /// The statement's outcome; a connection that failed other than with an SQL error is
    /// closed, to be made again on its next use.
    pub(super) fn settle<T>(mut self, outcome: Result<T, sqlx::Error>) -> Result<T, StoreError> {
        if outcome.as_ref().is_err_and(|e| !matches!(e, sqlx::Error::Database(_))) {
            self.slot.take();
        }
        self.settled = true;
        outcome.map_err(StoreError::unavailable)
    }
}

impl Drop for Conn<'_> {
    fn drop(&mut self) {
        // Abandoned half way: what the server sends next would answer the wrong statement.
        if !self.settled {
            self.slot.take();
        }
    }
}
