//! The PostgreSQL store's own connections for its operations (issue 17).
//!
//! The claim, renew, complete, release and mark statements run on a few connections of the
//! store's own, through tokio-postgres, which pipelines: the statements of concurrent
//! requests on one connection go out in one write and their answers come back in one read.
//! Every statement sent wakes the server's backend, and that wake-up was the largest part
//! of the app's CPU per operation when each statement had a connection to itself (sqlx
//! cannot pipeline; its pool also pings a connection given back to it, a second round trip).
//! The statements are prepared once per connection, with their parameter types, so each
//! operation is one round trip. A connection found closed (the server restarted, the
//! network broke) is made again by the next operation that needs it: a dead connection
//! fails the operations that were on it, as with a pool. Connections are made as
//! concurrency needs them: a connection takes up to `DEPTH` operations at once before the
//! next is used, so a sequential caller uses one.
//!
//! The connection's parameters are the sqlx options the store's pool was made with
//! (`sslmode` and `sslrootcert` included), so a store made from a pool of the user's
//! connects the same way. TLS is rustls: `prefer` and `require` encrypt without checking the
//! certificate, `verify-ca` checks the chain, `verify-full` the chain and the host name
//! (libpq's meanings, which sqlx follows too); `allow` is taken as `prefer`.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use sqlx::ConnectOptions;
use sqlx::postgres::{PgConnectOptions, PgSslMode};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect};
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, Row, Statement};

use super::StoreError;

/// How long an operation waits for a connection to be made.
const CONNECT: Duration = Duration::from_secs(2);
/// Operations one connection takes at once before the next connection is used.
const DEPTH: usize = 8;

/// The statements the store runs on its own connections.
#[derive(Clone, Copy)]
pub(super) enum Op {
    Claim,
    Renew,
    Complete,
    Release,
    Mark,
}

const OPS: [(Op, &[Type]); 5] = [
    (Op::Claim, &[Type::BYTEA, Type::BYTEA, Type::BYTEA, Type::INT8]),
    (Op::Renew, &[Type::BYTEA, Type::BYTEA, Type::INT8]),
    (Op::Complete, &[Type::BYTEA, Type::BYTEA, Type::BYTEA, Type::INT8]),
    (Op::Release, &[Type::BYTEA, Type::BYTEA]),
    (Op::Mark, &[Type::BYTEA]),
];

/// A connection and its prepared statements, in the order of `OPS`.
struct Live {
    client: Client,
    statements: Vec<Statement>,
}

struct Slot {
    live: Mutex<Option<Arc<Live>>>,
    /// One connection is made at a time per slot; the others wait for it.
    connecting: tokio::sync::Mutex<()>,
    busy: AtomicUsize,
}

pub(super) struct Pipe {
    config: tokio_postgres::Config,
    tls: Rustls,
    sql: [Arc<str>; 5],
    slots: Box<[Slot]>,
}

impl Pipe {
    /// Up to `size` connections made with `options`, running `sql` (in the order of [`Op`]).
    pub(super) fn new(options: &PgConnectOptions, sql: [Arc<str>; 5], size: usize) -> Result<Pipe, StoreError> {
        let (config, tls) = connection(options)?;
        let slots = (0..size.max(1))
            .map(|_| Slot {
                live: Mutex::new(None),
                connecting: tokio::sync::Mutex::new(()),
                busy: AtomicUsize::new(0),
            })
            .collect();
        Ok(Pipe { config, tls, sql, slots })
    }

    /// One row of `op`'s statement.
    pub(super) async fn row(&self, op: Op, params: &[&(dyn ToSql + Sync)]) -> Result<Row, StoreError> {
        let (live, _busy) = self.live().await?;
        live.client.query_one(&live.statements[op as usize], params).await.map_err(failed)
    }

    /// How many rows `op`'s statement changed.
    pub(super) async fn execute(&self, op: Op, params: &[&(dyn ToSql + Sync)]) -> Result<u64, StoreError> {
        let (live, _busy) = self.live().await?;
        live.client.execute(&live.statements[op as usize], params).await.map_err(failed)
    }

    /// The first connection with room for one more operation (the least busy when none
    /// has), made if need be.
    async fn live(&self) -> Result<(Arc<Live>, Busy<'_>), StoreError> {
        let slot = self
            .slots
            .iter()
            .find(|s| s.busy.load(Ordering::Relaxed) < DEPTH)
            .or_else(|| self.slots.iter().min_by_key(|s| s.busy.load(Ordering::Relaxed)))
            .ok_or_else(|| StoreError::unavailable("the PostgreSQL store has no connection slot"))?;
        slot.busy.fetch_add(1, Ordering::Relaxed);
        let busy = Busy(&slot.busy);
        if let Some(live) = open(slot) {
            return Ok((live, busy));
        }
        let _connecting = slot.connecting.lock().await;
        if let Some(live) = open(slot) {
            return Ok((live, busy));
        }
        let live = Arc::new(
            tokio::time::timeout(CONNECT, self.connect())
                .await
                .map_err(|_| StoreError::unavailable("connecting to PostgreSQL timed out"))??,
        );
        *slot.live.lock().unwrap_or_else(|e| e.into_inner()) = Some(live.clone());
        Ok((live, busy))
    }

