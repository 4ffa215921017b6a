//! Engine options by name, as host languages hand them over.
//!
//! A binding passes only the options its user set, each as a [`Value`]; the core's
//! defaults ([`crate::config::defaults`]) apply to the rest, and [`read`] gives back the
//! effective values. Names are checked (an unknown one is an error that suggests the
//! right spelling) and so are types and ranges, with messages in the host's own spelling:
//! `lease_ttl` in seconds for Python, `leaseTtl` in milliseconds for JavaScript.

use std::borrow::Cow;
use std::time::Duration;

use crate::config::{Builder, Config, ConfigError, MAX_DURATION, OnStoreError};
use crate::encryption::EncryptionKeys;
use crate::engine::Idempotency;
use crate::store::Store;

/// How a host language spells option names and durations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// snake_case, durations in seconds.
    Python,
    /// camelCase, durations in milliseconds.
    JavaScript,
}

impl Dialect {
    /// `snake` (an option or counter name) as this language spells it.
    pub fn name(self, snake: &str) -> String {
        match self {
            Dialect::Python => snake.to_owned(),
            Dialect::JavaScript => {
                let mut out = String::with_capacity(snake.len());
                let mut upper = false;
                for c in snake.chars() {
                    if c == '_' {
                        upper = true;
                    } else if upper {
                        out.push(c.to_ascii_uppercase());
                        upper = false;
                    } else {
                        out.push(c);
                    }
                }
                out
            }
        }
    }

    /// Seconds per unit of a duration.
    fn unit(self) -> f64 {
        match self {
            Dialect::Python => 1.0,
            Dialect::JavaScript => 0.001,
        }
    }

    fn unit_name(self) -> &'static str {
        match self {
            Dialect::Python => "seconds",
            Dialect::JavaScript => "milliseconds",
        }
    }

    /// A configuration error from the core, with option names as this language spells them.
    pub fn error(self, e: ConfigError) -> ConfigError {
        let mut message = e.0;
        if self == Dialect::JavaScript {
            for name in ENGINE.iter().chain(STORE).map(|o| o.name).filter(|n| n.contains('_')) {
                message = message.replace(name, &self.name(name));
            }
        }
        ConfigError(message)
    }
}

/// An option value as a host language holds it.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Not set (Python `None`, JavaScript `undefined`/`null`): the default applies.
    Null,
    Bool(bool),
    Number(f64),
    Str(String),
    Bytes(Vec<u8>),
    List(Vec<Value>),
}

/// What an option takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Bool,
    /// A whole number of bytes or characters.
    Count,
    Duration,
    Str,
    Strings,
    /// A string or bytes that is never shown.
    Secret,
    /// `fail_closed` or `fail_open`.
    Policy,
    /// Encryption keys (B24): `"id:base64,…"`, or a list of `(id, 32-byte key)` pairs.
    Keys,
}

pub(crate) struct Spec {
    name: &'static str,
    kind: Kind,
}

const fn spec(name: &'static str, kind: Kind) -> Spec {
    Spec { name, kind }
}

/// Every engine option (docs/RULES.md, "Defaults").
const ENGINE: &[Spec] = &[
    spec("methods", Kind::Strings),
    spec("header", Kind::Str),
    spec("required", Kind::Bool),
    spec("max_key_length", Kind::Count),
    spec("strict_key_syntax", Kind::Bool),
    spec("max_request_body", Kind::Count),
    spec("max_response_body", Kind::Count),
    spec("lease_ttl", Kind::Duration),
    spec("max_lease", Kind::Duration),
    spec("ttl", Kind::Duration),
    spec("replay_headers", Kind::Strings),
    spec("replayed_header", Kind::Str),
    spec("on_store_error", Kind::Policy),
    spec("persist_timeout", Kind::Duration),
    spec("retry_after", Kind::Duration),
    spec("wait", Kind::Duration),
    spec("max_wait", Kind::Duration),
    spec("max_waiters", Kind::Count),
    spec("fingerprint_headers", Kind::Strings),
    spec("fingerprint_secret", Kind::Secret),
    spec("problem_base", Kind::Str),
];

