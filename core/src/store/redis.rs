//! The Redis store (feature `redis`): single node through a reconnecting connection
//! manager, or Redis Cluster through the async cluster client.
//!
//! One key per record, `<prefix>{<hex id>}`: the braces make the id the hash tag, so every
//! script touches one slot and the store works unchanged on a cluster. The key is a hash:
//! `f` the fingerprint, `t` the fencing token and `e` the lease's end (ms, Redis `TIME`)
//! while in flight, `r` the encoded record once completed. A claim's key lives
//! `LATE_COMPLETION` past its lease, so its holder can still finish it when nobody took it
//! over; a record's key expires after the ttl. Time is Redis's own, never the
//! application's clock. Every operation is one Lua script run by SHA (`EVALSHA`, reloaded
//! on `NOSCRIPT`): one round trip.

use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster_async::ClusterConnection;
use redis::{Script, ScriptInvocation, Value};

use std::sync::Arc;

use super::redis_events::Events;
use super::{Claim, Completion, LATE_COMPLETION, Release, Renewal, Store, StoreError, Tls, Token, Watch};
use crate::config::ConfigError;
use crate::encryption::{EncryptionKeys, read_record, write_record};
use crate::fingerprint::{Fingerprint, RecordId};
use crate::record::{DecodeError, Record};

/// The default key prefix.
pub const DEFAULT_PREFIX: &str = "idempo:";

// Replies: 0 claimed · 1 in flight (fingerprint, ms left) · 2 completed (fingerprint,
// record) · 3 the key holds something that is not an idempo record. An expired claim is
// taken over. ARGV: fingerprint, token, lease ms, late-completion ms.
const CLAIM: &str = concat!(
    "local k = KEYS[1]
local kind = redis.call('TYPE', k).ok
",
    "local clock = redis.call('TIME')
local now = clock[1] * 1000 + math.floor(clock[2] / 1000)
",
    r"if kind == 'hash' then
  local v = redis.call('HMGET', k, 'f', 't', 'r', 'e')
  if not v[1] then return {3} end
  if v[3] then return {2, v[1], v[3]} end
  if not v[2] then return {3} end
  -- A claim written before the lease's end was kept in `e` ends with its key, as then.
  if not v[4] then return {1, v[1], redis.call('PTTL', k)} end
  local left = tonumber(v[4]) - now
  if left > 0 then return {1, v[1], left} end
elseif kind ~= 'none' then
  return {3}
end
redis.call('HSET', k, 'f', ARGV[1], 't', ARGV[2], 'e', now + tonumber(ARGV[3]))
redis.call('PEXPIRE', k, tonumber(ARGV[3]) + tonumber(ARGV[4]))
return {0}
"
);

// Replies for the fenced operations: 1 done · 0 the token does not hold the key · -1 the
// key holds something that is not an idempo record. Each checks the fence, then acts.
macro_rules! fenced {
    ($action:literal) => {
        concat!(
            r"
local kind = redis.call('TYPE', KEYS[1]).ok
if kind == 'none' then return 0 end
if kind ~= 'hash' then return -1 end
if redis.call('HGET', KEYS[1], 't') ~= ARGV[1] then return 0 end
",
            $action,
            "\nreturn 1\n"
        )
    };
}

// ARGV: token, lease ms, late-completion ms.
const RENEW: &str = fenced!(
    "local clock = redis.call('TIME')
redis.call('HSET', KEYS[1], 'e', clock[1] * 1000 + math.floor(clock[2] / 1000) + tonumber(ARGV[2]))
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) + tonumber(ARGV[3]))"
);

// ARGV: token, record, ttl ms, whether to publish the event (B20, redis_events.rs).
const COMPLETE: &str = fenced!(
    "redis.call('HSET', KEYS[1], 'r', ARGV[2])
redis.call('HDEL', KEYS[1], 't', 'e')
redis.call('PEXPIRE', KEYS[1], ARGV[3])
if ARGV[4] == '1' then redis.call('PUBLISH', KEYS[1], 'c') end"
);

// ARGV: token, whether to publish the event.
const RELEASE: &str = fenced!(
    "redis.call('DEL', KEYS[1])
if ARGV[2] == '1' then redis.call('PUBLISH', KEYS[1], 'r') end"
);

