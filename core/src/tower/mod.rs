//! The tower layer: idempotency for axum, hyper and any `tower::Service` over HTTP.
//!
//! ```
//! use axum::{Router, routing::post};
//! use idempo::{Idempotency, MemoryStore};
//!
//! async fn charge(body: String) -> (http::StatusCode, String) {
//!     (http::StatusCode::CREATED, format!("charged: {body}"))
//! }
//!
//! let idem = Idempotency::builder(MemoryStore::new()).required(true).build();
//! let layer = idem.layer().scope(|req| {
//!     // The caller, as the authentication in front of this layer established it.
//!     req.extensions.get::<AccountId>().map(|a| a.0.clone()).unwrap_or_default()
//! });
//! # #[derive(Clone)] struct AccountId(String);
//! let app: Router = Router::new().route("/charge", post(charge)).layer(layer);
//! ```
//!
//! For a covered request with a key the layer buffers the request body (up to
//! `max_request_body`), claims the key, runs the inner service with the body unchanged,
//! and streams the response to the client chunk by chunk while the host layer's
//! [`Recorder`](crate::host::Recorder) keeps a copy, which is stored before the end of the
//! body is sent. A duplicate gets the stored response with `Idempotency-Replayed: true`;
//! everything else passes through untouched, without an allocation: the inner service sees
//! the request as it came, and its response is the layer's.
//!
//! The request and response bodies are an [`HttpBody`]: axum's `Body` (any axum app), or
//! `http_body_util::combinators::UnsyncBoxBody<Bytes, BoxError>`. Under a bare hyper
//! service, map hyper's `Incoming` into the latter before the layer:
//!
//! ```
//! use bytes::Bytes;
//! use http_body_util::{BodyExt, combinators::UnsyncBoxBody};
//! use idempo::{Idempotency, MemoryStore};
//! use tower::ServiceBuilder;
//!
//! type BoxError = Box<dyn std::error::Error + Send + Sync>;
//! type Body = UnsyncBoxBody<Bytes, BoxError>;
//!
//! async fn handle(_: http::Request<Body>) -> Result<http::Response<Body>, std::convert::Infallible> {
//!     let body = http_body_util::Full::new(Bytes::from("charged")).map_err(|e| match e {}).boxed_unsync();
//!     Ok(http::Response::new(body))
//! }
//!
//! let idem = Idempotency::builder(MemoryStore::new()).build();
//! let service = ServiceBuilder::new()
//!     // hyper's `Incoming` (here any body) into the boxed body the layer can make again
//!     .map_request(|req: http::Request<http_body_util::Full<Bytes>>| {
//!         req.map(|b| b.map_err(|e| -> BoxError { match e {} }).boxed_unsync())
//!     })
//!     .layer(idem.layer())
//!     .service_fn(handle);
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use tower::ServiceExt;
//! let charge = || {
//!     let body = http_body_util::Full::new(Bytes::from("card=4242"));
//!     http::Request::post("/charge").header("idempotency-key", "order-1").body(body).unwrap()
//! };
//! let first = service.clone().oneshot(charge()).await.unwrap();
//! assert!(first.headers().get("idempotency-replayed").is_none());
//! let again = service.oneshot(charge()).await.unwrap();
//! assert_eq!(again.headers()["idempotency-replayed"], "true");
//! assert_eq!(again.into_body().collect().await.unwrap().to_bytes(), "charged");
//! # });
//! ```
//!
//! Only the handler's own failure gives the key back (an error, a panic, a 5xx, a body
//! that fails mid-stream), so a retry runs the handler again. A client that goes away, or
//! an outer timeout that drops the request, never does: the layer finishes the handler or
//! the rest of the body on a background task, stores the response, and the retry replays
//! it (`docs/RULES.md`, B11).

mod body;
mod future;
mod layer;
mod request_body;
mod response_body;
mod service;

pub use body::HttpBody;
pub use future::ResponseFuture;
pub use layer::{IdempotencyLayer, ScopeFn};
pub use service::IdempotencyService;