/// The options of the stores (see [`super::store::StoreSpec`]).
pub(crate) const STORE: &[Spec] = &[
    spec("max_entries", Kind::Count),
    spec("max_entries_per_scope", Kind::Count),
    spec("max_bytes", Kind::Count),
    spec("prefix", Kind::Str),
    spec("table", Kind::Str),
    spec("migrate", Kind::Bool),
    spec("sweep_interval", Kind::Duration),
    spec("ca_file", Kind::Str),
    spec("encryption_keys", Kind::Keys),
];

/// A checked option value.
pub(crate) enum Checked {
    Bool(bool),
    Count(usize),
    Duration(Duration),
    Str(String),
    Strings(Vec<String>),
    Bytes(Vec<u8>),
    Policy(OnStoreError),
    // Read by the networked stores only.
    #[cfg_attr(not(any(feature = "redis", feature = "postgres")), allow(dead_code))]
    Keys(std::sync::Arc<EncryptionKeys>),
}

/// Check `value` for the option `name` among `specs`; `None` when it is not set.
pub(crate) fn check(
    specs: &[Spec],
    what: &str,
    dialect: Dialect,
    name: &str,
    value: Value,
) -> Result<Option<(&'static str, Checked)>, ConfigError> {
    let Some(spec) = specs.iter().find(|s| dialect.name(s.name) == name) else {
        return Err(unknown(specs, what, dialect, name));
    };
    if value == Value::Null {
        return Ok(None);
    }
    let shown = dialect.name(spec.name);
    let wrong = |expected: &str| ConfigError(format!("{shown} must be {expected}, got {}", describe(&value)));
    let checked = match (spec.kind, &value) {
        (Kind::Bool, Value::Bool(b)) => Checked::Bool(*b),
        (Kind::Count, Value::Number(n)) if n.fract() == 0.0 && (0.0..=9_007_199_254_740_991.0).contains(n) => {
            Checked::Count(*n as usize)
        }
        (Kind::Duration, Value::Number(n)) => {
            let limit = MAX_DURATION.as_secs_f64() / dialect.unit();
            match Duration::try_from_secs_f64(n * dialect.unit()) {
                Ok(d) if d <= MAX_DURATION => Checked::Duration(d),
                _ => return Err(wrong(&format!("a number of {} from 0 to {limit}", dialect.unit_name()))),
            }
        }
        (Kind::Str, Value::Str(s)) => Checked::Str(s.clone()),
        (Kind::Strings, Value::List(items)) => Checked::Strings(
            items
                .iter()
                .map(|v| match v {
                    Value::Str(s) => Ok(s.clone()),
                    _ => Err(wrong("a list of strings")),
                })
                .collect::<Result<_, _>>()?,
        ),
        (Kind::Secret, Value::Str(s)) => Checked::Bytes(s.as_bytes().to_vec()),
        (Kind::Secret, Value::Bytes(b)) => Checked::Bytes(b.clone()),
        (Kind::Policy, Value::Str(s)) => Checked::Policy(s.parse().map_err(|e| dialect.error(e))?),
        (Kind::Keys, Value::Str(s)) => Checked::Keys(EncryptionKeys::parse(s).map_err(|e| dialect.error(e))?.into()),
        (Kind::Keys, Value::List(items)) => {
            let pairs = items
                .iter()
                .map(|item| match item {
                    Value::List(pair) => match pair.as_slice() {
                        [Value::Str(id), Value::Bytes(key)] => Ok((id.as_str(), key.as_slice())),
                        _ => Err(wrong("a list of (id, key bytes) pairs, or \"id:base64key,…\"")),
                    },
                    _ => Err(wrong("a list of (id, key bytes) pairs, or \"id:base64key,…\"")),
                })
                .collect::<Result<Vec<_>, _>>()?;
            Checked::Keys(EncryptionKeys::new(pairs).map_err(|e| dialect.error(e))?.into())
        }
        (kind, _) => {
            return Err(wrong(match kind {
                Kind::Bool => "true or false",
                Kind::Count => "a whole number ≥ 0",
                Kind::Duration => "a number",
                Kind::Str => "a string",
                Kind::Strings => "a list of strings",
                Kind::Secret => "a string or bytes",
                Kind::Policy => "\"fail_closed\" or \"fail_open\"",
                Kind::Keys => "a list of (id, key bytes) pairs, or \"id:base64key,…\"",
            }));
        }
    };
    Ok(Some((spec.name, checked)))
}

