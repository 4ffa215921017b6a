//! Completion and release events from Redis, for waiters (B20).
//!
//! The complete and release scripts `PUBLISH` on the record's own name, `<prefix>{<hex
//! id>}` (hash-tagged like the key, so a sharded publish would land on the key's node).
//! On a Redis Cluster the publish is a plain (cluster-wide) one, so a subscription on any
//! node hears it: the connection goes to one of the cluster's nodes, the next one when it
//! is lost. One pub/sub connection per store, and so per process, carries the
//! subscriptions of every waiter: an id is subscribed while someone in the process waits on it, once per
//! round of [`Wakers`], and unsubscribed when the last waiter is done. Its task owns the
//! connection; when the connection drops it connects again with back-off, subscribes to
//! every id still waited on and wakes all their waiters, since an event may have been
//! missed meanwhile (they read their records again).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::{mpsc, oneshot};

use crate::fingerprint::RecordId;
use crate::wake::Wakers;

/// A request to the subscriber task: subscribe to a channel and say whether it worked.
type Subscribe = (String, oneshot::Sender<bool>);

pub(super) struct Events {
    /// Where the subscriber may connect: the server, or each node of a cluster.
    pub(super) clients: Vec<redis::Client>,
    prefix: String,
    pub(super) wakers: Arc<Wakers>,
    idle: std::sync::Mutex<Option<mpsc::UnboundedReceiver<RecordId>>>,
    /// The subscriber task's inbox, once it runs (started by the first waiter).
    task: OnceLock<mpsc::UnboundedSender<Subscribe>>,
}

impl Events {
    pub(super) fn new(clients: Vec<redis::Client>, prefix: String) -> Events {
        let (idle_tx, idle) = mpsc::unbounded_channel();
        Events {
            clients,
            prefix,
            wakers: Arc::new(Wakers::with_idle(idle_tx)),
            idle: std::sync::Mutex::new(Some(idle)),
            task: OnceLock::new(),
        }
    }

    /// Subscribe to `channel`, starting the subscriber task if need be; `true` once Redis
    /// confirmed it, so every later publish on it is delivered.
    pub(super) async fn subscribe(&self, channel: String) -> bool {
        let task = self.task.get_or_init(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            let idle = self.idle.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
            let subscriber =
                Subscriber { clients: self.clients.clone(), prefix: self.prefix.clone(), wakers: self.wakers.clone() };
            if let Some(idle) = idle {
                tokio::spawn(subscriber.run(rx, idle));
            }
            tx
        });
        let (ack, confirmed) = oneshot::channel();
        task.send((channel, ack)).is_ok() && confirmed.await.unwrap_or(false)
    }
}

struct Subscriber {
    clients: Vec<redis::Client>,
    prefix: String,
    wakers: Arc<Wakers>,
}

impl Subscriber {
    fn channel(&self, id: &RecordId) -> String {
        format!("{}{{{}}}", self.prefix, id.hex())
    }

    /// The record id a channel of this store names.
    fn id_of(&self, channel: &[u8]) -> Option<RecordId> {
        let hex = channel.strip_prefix(self.prefix.as_bytes())?.strip_prefix(b"{")?.strip_suffix(b"}")?;
        RecordId::from_hex(hex)
    }

    /// Until the store is dropped (its inbox closes): keep a connection, follow the
    /// subscriptions, wake on every message.
    async fn run(self, mut inbox: mpsc::UnboundedReceiver<Subscribe>, mut idle: mpsc::UnboundedReceiver<RecordId>) {
        let mut backoff = Duration::from_millis(50);
        let mut reconnect = false;
        let mut next = 0;
        loop {
            let Some(client) = self.clients.get(next % self.clients.len().max(1)) else { return };
            next += 1;
            let (mut sink, mut stream) = match client.get_async_pubsub().await {
                Ok(pubsub) => pubsub.split(),
                Err(error) => {
                    tracing::debug!(target: "idempo", %error, "Redis subscriber cannot connect; retrying");
                    // Waiters asking meanwhile are told no: they re-read on their own.
                    let give_up = tokio::time::sleep(backoff);
                    tokio::pin!(give_up);
                    loop {
                        tokio::select! {
                            _ = &mut give_up => break,
                            request = inbox.recv() => match request {
                                Some((_, ack)) => { let _ = ack.send(false); }
                                None => return,
                            },
                        }
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                    reconnect = true;
                    continue;
                }
            };
            let watched: Vec<String> = self.wakers.ids().iter().map(|id| self.channel(id)).collect();
            if !watched.is_empty() && sink.subscribe(&watched).await.is_err() {
                continue;
            }
            if reconnect {
                tracing::info!(target: "idempo", "Redis subscriber connected again");
                self.wakers.wake_all();
            }
            backoff = Duration::from_millis(50);
            reconnect = true;
            loop {
                tokio::select! {
                    message = stream.next() => match message {
                        Some(message) => {
                            if let Some(id) = self.id_of(message.get_channel_name().as_bytes()) {
                                self.wakers.wake(&id);
                            }
                        }
                        None => break,
                    },
                    request = inbox.recv() => match request {
                        Some((channel, ack)) => {
                            let ok = sink.subscribe(&channel).await.is_ok();
                            let _ = ack.send(ok);
                            if !ok { break; }
                        }
                        None => return,
                    },
                    Some(id) = idle.recv() => {
                        if !self.wakers.is_watched(&id) && sink.unsubscribe(self.channel(&id)).await.is_err() {
                            break;
                        }
                    }
                }
            }
            tracing::debug!(target: "idempo", "Redis subscriber connection lost; connecting again");
        }
    }
}
