//! Handing idempo's `tracing` events to a host language's logger (feature `log-bridge`):
//! the Python binding sends them to `logging`, the Node binding to a JavaScript logger.
//!
//! [`Bridge`] is a `tracing_subscriber` layer that passes each event of an `idempo`
//! target, at or above a level the host can change at run time, to a sink as
//! `(level, text)`. Levels are numbers as Python's `logging` has them (error 40, warn 30,
//! info 20, debug 10, trace 5). Events below the level are never formatted.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::mpsc::{Sender, channel};
use std::sync::{Arc, Mutex};

use tracing::field::{Field, Visit};
use tracing::subscriber::Interest;
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;

/// Make `Bridge::new(min_level, sink)` the process's `tracing` subscriber, once: a later
/// call, or a process that already has a global subscriber (a Rust program embedding the
/// host language), keeps the one it has.
pub fn install<F: Fn(u8, String) + Send + Sync + 'static>(min_level: &'static AtomicU8, sink: F) {
    let _ = tracing_subscriber::registry().with(Bridge::new(min_level, sink)).try_init();
}

/// A sink that hands each event to one thread of its own, which calls `deliver(level,
/// text)`: for a host that must not be entered from a runtime thread (Python: taking the
/// GIL there could stall the runtime for a whole switch interval). The thread is started
/// on the first event, and again in a forked child, which inherits no threads.
pub fn on_own_thread(deliver: impl Fn(u8, String) + Send + Sync + 'static) -> impl Fn(u8, String) + Send + Sync {
    let deliver = Arc::new(deliver);
    // The thread's inbox, with the process it belongs to.
    type Inbox = Option<(u32, Sender<(u8, String)>)>;
    let inbox: Mutex<Inbox> = Mutex::new(None);
    move |level, text| {
        let pid = std::process::id();
        let mut inbox = inbox.lock().unwrap_or_else(|p| p.into_inner());
        if !matches!(&*inbox, Some((owner, _)) if *owner == pid) {
            let (tx, rx) = channel::<(u8, String)>();
            let deliver = deliver.clone();
            let started = std::thread::Builder::new().name("idempo-logging".into()).spawn(move || {
                while let Ok((level, text)) = rx.recv() {
                    deliver(level, text);
                }
            });
            if started.is_err() {
                return;
            }
            *inbox = Some((pid, tx));
        }
        if let Some((_, tx)) = &*inbox {
            let _ = tx.send((level, text));
        }
    }
}

/// The number of a level: error 40, warn 30, info 20, debug 10, trace 5.
pub fn level_number(level: &Level) -> u8 {
    match *level {
        Level::ERROR => 40,
        Level::WARN => 30,
        Level::INFO => 20,
        Level::DEBUG => 10,
        Level::TRACE => 5,
    }
}

/// A layer passing idempo's events at `min_level` and above to `sink(level, text)`.
pub struct Bridge<F> {
    min_level: &'static AtomicU8,
    sink: F,
}

impl<F: Fn(u8, String) + Send + Sync + 'static> Bridge<F> {
    /// `min_level` is read at every event, so the host can change it at any time.
    pub fn new(min_level: &'static AtomicU8, sink: F) -> Bridge<F> {
        Bridge { min_level, sink }
    }
}

impl<S: Subscriber, F: Fn(u8, String) + Send + Sync + 'static> Layer<S> for Bridge<F> {
    // The wanted level changes at run time: ask `enabled` at every event rather than let
    // tracing cache the first answer per call site.
    fn register_callsite(&self, metadata: &'static Metadata<'static>) -> Interest {
        if metadata.target().starts_with("idempo") { Interest::sometimes() } else { Interest::never() }
    }

    fn enabled(&self, metadata: &Metadata<'_>, _: Context<'_, S>) -> bool {
        metadata.target().starts_with("idempo")
            && level_number(metadata.level()) >= self.min_level.load(Ordering::Relaxed)
    }

    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        (self.sink)(level_number(event.metadata().level()), event_text(event));
    }
}

/// The event's message followed by its other fields as `name=value`.
pub fn event_text(event: &Event<'_>) -> String {
    let mut text = Text::default();
    event.record(&mut text);
    text.0
}

#[derive(Default)]
struct Text(String);

impl Visit for Text {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            // The message goes first, whatever order the fields were recorded in.
            let fields = std::mem::take(&mut self.0);
            let _ = write!(self.0, "{value:?}");
            if !fields.is_empty() {
                let _ = write!(self.0, " {fields}");
            }
        } else {
            let sep = if self.0.is_empty() { "" } else { " " };
            let _ = write!(self.0, "{sep}{}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.record_debug(field, &format_args!("{value}"));
        } else {
            let sep = if self.0.is_empty() { "" } else { " " };
            let _ = write!(self.0, "{sep}{}={value}", field.name());
        }
    }
}
