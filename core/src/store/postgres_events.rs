//! Completion and release events from PostgreSQL, for waiters (B20).
//!
//! A waiter marks the row it waits on (`waited`); completing or releasing a marked row
//! runs `pg_notify` in the same statement, on the table's channel with the record id as
//! payload. One connection per store, and so per process, `LISTEN`s on that channel for
//! every waiter. When it is lost, sqlx's listener connects again and listens again; since
//! a notification may have been missed meanwhile, every waiter is woken to read its record
//! again.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::{mpsc, watch};

use crate::fingerprint::RecordId;
use crate::wake::Wakers;

/// How long a waiter waits for the listener to be listening before it relies on re-reads.
const LISTEN_WAIT: Duration = Duration::from_secs(2);

pub(super) struct Events {
    pool: PgPool,
    channel: String,
    pub(super) wakers: Arc<Wakers>,
    /// Whether the listener is listening now, once it was started (by the first waiter).
    listening: OnceLock<(watch::Receiver<bool>, mpsc::Sender<()>)>,
}

impl Events {
    pub(super) fn new(pool: PgPool, channel: String) -> Events {
        Events { pool, channel, wakers: Arc::default(), listening: OnceLock::new() }
    }

    /// Start the listener if need be; `true` once it listens.
    pub(super) async fn listening(&self) -> bool {
        let (state, _) = self.listening.get_or_init(|| {
            let (state_tx, state_rx) = watch::channel(false);
            // Dropped with the store: the listener sees its receiver close and stops.
            let (alive, gone) = mpsc::channel(1);
            let listener =
                Listener { pool: self.pool.clone(), channel: self.channel.clone(), wakers: self.wakers.clone() };
            tokio::spawn(listener.run(state_tx, gone));
            (state_rx, alive)
        });
        let mut state = state.clone();
        tokio::time::timeout(LISTEN_WAIT, state.wait_for(|listening| *listening)).await.is_ok_and(|r| r.is_ok())
    }
}

struct Listener {
    pool: PgPool,
    channel: String,
    wakers: Arc<Wakers>,
}

impl Listener {
    async fn run(self, state: watch::Sender<bool>, mut gone: mpsc::Receiver<()>) {
        let mut backoff = Duration::from_millis(50);
        let mut first = true;
        loop {
            let connected = async {
                let mut listener = PgListener::connect_with(&self.pool).await?;
                listener.listen(&self.channel).await?;
                Ok::<_, sqlx::Error>(listener)
            };
            let mut listener = tokio::select! {
                connected = connected => match connected {
                    Ok(listener) => listener,
                    Err(error) => {
                        tracing::debug!(target: "idempo", %error, "PostgreSQL listener cannot connect; retrying");
                        tokio::select! {
                            _ = tokio::time::sleep(backoff) => {}
                            _ = gone.recv() => return,
                        }
                        backoff = (backoff * 2).min(Duration::from_secs(2));
                        first = false;
                        continue;
                    }
                },
                _ = gone.recv() => return,
            };
            backoff = Duration::from_millis(50);
            state.send_replace(true);
            if !first {
                self.wakers.wake_all();
            }
            first = false;
            loop {
                tokio::select! {
                    received = listener.try_recv() => match received {
                        Ok(Some(notification)) => {
                            if let Some(id) = RecordId::from_hex(notification.payload().as_bytes()) {
                                self.wakers.wake(&id);
                            }
                        }
                        // Lost and connected again (listening again): anything in between
                        // is unknown.
                        Ok(None) => self.wakers.wake_all(),
                        Err(error) => {
                            tracing::debug!(target: "idempo", %error, "PostgreSQL listener lost its connection");
                            break;
                        }
                    },
                    _ = gone.recv() => return,
                }
            }
            state.send_replace(false);
            self.wakers.wake_all();
        }
    }
}
