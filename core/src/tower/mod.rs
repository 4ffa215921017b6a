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
//! everything else passes through untouched, without an allocation.
//!
//! Only the handler's own failure gives the key back (an error, a panic, a 5xx, a body
//! that fails mid-stream), so a retry runs the handler again. A client that goes away, or
//! an outer timeout that drops the request, never does: the layer finishes the handler or
//! the rest of the body on a background task, stores the response, and the retry replays
//! it (`docs/RULES.md`, B11).

mod future;
mod layer;
mod request_body;
mod response_body;
mod service;

pub use future::ResponseFuture;
pub use layer::{IdempotencyLayer, ScopeFn};
pub use request_body::RequestBody;
pub use response_body::ResponseBody;
pub use service::IdempotencyService;
