//! The servers the durable-store tests talk to. `make test` starts throwaway ones
//! (scripts/with-services.sh); running `cargo test` by hand needs the variables set.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use idempo::store::{PostgresStore, RedisStore};

fn var(name: &str, what: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the tests with `make test` (it starts a throwaway {what}), or set {name}")
    })
}

pub fn redis_url() -> String {
    var("REDIS_URL", "Redis")
}

pub fn database_url() -> String {
    var("DATABASE_URL", "PostgreSQL")
}

pub fn redis_cluster_urls() -> Vec<String> {
    var("REDIS_CLUSTER_URLS", "Redis Cluster").split(',').map(str::to_owned).collect()
}

pub async fn redis() -> RedisStore {
    RedisStore::connect(&redis_url()).await.expect("connect to REDIS_URL")
}

pub async fn redis_cluster() -> RedisStore {
    let urls = redis_cluster_urls();
    RedisStore::connect_cluster(urls.iter().map(String::as_str)).await.expect("connect to REDIS_CLUSTER_URLS")
}

pub async fn postgres() -> PostgresStore {
    let store = PostgresStore::connect(&database_url()).await.expect("connect to DATABASE_URL");
    store.migrate().await.expect("migrate");
    store
}

pub async fn shared<S: idempo::Store>(store: S) -> Arc<dyn idempo::Store> {
    Arc::new(store)
}

/// The TLS servers (B22): `REDIS_TLS_URL`, `DATABASE_TLS_URL`, the CA that signed their
/// certificates and one that did not.
pub struct TlsServers {
    pub redis: String,
    pub postgres: String,
    pub ca: String,
    pub wrong_ca: String,
}

pub fn tls() -> TlsServers {
    TlsServers {
        redis: var("REDIS_TLS_URL", "TLS Redis"),
        postgres: var("DATABASE_TLS_URL", "TLS PostgreSQL"),
        ca: var("IDEMPO_TLS_CA", "TLS CA"),
        wrong_ca: var("IDEMPO_TLS_WRONG_CA", "TLS CA"),
    }
}

/// A redis-server of this test's own, so it can be stopped and started again.
pub struct OwnRedis {
    pub port: u16,
    child: Option<Child>,
}

impl OwnRedis {
    /// A redis-server on `port` with `extra` settings (`--name value` pairs).
    pub fn start(port: u16, extra: &[&str]) -> OwnRedis {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(extra)
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server is on PATH (make test installs it)");
        // Owned from here on, so Drop stops it whatever happens next.
        let server = OwnRedis { port, child: Some(child) };
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return server;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("redis-server on port {port} did not start");
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.stop();
    }
}