#[derive(Clone)]
enum Connection {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

struct Scripts {
    claim: Script,
    renew: Script,
    complete: Script,
    release: Script,
}

/// A store in Redis or Redis Cluster. Cheap to clone: clones share the connection.
#[derive(Clone)]
pub struct RedisStore {
    connection: Connection,
    prefix: String,
    scripts: std::sync::Arc<Scripts>,
    /// Completion and release events for waiters (B20); `None` without a client to open
    /// a subscriber connection with (a store made from a connection or a cluster client).
    events: Option<Arc<Events>>,
    /// The keys records are sealed with (B24); `None`: records are stored unencrypted.
    keys: Option<Arc<EncryptionKeys>>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.connection {
            Connection::Single(_) => "single",
            Connection::Cluster(_) => "cluster",
        };
        f.debug_struct("RedisStore")
            .field("connection", &kind)
            .field("prefix", &self.prefix)
            .field("encryption_keys", &self.keys)
            .finish()
    }
}

/// A key prefix must not hold `{` or `}`: Redis Cluster hashes the first `{…}` of a key,
/// so a prefix with one would put every record in one slot (one node) instead of spreading
/// them by record id.
pub fn check_prefix(prefix: &str) -> Result<(), ConfigError> {
    if prefix.contains(['{', '}']) {
        return Err(ConfigError(format!(
            "the Redis key prefix {prefix:?} holds {{ or }}: Redis Cluster would put every key in one slot"
        )));
    }
    Ok(())
}

/// The eviction policy under which Redis may drop idempo's keys, read from `INFO memory`:
/// with a `maxmemory` set, every policy but `noeviction` may pick them (all of them carry
/// a TTL, so the `volatile-*` ones too).
fn risky_eviction(info: &str) -> Option<&str> {
    let field = |name: &str| info.lines().find_map(|l| l.strip_prefix(name)).map(str::trim);
    let maxmemory: u64 = field("maxmemory:")?.parse().ok()?;
    let policy = field("maxmemory_policy:")?;
    (maxmemory > 0 && policy != "noeviction").then_some(policy)
}

/// Say so when the server may evict idempo's keys: an evicted claim or record lets a retry
/// run the handler again. One round trip, when the store is made; a server that does not
/// answer `INFO` (some managed ones) is not judged.
async fn warn_if_evicting(conn: &mut impl redis::aio::ConnectionLike) {
    let Ok(info) = redis::cmd("INFO").arg("memory").query_async::<String>(conn).await else { return };
    if let Some(policy) = risky_eviction(&info) {
        tracing::warn!(
            target: "idempo",
            policy,
            "this Redis may evict idempotency keys under memory pressure (maxmemory-policy {policy}): \
             a claim or record it evicts lets a retry run the handler again. Set maxmemory-policy \
             noeviction on the Redis idempo uses (writes then fail with 503 instead)"
        );
    }
}

fn unavailable(e: redis::RedisError) -> StoreError {
    StoreError::unavailable(e)
}

/// Timeouts that fail a request quickly when Redis is gone, rather than hold it.
fn manager_config() -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(Duration::from_secs(2)))
        .set_number_of_retries(2)
        .set_min_delay(Duration::from_millis(50))
        .set_max_delay(Duration::from_secs(1))
}

impl RedisStore {
    /// Connect to one Redis server (`redis://[user:password@]host:port[/db]`, or
    /// `rediss://` with TLS where the redis crate was built with it). Fails if the server
    /// cannot be reached now; afterwards the connection is re-established by itself.
    pub async fn connect(url: &str) -> Result<RedisStore, StoreError> {
        RedisStore::connect_with(url, &Tls::default()).await
    }

    /// Connect to `url` trusting what `tls` says: with `rediss://`, the server's certificate
    /// must be signed by a CA of `tls.ca_file` (else of the system's) and name the host.
    pub async fn connect_with(url: &str, tls: &Tls) -> Result<RedisStore, StoreError> {
        let invalid = |e: redis::RedisError| {
            StoreError::unavailable(format!("invalid Redis URL (expected redis://host:port or rediss://): {e}"))
        };
        let client = match tls.ca_pem()? {
            None => redis::Client::open(url).map_err(invalid)?,
            Some(root_cert) => {
                let certs = redis::TlsCertificates { client_tls: None, root_cert: Some(root_cert) };
                redis::Client::build_with_tls(url, certs).map_err(invalid)?
            }
        };
        RedisStore::from_client(client).await
    }

    /// Use an existing client.
    pub async fn from_client(client: redis::Client) -> Result<RedisStore, StoreError> {
        let mut manager = client.get_connection_manager_with_config(manager_config()).await.map_err(unavailable)?;
        warn_if_evicting(&mut manager).await;
        let mut store = RedisStore::from_connection_manager(manager);
        store.events = Some(Arc::new(Events::new(vec![client], store.prefix.clone())));
        Ok(store)
    }

    /// Use an existing connection manager.
    pub fn from_connection_manager(manager: ConnectionManager) -> RedisStore {
        RedisStore::new(Connection::Single(manager))
    }

