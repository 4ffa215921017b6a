//! A test app behind the tower layer, and the helpers the behaviour tests share.
#![allow(dead_code)]

pub mod behaviour;
pub mod captured;
pub mod faulty;
pub mod services;
pub mod waiting;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{self, get};
use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode, header};
use http_body_util::BodyExt;
use idempo::Idempotency;
use tokio::sync::Semaphore;
use tower::ServiceExt;

/// Handler executions and a gate the streaming handler waits on.
#[derive(Clone)]
pub struct AppState {
    pub count: Arc<AtomicUsize>,
    pub gate: Arc<Semaphore>,
}

/// The app under test: the fixture endpoints (tests/fixtures/README.md) plus a few the core tests need.
pub struct TestApp {
    pub router: Router,
    pub state: AppState,
    pub idem: Idempotency,
}

async fn echo(State(s): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let n = s.count.fetch_add(1, Ordering::SeqCst) + 1;
    let ct = headers.get(header::CONTENT_TYPE).cloned().unwrap_or(header::HeaderValue::from_static("text/plain"));
    let mut res = (StatusCode::CREATED, body).into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, ct);
    h.insert(header::LOCATION, format!("/things/{n}").parse().unwrap());
    h.insert(header::ETAG, "\"e1\"".parse().unwrap());
    h.insert(header::SET_COOKIE, "session=abc".parse().unwrap());
    h.insert("x-custom", "custom".parse().unwrap());
    h.insert("x-execution", n.to_string().parse().unwrap());
    res
}

async fn status(State(s): State<AppState>, Path(code): Path<u16>) -> Response {
    s.count.fetch_add(1, Ordering::SeqCst);
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_REQUEST);
    (status, format!("status:{code}")).into_response()
}

async fn slow(State(s): State<AppState>, Query(q): Query<HashMap<String, u64>>) -> String {
    let n = s.count.fetch_add(1, Ordering::SeqCst) + 1;
    let ms = q.get("ms").copied().unwrap_or(0);
    tokio::time::sleep(Duration::from_millis(ms)).await;
    format!("slept:{ms}:run{n}")
}

async fn large(State(s): State<AppState>, Query(q): Query<HashMap<String, usize>>) -> Response {
    s.count.fetch_add(1, Ordering::SeqCst);
    let total = q.get("bytes").copied().unwrap_or(0);
    let chunks = (0..total).step_by(64 * 1024).map(move |start| {
        let len = (total - start).min(64 * 1024);
        Ok::<_, std::io::Error>(Bytes::from(vec![b'a' + (start / 65536 % 26) as u8; len]))
    });
    let mut res = Response::new(Body::from_stream(futures_util::stream::iter(chunks)));
    res.headers_mut().insert(header::CONTENT_TYPE, "application/octet-stream".parse().unwrap());
    res
}

/// The streaming handler: the first event, then waits for the gate, then the second.
async fn stream(State(s): State<AppState>) -> Response {
    s.count.fetch_add(1, Ordering::SeqCst);
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    let gate = s.gate.clone();
    tokio::spawn(async move {
        let _ = tx.send(Ok(Bytes::from_static(b"data: one\n\n"))).await;
        if let Ok(permit) = gate.acquire().await {
            permit.forget();
        }
        let _ = tx.send(Ok(Bytes::from_static(b"data: two\n\n"))).await;
    });
    let mut res = Response::new(Body::from_stream(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    })));
    res.headers_mut().insert(header::CONTENT_TYPE, "text/event-stream".parse().unwrap());
    res
}

/// Fails (500, so the key is released) on the app's first execution, after `ms`; succeeds
/// on any later one.
async fn fail_first(State(s): State<AppState>, Query(q): Query<HashMap<String, u64>>) -> Response {
    let n = s.count.fetch_add(1, Ordering::SeqCst) + 1;
    tokio::time::sleep(Duration::from_millis(q.get("ms").copied().unwrap_or(0))).await;
    if n == 1 {
        (StatusCode::INTERNAL_SERVER_ERROR, "failed").into_response()
    } else {
        format!("ok:run{n}").into_response()
    }
}

async fn raise(State(s): State<AppState>) -> &'static str {
    s.count.fetch_add(1, Ordering::SeqCst);
    panic!("handler failed on purpose");
}

async fn upgrade(State(s): State<AppState>) -> Response {
    s.count.fetch_add(1, Ordering::SeqCst);
    let mut res = Response::new(Body::empty());
    *res.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    res.headers_mut().insert(header::UPGRADE, "websocket".parse().unwrap());
    res
}

async fn counter(State(s): State<AppState>) -> String {
    format!("{{\"count\": {}}}", s.count.load(Ordering::SeqCst))
}

impl Default for AppState {
    fn default() -> Self {
        AppState { count: Arc::default(), gate: Arc::new(Semaphore::new(0)) }
    }
}

impl TestApp {
    pub fn new(idem: Idempotency) -> TestApp {
        let layer = idem.layer();
        TestApp::with_layer(idem, layer)
    }