fn describe(value: &Value) -> Cow<'static, str> {
    match value {
        Value::Null => "nothing".into(),
        Value::Bool(b) => b.to_string().into(),
        Value::Number(n) => n.to_string().into(),
        Value::Str(s) => format!("{s:?}").into(),
        Value::Bytes(_) => "bytes".into(),
        Value::List(_) => "a list".into(),
    }
}

fn unknown(specs: &[Spec], what: &str, dialect: Dialect, name: &str) -> ConfigError {
    let squash = |s: &str| s.replace('_', "").to_ascii_lowercase();
    let names: Vec<String> = specs.iter().map(|s| dialect.name(s.name)).collect();
    let hint = match names.iter().find(|n| squash(n) == squash(name)) {
        Some(close) => format!(" (did you mean {close}?)"),
        None => format!("; the {what} options are {}", names.join(", ")),
    };
    ConfigError(format!("unknown {what} option {name:?}{hint}"))
}

/// Build an engine over `store` from the options a host language's user set. Options not
/// given, or given as [`Value::Null`], keep the core's defaults.
pub fn build(
    store: std::sync::Arc<dyn Store>,
    dialect: Dialect,
    options: impl IntoIterator<Item = (String, Value)>,
) -> Result<Idempotency, ConfigError> {
    let mut b = Idempotency::builder_shared(store);
    for (name, value) in options {
        if let Some((name, value)) = check(ENGINE, "engine", dialect, &name, value)? {
            b = apply(b, name, value);
        }
    }
    b.try_build().map_err(|e| dialect.error(e))
}

fn apply(b: Builder, name: &str, value: Checked) -> Builder {
    match (name, value) {
        ("methods", Checked::Strings(v)) => b.methods(v),
        ("header", Checked::Str(v)) => b.header(v),
        ("required", Checked::Bool(v)) => b.required(v),
        ("max_key_length", Checked::Count(v)) => b.max_key_length(v),
        ("strict_key_syntax", Checked::Bool(v)) => b.strict_key_syntax(v),
        ("max_request_body", Checked::Count(v)) => b.max_request_body(v),
        ("max_response_body", Checked::Count(v)) => b.max_response_body(v),
        ("lease_ttl", Checked::Duration(v)) => b.lease_ttl(v),
        ("max_lease", Checked::Duration(v)) => b.max_lease(v),
        ("ttl", Checked::Duration(v)) => b.ttl(v),
        ("replay_headers", Checked::Strings(v)) => b.replay_headers(v),
        ("replayed_header", Checked::Str(v)) => b.replayed_header(v),
        ("on_store_error", Checked::Policy(v)) => b.on_store_error(v),
        ("persist_timeout", Checked::Duration(v)) => b.persist_timeout(v),
        ("retry_after", Checked::Duration(v)) => b.retry_after(v),
        ("wait", Checked::Duration(v)) => b.wait(v),
        ("max_wait", Checked::Duration(v)) => b.max_wait(v),
        ("max_waiters", Checked::Count(v)) => b.max_waiters(v),
        ("fingerprint_headers", Checked::Strings(v)) => b.fingerprint_headers(v),
        ("fingerprint_secret", Checked::Bytes(v)) => b.fingerprint_secret(v),
        ("problem_base", Checked::Str(v)) => b.problem_base(v),
        // `check` gives each name the kind its spec says; the table and this match are
        // kept in step by the test below.
        _ => b,
    }
}