    async fn connect(&self) -> Result<Live, StoreError> {
        let (client, connection) = self.config.connect(self.tls.clone()).await.map_err(failed)?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(target: "idempo", error = %e, "a PostgreSQL connection of the store closed");
            }
        });
        let mut statements = Vec::with_capacity(OPS.len());
        for ((_, types), sql) in OPS.iter().zip(&self.sql) {
            statements.push(client.prepare_typed(sql, types).await.map_err(failed)?);
        }
        Ok(Live { client, statements })
    }
}

/// The slot's connection, unless it has none or it closed.
fn open(slot: &Slot) -> Option<Arc<Live>> {
    let live = slot.live.lock().unwrap_or_else(|e| e.into_inner());
    live.as_ref().filter(|l| !l.client.is_closed()).cloned()
}

/// An operation under way on a slot.
struct Busy<'a>(&'a AtomicUsize);

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The error with its causes: tokio-postgres says "error performing TLS handshake" or "db
/// error" and keeps what went wrong in its source.
fn failed(e: tokio_postgres::Error) -> StoreError {
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(&e);
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    StoreError::unavailable(text)
}

/// tokio-postgres's configuration for the connection sqlx's `options` describe, and the TLS
/// their `sslmode` asks for.
fn connection(options: &PgConnectOptions) -> Result<(tokio_postgres::Config, Rustls), StoreError> {
    use tokio_postgres::config::SslMode;
    let mut config = tokio_postgres::Config::new();
    config.user(options.get_username()).port(options.get_port()).connect_timeout(CONNECT);
    match options.get_socket() {
        #[cfg(unix)]
        Some(dir) => {
            config.host_path(dir);
        }
        _ => {
            config.host(options.get_host());
        }
    }
    if let Some(db) = options.get_database() {
        config.dbname(db);
    }
    if let Some(name) = options.get_application_name() {
        config.application_name(name);
    }
    if let Some(o) = options.get_options() {
        config.options(o);
    }
    // The password and the CA file have no getter: sqlx puts them in the URL it describes
    // the options with.
    let url = options.to_url_lossy();
    if let Some(password) = url.password() {
        config.password(percent_encoding::percent_decode_str(password).collect::<Vec<u8>>());
    }
    let ca = url.query_pairs().find(|(k, _)| k == "sslrootcert").map(|(_, v)| v.into_owned());
    let mode = options.get_ssl_mode();
    config.ssl_mode(match mode {
        PgSslMode::Disable => SslMode::Disable,
        PgSslMode::Allow | PgSslMode::Prefer => SslMode::Prefer,
        PgSslMode::Require | PgSslMode::VerifyCa | PgSslMode::VerifyFull => SslMode::Require,
    });
    let check = match mode {
        PgSslMode::VerifyFull => Check::Full,
        PgSslMode::VerifyCa => Check::Chain,
        _ => Check::Nothing,
    };
    let tls = Rustls { config: Arc::new(client_config(check, ca.as_deref())?) };
    Ok((config, tls))
}

/// What the server's certificate is checked for.
#[derive(Clone, Copy, PartialEq)]
enum Check {
    Nothing,
    Chain,
    Full,
}

/// rustls's configuration: the roots are those of `ca` (sqlx's `sslrootcert`) or the system's.
fn client_config(check: Check, ca: Option<&str>) -> Result<ClientConfig, StoreError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(StoreError::unavailable)?;
    if check == Check::Nothing {
        let verifier = Verifier { chain: None, provider };
        return Ok(builder.dangerous().with_custom_certificate_verifier(Arc::new(verifier)).with_no_client_auth());
    }
    let mut roots = RootCertStore::empty();
    match ca {
        Some(ca) => {
            // sqlx describes a file as `file: PATH`, an inline certificate as its PEM.
            let pem = match ca.strip_prefix("file: ") {
                Some(path) => std::fs::read(path)
                    .map_err(|e| StoreError::unavailable(format!("cannot read sslrootcert {path}: {e}")))?,
                None => ca.as_bytes().to_vec(),
            };
            use rustls::pki_types::pem::PemObject;
            for cert in CertificateDer::pem_slice_iter(&pem) {
                let cert = cert.map_err(|e| StoreError::unavailable(format!("sslrootcert {ca}: {e}")))?;
                roots.add(cert).map_err(StoreError::unavailable)?;
            }
        }
        None => {
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert); // a system certificate rustls cannot use is left out
            }
        }
    }
    let roots = Arc::new(roots);
    if check == Check::Full {
        return Ok(builder.with_root_certificates(roots).with_no_client_auth());
    }
    let chain = rustls::client::WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
        .build()
        .map_err(StoreError::unavailable)?;
    let verifier = Verifier { chain: Some(chain), provider };
    Ok(builder.dangerous().with_custom_certificate_verifier(Arc::new(verifier)).with_no_client_auth())
}

