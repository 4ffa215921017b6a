//! The host layer: everything an integration needs besides converting its language's
//! values, so that the tower layer, the Python middleware and the Node middleware behave
//! the same by construction (docs/RULES.md, "How a request is handled").
//!
//! - [`options`]: every engine option by name, as a host language spells it, with the
//!   core's defaults applying to whatever is not set, and the effective values read back;
//! - [`split_target`], [`origin_path`], [`encode_path`]: the raw path and query of a
//!   request target, in origin or absolute form;
//! - [`text`]: header bytes from a host language's strings and back;
//! - [`Recorder`]: the one response recorder (head, chunks, capture limit, then complete,
//!   release or omitted);
//! - [`DRAIN_LIMIT`]: how much of a refused body is read and thrown away;
//! - [`now_or_later`]: answer at once when the store is ready, else go on later;
//! - [`store`]: stores from URLs, connected once per process;
//! - [`runtime`]: a tokio runtime per process, for hosts without one, and [`inbox`], which
//!   hands its results to a host's event loop;
//! - [`counters`]: the counter list, as a host language spells it;
//! - [`Gone`]: a client that left while its request waited for an in-flight duplicate.
//!
//! A binding converts values to and from these types and holds no rule of its own.

mod body;
mod gone;
pub mod inbox;
pub mod options;
mod recorder;
pub mod redact;
pub mod runtime;
pub mod store;
pub mod text;

pub use body::DRAIN_LIMIT;
pub use gone::Gone;

/// What a binding says when the user's scope function returned nothing (B5): an error, so
/// no request falls into a shared namespace by mistake.
pub const SCOPE_MISSING: &str =
    "the scope function returned nothing: it must return the caller's identity as a string (B5)";
pub use options::{Dialect, Value};
pub use recorder::Recorder;

pub use crate::ready::{Now, now_if, now_or_later};
pub use crate::target::{encode_path, origin_path, split_target};

use crate::stats::StatsSnapshot;

/// The counters (B19) as `(name, value)` pairs, named as `dialect` spells them.
pub fn counters(stats: &StatsSnapshot, dialect: Dialect) -> Vec<(String, u64)> {
    stats.fields().iter().map(|&(name, value)| (dialect.name(name), value)).collect()
}
