//! A payment endpoint made safe to retry: axum on 127.0.0.1:8080 with the in-memory store.
//!
//! ```text
//! cargo run -p idempo --example demo
//! curl -i -X POST localhost:8080/charges -H 'Idempotency-Key: "order-1"' -d '{"amount":42}'
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::post;
use axum::{Router, body::Bytes};
use idempo::{Idempotency, MemoryStore};

/// Charges made so far: the side effect the key protects.
#[derive(Clone, Default)]
struct Charges(Arc<AtomicU64>);

async fn charge(State(charges): State<Charges>, body: Bytes) -> impl IntoResponse {
    // A slow payment provider: long enough to see a concurrent duplicate get 409.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let n = charges.0.fetch_add(1, Ordering::SeqCst) + 1;
    let json = format!("{{\"charge\":\"ch_{n}\",\"request\":{}}}\n", String::from_utf8_lossy(&body));
    (
        StatusCode::CREATED,
        [(header::CONTENT_TYPE, "application/json"), (header::LOCATION, &format!("/charges/ch_{n}"))],
        json,
    )
        .into_response()
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "idempo=debug".into()))
        .with_writer(std::io::stderr)
        .init();
    let idem = Idempotency::builder(MemoryStore::new()).required(true).build();
    let app = Router::new().route("/charges", post(charge)).with_state(Charges::default()).layer(idem.layer());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
    eprintln!("demo listening on http://127.0.0.1:8080 (POST /charges with an Idempotency-Key)");
    axum::serve(listener, app).await
}