    /// Connect to a Redis Cluster through any of its nodes.
    pub async fn connect_cluster<'a>(nodes: impl IntoIterator<Item = &'a str>) -> Result<RedisStore, StoreError> {
        RedisStore::connect_cluster_with(nodes, &Tls::default()).await
    }

    /// Connect to a Redis Cluster through any of its nodes, trusting what `tls` says.
    pub async fn connect_cluster_with<'a>(
        nodes: impl IntoIterator<Item = &'a str>,
        tls: &Tls,
    ) -> Result<RedisStore, StoreError> {
        let nodes: Vec<&str> = nodes.into_iter().collect();
        let mut builder = redis::cluster::ClusterClientBuilder::new(nodes.clone())
            .connection_timeout(Duration::from_secs(2))
            .response_timeout(Duration::from_secs(2));
        let root_cert = tls.ca_pem()?;
        if let Some(root_cert) = &root_cert {
            builder = builder.certs(redis::TlsCertificates { client_tls: None, root_cert: Some(root_cert.clone()) });
        }
        let client =
            builder.build().map_err(|e| StoreError::unavailable(format!("invalid Redis Cluster node URLs: {e}")))?;
        let mut store = RedisStore::from_cluster_client(client).await?;
        // The subscriber's connection goes to one node at a time (events, B20).
        let node = |url: &str| match &root_cert {
            None => redis::Client::open(url),
            Some(root) => redis::Client::build_with_tls(
                url,
                redis::TlsCertificates { client_tls: None, root_cert: Some(root.clone()) },
            ),
        };
        let clients = nodes.iter().filter_map(|url| node(url).ok()).collect::<Vec<_>>();
        if !clients.is_empty() {
            store.events = Some(Arc::new(Events::new(clients, store.prefix.clone())));
        }
        Ok(store)
    }

    /// Use an existing cluster client.
    pub async fn from_cluster_client(client: redis::cluster::ClusterClient) -> Result<RedisStore, StoreError> {
        let mut connection = client.get_async_connection().await.map_err(unavailable)?;
        warn_if_evicting(&mut connection).await;
        Ok(RedisStore::new(Connection::Cluster(connection)))
    }

    fn new(connection: Connection) -> RedisStore {
        let scripts = Scripts {
            claim: Script::new(CLAIM),
            renew: Script::new(RENEW),
            complete: Script::new(COMPLETE),
            release: Script::new(RELEASE),
        };
        RedisStore { connection, prefix: DEFAULT_PREFIX.into(), scripts: Arc::new(scripts), events: None, keys: None }
    }

    /// Prefix every key (default `idempo:`), to share one Redis between applications.
    /// Refused if it holds `{` or `}` ([`check_prefix`]).
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Result<RedisStore, ConfigError> {
        let prefix = prefix.into();
        check_prefix(&prefix)?;
        self.events = self.events.map(|events| Arc::new(Events::new(events.clients.clone(), prefix.clone())));
        self.prefix = prefix;
        Ok(self)
    }

    /// Encrypt every record written with the first of `keys`, and open records with any of
    /// them (B24). Records stored unencrypted before stay readable.
    pub fn with_encryption_keys(mut self, keys: impl Into<Arc<EncryptionKeys>>) -> RedisStore {
        self.keys = Some(keys.into());
        self
    }

    /// The Redis key of a record id: `<prefix>{<hex id>}`.
    pub fn key_of(&self, id: &RecordId) -> String {
        format!("{}{{{}}}", self.prefix, id.hex())
    }

    /// The scripts' publish flag: publish where someone can subscribe.
    fn publish(&self) -> &'static [u8] {
        if self.events.is_some() { b"1" } else { b"0" }
    }

    async fn run(&self, invocation: &ScriptInvocation<'_>) -> Result<Value, StoreError> {
        let result = match &self.connection {
            Connection::Single(c) => invocation.invoke_async(&mut c.clone()).await,
            Connection::Cluster(c) => invocation.invoke_async(&mut c.clone()).await,
        };
        result.map_err(unavailable)
    }

    async fn fenced(&self, script: &Script, id: &RecordId, args: &[&[u8]]) -> Result<bool, StoreError> {
        let mut invocation = script.key(self.key_of(id));
        for arg in args {
            invocation.arg(*arg);
        }
        match self.run(&invocation).await? {
            Value::Int(1) => Ok(true),
            Value::Int(0) => Ok(false),
            Value::Int(-1) => Err(StoreError::Corrupt(DecodeError("the Redis key is not an idempo record"))),
            other => Err(unexpected(&other)),
        }
    }
}

fn unexpected(value: &Value) -> StoreError {
    StoreError::unavailable(format!("unexpected reply from the idempo Redis script: {value:?}"))
}

fn millis(d: Duration) -> Vec<u8> {
    // PEXPIRE needs at least 1 ms.
    (d.as_millis().max(1) as u64).to_string().into_bytes()
}

