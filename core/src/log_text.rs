//! One line of text for a `tracing` event: the message, then its fields as `name=value`.
//! The bindings use it to hand idempo's events to Python `logging` and to a Node logger,
//! so both print the same words.

use std::fmt::Write as _;

use tracing::Event;
use tracing::field::{Field, Visit};

/// The event's message followed by its other fields, e.g.
/// `idempotency store failed: running the request unprotected key=k…3f error=…`.
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
