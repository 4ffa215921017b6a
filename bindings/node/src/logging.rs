//! Rust `tracing` events from idempo reach a JavaScript logger (node/lib/log.js: the
//! console by default, or any object with error/warn/info/debug methods, such as pino,
//! fastify.log or winston).
//!
//! Events can happen on runtime threads (a background completion that failed, a lost
//! lease, a store error under fail_open), so they reach JavaScript through one threadsafe
//! function, made when the logger is set. It is weak: it never keeps the process alive.
//! Events below the wanted level are not even formatted.

use std::sync::RwLock;
use std::sync::atomic::{AtomicU8, Ordering};

use idempo::log_bridge;
use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi_derive::napi;

/// The lowest level wanted, in the numbers log.js uses (error 40, warn 30, info 20,
/// debug 10); above 40, nothing.
static MIN_LEVEL: AtomicU8 = AtomicU8::new(u8::MAX);

/// Called as `sink(level, message)`.
type Args = FnArgs<(u32, String)>;
type Sink = ThreadsafeFunction<Args, (), Args, Status, false, true>;
static SINK: RwLock<Option<Sink>> = RwLock::new(None);

/// Send idempo's events at `level` and above to `sink(level, message)`; no sink, none.
#[napi(catch_unwind)]
pub fn set_log_sink(level: u32, sink: Option<Function<Args, ()>>) -> Result<()> {
    let sink =
        sink.map(|f| f.build_threadsafe_function().callee_handled::<false>().weak::<true>().build()).transpose()?;
    let wanted = if sink.is_some() { u8::try_from(level.max(1)).unwrap_or(u8::MAX) } else { u8::MAX };
    *SINK.write().unwrap_or_else(|p| p.into_inner()) = sink;
    MIN_LEVEL.store(wanted, Ordering::Relaxed);
    // The first logger installs the bridge.
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        log_bridge::install(&MIN_LEVEL, |level, text| {
            let sink = SINK.read().unwrap_or_else(|p| p.into_inner());
            if let Some(sink) = sink.as_ref() {
                sink.call((u32::from(level), text).into(), ThreadsafeFunctionCallMode::NonBlocking);
            }
        })
    });
    Ok(())
}