fn bytes_of(value: &Value) -> Option<&[u8]> {
    match value {
        Value::BulkString(b) => Some(b),
        _ => None,
    }
}

fn fingerprint_of(value: &Value) -> Result<Fingerprint, StoreError> {
    bytes_of(value)
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .map(Fingerprint)
        .ok_or(StoreError::Corrupt(DecodeError("the stored fingerprint is not 32 bytes")))
}

#[async_trait]
impl Store for RedisStore {
    async fn claim(&self, id: &RecordId, fingerprint: &Fingerprint, lease_ttl: Duration) -> Result<Claim, StoreError> {
        let token = Token::random();
        let mut invocation = self.scripts.claim.key(self.key_of(id));
        invocation
            .arg(&fingerprint.0[..])
            .arg(&token.to_bytes()[..])
            .arg(millis(lease_ttl))
            .arg(millis(LATE_COMPLETION));
        let reply = self.run(&invocation).await?;
        let Value::Array(items) = &reply else { return Err(unexpected(&reply)) };
        match items.as_slice() {
            [Value::Int(0)] => Ok(Claim::Claimed { token }),
            [Value::Int(1), fp, Value::Int(left)] => Ok(Claim::InFlight {
                fingerprint: fingerprint_of(fp)?,
                // PTTL is -1 for a key without expiry: treat as "a moment", never negative.
                lease_left: Duration::from_millis((*left).max(1) as u64),
            }),
            [Value::Int(2), fp, record] => {
                let bytes =
                    bytes_of(record).ok_or(StoreError::Corrupt(DecodeError("the stored record is not bytes")))?;
                let fingerprint = fingerprint_of(fp)?;
                let record = read_record(self.keys.as_deref(), id, &fingerprint, bytes)?;
                Ok(Claim::Completed { fingerprint, record: Arc::new(record) })
            }
            [Value::Int(3)] => Err(StoreError::Corrupt(DecodeError("the Redis key is not an idempo record"))),
            _ => Err(unexpected(&reply)),
        }
    }

    async fn renew(&self, id: &RecordId, token: Token, lease_ttl: Duration) -> Result<Renewal, StoreError> {
        let args: [&[u8]; 3] = [&token.to_bytes(), &millis(lease_ttl), &millis(LATE_COMPLETION)];
        let held = self.fenced(&self.scripts.renew, id, &args).await?;
        Ok(if held { Renewal::Renewed } else { Renewal::LeaseLost })
    }

    async fn complete(
        &self,
        id: &RecordId,
        fingerprint: &Fingerprint,
        token: Token,
        record: &Record,
        ttl: Duration,
    ) -> Result<Completion, StoreError> {
        let bytes = write_record(self.keys.as_deref(), id, fingerprint, record)?;
        let args: [&[u8]; 4] = [&token.to_bytes(), &bytes, &millis(ttl), self.publish()];
        let held = self.fenced(&self.scripts.complete, id, &args).await?;
        Ok(if held { Completion::Stored } else { Completion::LeaseLost })
    }

    async fn release(&self, id: &RecordId, token: Token) -> Result<Release, StoreError> {
        let held = self.fenced(&self.scripts.release, id, &[&token.to_bytes(), self.publish()]).await?;
        Ok(if held { Release::Released } else { Release::LeaseLost })
    }

    async fn watch(&self, id: &RecordId) -> Option<Watch> {
        let events = self.events.as_ref()?;
        let watch = events.wakers.watch(id);
        watch.arm(|| events.subscribe(self.key_of(id))).await;
        Some(watch)
    }

    fn encrypts(&self) -> bool {
        self.keys.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eviction_policies_that_may_drop_idempo_keys() {
        let info = |max: &str, policy: &str| {
            format!("# Memory\r\nmaxmemory:{max}\r\nmaxmemory_human:x\r\nmaxmemory_policy:{policy}\r\n")
        };
        assert_eq!(risky_eviction(&info("2097152", "volatile-lru")), Some("volatile-lru"));
        assert_eq!(risky_eviction(&info("2097152", "allkeys-lfu")), Some("allkeys-lfu"));
        assert_eq!(risky_eviction(&info("2097152", "noeviction")), None);
        assert_eq!(risky_eviction(&info("0", "volatile-ttl")), None, "no maxmemory: nothing is evicted");
        assert_eq!(risky_eviction("garbage"), None);
    }

    #[test]
    fn prefixes_with_braces_are_refused() {
        assert!(check_prefix("idempo:").is_ok());
        for bad in ["app{x}:", "{", "a}b"] {
            assert!(check_prefix(bad).unwrap_err().0.contains("one slot"), "{bad:?}");
        }
    }
}