    /// The app behind `layer` (a layer of `idem` with its own settings, such as a scope).
    pub fn with_layer(idem: Idempotency, layer: idempo::tower::IdempotencyLayer) -> TestApp {
        TestApp::sharing(idem, layer, AppState::default())
    }

    /// Another process of the same app: its own layer, the counter of `other`.
    pub fn beside(other: &TestApp, idem: Idempotency) -> TestApp {
        let layer = idem.layer();
        TestApp::sharing(idem, layer, other.state.clone())
    }

    fn sharing(idem: Idempotency, layer: idempo::tower::IdempotencyLayer, state: AppState) -> TestApp {
        let router = Router::new()
            .route("/echo", routing::post(echo).put(echo).delete(echo).get(echo))
            .route("/status/{code}", routing::post(status))
            .route("/slow", routing::post(slow))
            .route("/large", routing::post(large))
            .route("/stream", routing::post(stream))
            .route("/raise", routing::post(raise))
            .route("/fail-first", routing::post(fail_first))
            .route("/upgrade", routing::post(upgrade))
            .route("/counter", get(counter))
            .with_state(state.clone())
            .layer(layer);
        TestApp { router, state, idem }
    }

    pub fn count(&self) -> usize {
        self.state.count.load(Ordering::SeqCst)
    }

    /// Send a request through the router in-process.
    pub async fn send(&self, req: Request<Body>) -> Reply {
        let res = self.router.clone().oneshot(req).await.expect("router is infallible");
        Reply::read(res).await
    }

    /// Serve the app over real HTTP on a loopback port.
    pub async fn serve(&self) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = self.router.clone();
        tokio::spawn(async move { axum::serve(listener, router).await });
        addr
    }
}

/// A response read to the end.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub async fn read<B>(res: http::Response<B>) -> Reply
    where
        B: http_body::Body,
        B::Error: std::fmt::Debug,
    {
        let (parts, body) = res.into_parts();
        let body = body.collect().await.expect("body reads").to_bytes();
        Reply { status: parts.status, headers: parts.headers, body }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    pub fn replayed(&self) -> bool {
        self.header("idempotency-replayed") == Some("true")
    }

    pub fn text(&self) -> &str {
        std::str::from_utf8(&self.body).unwrap()
    }

    /// The `code` member of a problem body.
    pub fn problem_code(&self) -> Option<String> {
        let text = self.text();
        let start = text.find("\"code\":\"")? + 8;
        let end = text[start..].find('"')?;
        Some(text[start..start + end].to_owned())
    }

    pub fn assert_problem(&self, status: u16, code: &str) {
        assert_eq!(self.status.as_u16(), status, "status of {}", self.text());
        assert_eq!(self.header("content-type"), Some("application/problem+json"));
        assert_eq!(self.header("cache-control"), Some("no-store"));
        assert_eq!(self.problem_code().as_deref(), Some(code), "problem body {}", self.text());
        assert!(!self.replayed(), "a problem is not a replay");
    }
}

/// A request builder with the key header set (when `key` is given).
pub fn post(uri: &str, key: Option<&str>, body: impl Into<Body>) -> Request<Body> {
    let mut b = Request::post(uri);
    if let Some(k) = key {
        b = b.header("idempotency-key", k);
    }
    b.body(body.into()).unwrap()
}

/// A real HTTP/1 client, with no connection reuse so requests run side by side.
pub type HttpClient =
    hyper_util::client::legacy::Client<hyper_util::client::legacy::connect::HttpConnector, http_body_util::Full<Bytes>>;

pub fn http_client() -> HttpClient {
    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .pool_max_idle_per_host(0)
        .build_http()
}

/// `n` identical keyed POSTs of `path` (with `headers`), let go at once over real HTTP,
/// each on a connection of its own; their answers, in order.
pub async fn concurrent_posts(
    addr: SocketAddr,
    path: &str,
    key: &str,
    n: usize,
    headers: &[(&'static str, &'static str)],
) -> Vec<Reply> {
    let client = http_client();
    let barrier = Arc::new(tokio::sync::Barrier::new(n));
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let mut req = http_post(addr, path, key, b"same");
            for (name, value) in headers {
                req.headers_mut().insert(*name, header::HeaderValue::from_static(value));
            }
            let (client, barrier) = (client.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                Reply::read(client.request(req).await.expect("request")).await
            })
        })
        .collect();
    let mut replies = Vec::with_capacity(n);
    for t in tasks {
        replies.push(t.await.expect("the request task"));
    }
    replies
}

/// A keyed POST for [`http_client`].
pub fn http_post(addr: SocketAddr, path: &str, key: &str, body: &'static [u8]) -> Request<http_body_util::Full<Bytes>> {
    Request::post(format!("http://{addr}{path}"))
        .header("idempotency-key", key)
        .body(http_body_util::Full::new(Bytes::from_static(body)))
        .unwrap()
}

/// A quoted key, as the draft's clients send it.
pub fn quoted(k: &str) -> String {
    format!("\"{k}\"")
}
