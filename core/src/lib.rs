//! Idempo makes unsafe HTTP requests safe to retry.
//!
//! A client sends an `Idempotency-Key`; a duplicate request runs its side effect at most
//! once and gets the original response replayed (the IETF Idempotency-Key draft, with
//! Stripe's semantics). This crate holds every rule (stated in the repository's
//! `docs/RULES.md`): key parsing ([`key`]), fingerprints ([`fingerprint`]), the claim
//! state machine ([`Idempotency`], [`Lease`]), the record encoding ([`record`]), problem
//! responses ([`problem`]) and the stores ([`store`]). The [`host`] module (feature `host`)
//! holds what every integration shares; the [`tower`] module (feature
//! `tower`, on by default) is the reference integration.
//!
//! ```
//! use axum::{Router, routing::post};
//! use idempo::{Idempotency, MemoryStore};
//!
//! async fn charge() -> &'static str { "charged" }
//!
//! let idem = Idempotency::builder(MemoryStore::new()).required(true).build();
//! let app: Router = Router::new().route("/charge", post(charge)).layer(idem.layer());
//! ```

#![cfg_attr(docsrs, feature(doc_cfg))]

// The crate's README (crates.io's page) is compiled and run with the doc tests, so its
// examples cannot go stale.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

pub mod config;
pub mod encryption;
pub mod engine;
pub mod fingerprint;
mod forks;
mod held;
#[cfg(feature = "host")]
pub mod host;
mod id_hash;
pub mod key;
mod lease;
#[cfg(feature = "log-bridge")]
pub mod log_bridge;
mod prefer;
pub mod problem;
mod ready;
pub mod record;
mod renewal;
mod shared;
mod stats;
pub mod store;
mod target;
#[cfg(feature = "testing")]
pub mod testing;
mod throttle;
#[cfg(feature = "tower")]
pub mod tower;
mod waiting;
pub mod wake;

pub use config::{Builder, Config, ConfigError, OnStoreError};
pub use encryption::EncryptionKeys;
pub use engine::{Begun, Check, Claiming, Decision, HeaderSource, Idempotency, Look, Pending};
pub use lease::Lease;
pub use stats::StatsSnapshot;
pub use store::{Claim, Completion, MemoryStore, Owner, Release, Renewal, Store, StoreError, Token};