/// The default of every engine option, as `dialect` spells and measures it.
pub fn defaults(dialect: Dialect) -> Vec<(String, Value)> {
    let builder = Builder::new(std::sync::Arc::new(crate::MemoryStore::with_max_entries(1)));
    builder.validate().map(|(_, config)| read(&config, dialect)).unwrap_or_default()
}

/// The effective value of every engine option, as `dialect` spells and measures it. A
/// fingerprint secret is never shown: `"<secret>"` when set.
pub fn read(config: &Config, dialect: Dialect) -> Vec<(String, Value)> {
    let strings = |items: Vec<String>| Value::List(items.into_iter().map(Value::Str).collect());
    let seconds = |d: Duration| Value::Number(d.as_secs_f64() / dialect.unit());
    let count = |n: usize| Value::Number(n as f64);
    let value = |name: &str| match name {
        "methods" => strings(config.methods.iter().map(|m| m.to_string()).collect()),
        "header" => Value::Str(config.header_label.clone()),
        "required" => Value::Bool(config.required),
        "max_key_length" => count(config.key_rules.max_len),
        "strict_key_syntax" => Value::Bool(config.key_rules.strict),
        "max_request_body" => count(config.max_request_body),
        "max_response_body" => count(config.max_response_body),
        "lease_ttl" => seconds(config.lease_ttl),
        "max_lease" => seconds(config.max_lease),
        "ttl" => seconds(config.ttl),
        "replay_headers" => strings(config.replay_headers.iter().map(|h| h.to_string()).collect()),
        "replayed_header" => Value::Str(config.replayed_header_label.clone()),
        "on_store_error" => Value::Str(dialect.name(config.on_store_error.as_str())),
        "persist_timeout" => seconds(config.persist_timeout),
        "retry_after" => seconds(config.retry_after),
        "wait" => seconds(config.wait),
        "max_wait" => seconds(config.max_wait),
        "max_waiters" => count(config.max_waiters),
        "fingerprint_headers" => strings(config.fingerprint_headers.iter().map(|h| h.to_string()).collect()),
        "fingerprint_secret" if config.fingerprint_key.is_keyed() => Value::Str("<secret>".into()),
        "problem_base" => Value::Str(config.problem_base.clone()),
        _ => Value::Null,
    };
    ENGINE.iter().map(|s| (dialect.name(s.name), value(s.name))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryStore;
    use std::sync::Arc;

    fn store() -> Arc<dyn Store> {
        Arc::new(MemoryStore::new())
    }

    fn opts(pairs: &[(&str, Value)]) -> Vec<(String, Value)> {
        pairs.iter().map(|(n, v)| (n.to_string(), v.clone())).collect()
    }

    #[test]
    fn names_are_spelled_per_language() {
        assert_eq!(Dialect::JavaScript.name("max_request_body"), "maxRequestBody");
        assert_eq!(Dialect::JavaScript.name("ttl"), "ttl");
        assert_eq!(Dialect::Python.name("lease_ttl"), "lease_ttl");
    }

    #[test]
    fn unset_options_keep_the_core_defaults_and_read_back() {
        let idem = build(store(), Dialect::JavaScript, opts(&[("leaseTtl", Value::Null)])).unwrap();
        assert_eq!(read(idem.config(), Dialect::JavaScript), defaults(Dialect::JavaScript));
        let read: std::collections::HashMap<_, _> = read(idem.config(), Dialect::JavaScript).into_iter().collect();
        assert_eq!(read["leaseTtl"], Value::Number(60_000.0));
        assert_eq!(read["maxRequestBody"], Value::Number(1_048_576.0));
        assert_eq!(read["onStoreError"], Value::Str("failClosed".into()));
        assert_eq!(read["replayedHeader"], Value::Str("Idempotency-Replayed".into()));
        assert_eq!(read["fingerprintSecret"], Value::Null);
        let py = read_all(Dialect::Python, &[("lease_ttl", Value::Number(2.5))]);
        assert_eq!(py["lease_ttl"], Value::Number(2.5));
    }

    fn read_all(d: Dialect, pairs: &[(&str, Value)]) -> std::collections::HashMap<String, Value> {
        read(build(store(), d, opts(pairs)).unwrap().config(), d).into_iter().collect()
    }

    #[test]
    fn every_option_in_the_table_is_applied_and_read_back() {
        // Set each option to a value unlike its default and see it come back: the table,
        // `apply` and `read` cannot drift apart.
        let set: &[(&str, Value)] = &[
            ("methods", Value::List(vec![Value::Str("PUT".into())])),
            ("header", Value::Str("X-Key".into())),
            ("required", Value::Bool(true)),
            ("max_key_length", Value::Number(9.0)),
            ("strict_key_syntax", Value::Bool(true)),
            ("max_request_body", Value::Number(7.0)),
            ("max_response_body", Value::Number(8.0)),
            ("lease_ttl", Value::Number(5.0)),
            ("max_lease", Value::Number(50.0)),
            ("ttl", Value::Number(6.0)),
            ("replay_headers", Value::List(vec![Value::Str("etag".into())])),
            ("replayed_header", Value::Str("X-Replayed".into())),
            ("on_store_error", Value::Str("fail_open".into())),
            ("persist_timeout", Value::Number(3.0)),
            ("retry_after", Value::Number(4.0)),
            ("wait", Value::Number(2.0)),
            ("max_wait", Value::Number(20.0)),
            ("max_waiters", Value::Number(12.0)),
            ("fingerprint_headers", Value::List(vec![Value::Str("x-a".into())])),
            ("fingerprint_secret", Value::Bytes(b"s".to_vec())),
            ("problem_base", Value::Str("https://e/".into())),
        ];
        assert_eq!(set.len(), ENGINE.len());
        let got = read_all(Dialect::Python, set);
        for (name, value) in set {
            let want = match (*name, value) {
                ("fingerprint_secret", _) => Value::Str("<secret>".into()),
                (_, v) => v.clone(),
            };
            assert_eq!(got[*name], want, "{name}");
        }
    }

    #[test]
    fn bad_names_types_and_ranges_are_errors_in_the_host_spelling() {
        let err = |d: Dialect, pairs: &[(&str, Value)]| build(store(), d, opts(pairs)).unwrap_err().to_string();
        assert!(err(Dialect::JavaScript, &[("leaseTTL", Value::Number(1.0))]).contains("did you mean leaseTtl?"));
        assert!(
            err(Dialect::Python, &[("colour", Value::Bool(true))]).contains("the engine options are methods, header")
        );
        let e = err(Dialect::JavaScript, &[("ttl", Value::Number(1e22))]);
        assert!(
            e.contains("ttl must be a number of milliseconds from 0 to 31622400000, got 10000000000000000000000"),
            "{e}"
        );
        assert!(err(Dialect::Python, &[("ttl", Value::Number(f64::NAN))]).contains("ttl must be a number of seconds"));
        assert!(err(Dialect::Python, &[("lease_ttl", Value::Number(-1.0))]).contains("lease_ttl must be"));
        assert!(
            err(Dialect::JavaScript, &[("maxRequestBody", Value::Number(1.5))])
                .contains("maxRequestBody must be a whole number")
        );
        assert!(err(Dialect::JavaScript, &[("maxKeyLength", Value::Number(-3.0))]).contains("maxKeyLength"));
        assert!(
            err(Dialect::Python, &[("methods", Value::Str("POST".into()))])
                .contains("methods must be a list of strings")
        );
        assert!(err(Dialect::Python, &[("required", Value::Number(1.0))]).contains("required must be true or false"));
        assert!(
            err(Dialect::JavaScript, &[("onStoreError", Value::Str("open".into()))]).contains("onStoreError must be")
        );
        // Errors from the builder's own checks are renamed too.
        let e =
            err(Dialect::JavaScript, &[("leaseTtl", Value::Number(10_000.0)), ("maxLease", Value::Number(5_000.0))]);
        assert!(e.contains("maxLease must be at least leaseTtl"), "{e}");
    }
}