/// The certificate checks rustls's own verifier does not make: none (`prefer`, `require`:
/// encrypted, whoever's certificate it is), or the chain without the host name
/// (`verify-ca`). The handshake's signatures are checked either way.
#[derive(Debug)]
struct Verifier {
    chain: Option<Arc<rustls::client::WebPkiServerVerifier>>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else { return Ok(ServerCertVerified::assertion()) };
        match chain.verify_server_cert(end_entity, intermediates, name, ocsp, now) {
            Err(rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName))
            | Err(rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForNameContext { .. })) => {
                Ok(ServerCertVerified::assertion())
            }
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

/// tokio-postgres's TLS over rustls.
#[derive(Clone)]
struct Rustls {
    config: Arc<ClientConfig>,
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> MakeTlsConnect<S> for Rustls {
    type Stream = RustlsStream<S>;
    type TlsConnect = RustlsConnect;
    type Error = rustls::pki_types::InvalidDnsNameError;

    fn make_tls_connect(&mut self, domain: &str) -> Result<RustlsConnect, Self::Error> {
        let name = ServerName::try_from(domain.to_owned())?;
        Ok(RustlsConnect { config: self.config.clone(), name })
    }
}

struct RustlsConnect {
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> TlsConnect<S> for RustlsConnect {
    type Stream = RustlsStream<S>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<RustlsStream<S>>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        let connector = tokio_rustls::TlsConnector::from(self.config);
        Box::pin(async move { connector.connect(self.name, stream).await.map(RustlsStream) })
    }
}

struct RustlsStream<S>(tokio_rustls::client::TlsStream<S>);

impl<S: AsyncRead + AsyncWrite + Unpin> tokio_postgres::tls::TlsStream for RustlsStream<S> {
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for RustlsStream<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for RustlsStream<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use sqlx::postgres::PgConnectOptions;
    use tokio_postgres::config::{Host, SslMode};

    use super::connection;

    /// The store's own connections log in as the pool's would: the parameters sqlx parsed,
    /// and the password and CA file it keeps only in the URL it describes itself with.
    #[test]
    fn connections_take_the_pools_parameters() {
        let url = "postgres://app:p%40ss%3Aw%2Frd%25%20x@db.example:5433/orders?sslmode=require\
                   &options=-c%20search_path%3Dtenant&application_name=billing";
        let (config, _) = connection(&PgConnectOptions::from_str(url).unwrap()).unwrap();
        assert_eq!(config.get_user(), Some("app"));
        assert_eq!(config.get_password(), Some(&b"p@ss:w/rd% x"[..]));
        assert_eq!(config.get_hosts(), [Host::Tcp("db.example".into())]);
        assert_eq!(config.get_ports(), [5433]);
        assert_eq!(config.get_dbname(), Some("orders"));
        assert_eq!(config.get_options(), Some("-c search_path=tenant"));
        assert_eq!(config.get_application_name(), Some("billing"));
        assert_eq!(config.get_ssl_mode(), SslMode::Require);
        for (mode, expected) in [
            ("disable", SslMode::Disable),
            ("allow", SslMode::Prefer),
            ("prefer", SslMode::Prefer),
            ("verify-full", SslMode::Require),
        ] {
            let options = PgConnectOptions::from_str(&format!("postgres://app@h/db?sslmode={mode}")).unwrap();
            assert_eq!(connection(&options).unwrap().0.get_ssl_mode(), expected, "{mode}");
        }
        let missing =
            PgConnectOptions::from_str("postgres://app@h/db?sslmode=verify-ca&sslrootcert=/nonexistent/ca.pem");
        let why = connection(&missing.unwrap()).err().expect("an unreadable CA file is an error");
        assert!(why.to_string().contains("/nonexistent/ca.pem"), "{why}");
    }

    #[cfg(unix)]
    #[test]
    fn a_socket_directory_is_a_socket_directory() {
        let options = PgConnectOptions::from_str("postgres://app@%2Fvar%2Frun%2Fpostgresql/db").unwrap();
        let (config, _) = connection(&options).unwrap();
        assert_eq!(config.get_hosts(), [Host::Unix("/var/run/postgresql".into())]);
    }
}
