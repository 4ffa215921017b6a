//! Parsing and validating the `Idempotency-Key` header (rules B2–B4).
//!
//! The draft defines the value as an RFC 9651 sf-string (`"abc"`, with `\"` and `\\`
//! escapes). Stripe's clients send bare keys (`abc`), so a bare value is accepted too and
//! denotes the same key as its quoted form, unless strict syntax is asked for.

use std::fmt;

/// A validated idempotency key: 1..=max printable ASCII characters, escapes removed.
#[derive(Clone)]
pub struct Key(Chars);

/// Keys up to this long (UUIDs, ULIDs, Stripe's) are held without a heap allocation.
const INLINE: usize = 64;

#[derive(Clone)]
enum Chars {
    Inline { len: u8, bytes: [u8; INLINE] },
    Heap(Box<str>),
}

impl Key {
    /// A key of printable ASCII characters, already checked.
    fn from_ascii(chars: &[u8]) -> Key {
        if chars.len() <= INLINE {
            let mut bytes = [0u8; INLINE];
            bytes[..chars.len()].copy_from_slice(chars);
            Key(Chars::Inline { len: chars.len() as u8, bytes })
        } else {
            // Checked printable ASCII by the parser, so never lossy.
            Key(Chars::Heap(String::from_utf8_lossy(chars).into()))
        }
    }

    /// The unescaped key's characters (ASCII), without a UTF-8 check.
    pub fn as_bytes(&self) -> &[u8] {
        match &self.0 {
            Chars::Inline { len, bytes } => &bytes[..*len as usize],
            Chars::Heap(s) => s.as_bytes(),
        }
    }

    /// The unescaped key.
    pub fn as_str(&self) -> &str {
        match &self.0 {
            // Only ever filled from printable ASCII (`from_ascii`), so always UTF-8.
            Chars::Inline { len, bytes } => std::str::from_utf8(&bytes[..*len as usize]).unwrap_or_default(),
            Chars::Heap(s) => s,
        }
    }

    /// A form safe for logs: the first few characters and the length, never the whole key.
    /// Nothing is formatted until a log line is written.
    pub fn redacted(&self) -> Redacted {
        let s = self.as_bytes();
        let mut head = [0u8; 4];
        let shown = s.len().min(4);
        head[..shown].copy_from_slice(&s[..shown]);
        Redacted { head, shown: shown as u8, len: s.len() }
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Key) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for Key {}

impl std::hash::Hash for Key {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state)
    }
}

/// A key as logs show it: its first four characters and its length (`abcd…(36)`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Redacted {
    head: [u8; 4],
    shown: u8,
    len: usize,
}

impl fmt::Display for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Keys are printable ASCII, so the head is too.
        let head = std::str::from_utf8(&self.head[..self.shown as usize]).unwrap_or_default();
        write!(f, "{head}…({})", self.len)
    }
}

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Debug for Key {
    // Keys can be secrets (Stripe keys are often UUIDs tied to a customer action):
    // never print one whole by accident.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({})", self.redacted())
    }
}

/// Why a key header was rejected; becomes a 400 `invalid-key` problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyError {
    /// The header line appeared more than once.
    Repeated,
    /// The value is a list (`"a", "b"`) rather than one string.
    List,
    /// The value is empty (`""` or nothing but spaces).
    Empty,
    /// More characters than `max_key_length`.
    TooLong { max: usize },
    /// A character outside printable ASCII (or a bad escape / unterminated string).
    Syntax(&'static str),
    /// A bare (unquoted) key while `strict_key_syntax` is on.
    NotQuoted,
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyError::Repeated => f.write_str("the Idempotency-Key header must appear once"),
            KeyError::List => f.write_str("the Idempotency-Key header must hold one key, not a list"),
            KeyError::Empty => f.write_str("the Idempotency-Key header is empty"),
            KeyError::TooLong { max } => write!(f, "the Idempotency-Key is longer than {max} characters"),
            KeyError::Syntax(why) => write!(f, "the Idempotency-Key is malformed: {why}"),
            KeyError::NotQuoted => {
                f.write_str("the Idempotency-Key must be a quoted string (RFC 9651), for example \"8e03978e\"")
            }
        }
    }
}

impl std::error::Error for KeyError {}

/// Key syntax options (the `max_key_length` and `strict_key_syntax` settings).
#[derive(Debug, Clone, Copy)]
pub struct KeyRules {
    pub max_len: usize,
    pub strict: bool,
}

impl Default for KeyRules {
    fn default() -> Self {
        KeyRules {
            max_len: crate::config::defaults::MAX_KEY_LENGTH,
            strict: crate::config::defaults::STRICT_KEY_SYNTAX,
        }
    }
}

/// Parse the key header from all of its lines. `Ok(None)` means the header is absent.
pub fn parse_key<'a>(mut lines: impl Iterator<Item = &'a [u8]>, rules: KeyRules) -> Result<Option<Key>, KeyError> {
    let Some(first) = lines.next() else { return Ok(None) };
    if lines.next().is_some() {
        return Err(KeyError::Repeated);
    }
    parse_value(first, rules).map(Some)
}

fn is_ows(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

fn trim_ows(mut v: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = v {
        if !is_ows(*first) {
            break;
        }
        v = rest;
    }
    while let [rest @ .., last] = v {
        if !is_ows(*last) {
            break;
        }
        v = rest;
    }
    v
}

/// Parse one header value into a key.
pub fn parse_value(raw: &[u8], rules: KeyRules) -> Result<Key, KeyError> {
    let v = trim_ows(raw);
    let key = if v.first() == Some(&b'"') { parse_sf_string(v)? } else { parse_bare(v, rules)? };
    if key.as_bytes().is_empty() {
        return Err(KeyError::Empty);
    }
    if key.as_bytes().len() > rules.max_len {
        return Err(KeyError::TooLong { max: rules.max_len });
    }
    Ok(key)
}

/// RFC 9651 §4.2.5: a quoted string with `\"` and `\\` escapes over 0x20..=0x7E.
fn parse_sf_string(v: &[u8]) -> Result<Key, KeyError> {
    // Unescaped characters are written over a copy in place: never more than were read.
    let mut out = [0u8; INLINE + 2];
    let mut heap = Vec::new();
    let out: &mut [u8] = if v.len() <= out.len() {
        &mut out[..]
    } else {
        heap.resize(v.len(), 0);
        &mut heap[..]
    };
    let mut n = 0;
    let mut i = 1;
    loop {
        let Some(&c) = v.get(i) else {
            return Err(KeyError::Syntax("unterminated quoted string"));
        };
        i += 1;
        match c {
            b'\\' => match v.get(i) {
                Some(&e @ (b'"' | b'\\')) => {
                    out[n] = e;
                    n += 1;
                    i += 1;
                }
                _ => return Err(KeyError::Syntax("only \\\" and \\\\ may be escaped")),
            },
            b'"' => break,
            0x20..=0x7e => {
                out[n] = c;
                n += 1;
            }
            _ => return Err(KeyError::Syntax("only printable ASCII characters are allowed")),
        }
    }
    let rest = trim_ows(&v[i..]);
    match rest.first() {
        None => Ok(Key::from_ascii(&out[..n])),
        Some(b',') => Err(KeyError::List),
        Some(b';') => Err(KeyError::Syntax("parameters are not supported")),
        Some(_) => Err(KeyError::Syntax("unexpected characters after the closing quote")),
    }
}

/// A bare key, as Stripe clients send it: the characters are the key itself.
fn parse_bare(v: &[u8], rules: KeyRules) -> Result<Key, KeyError> {
    if v.is_empty() {
        return Err(KeyError::Empty);
    }
    if rules.strict {
        return Err(KeyError::NotQuoted);
    }
    for &c in v {
        match c {
            // A comma means a proxy folded several header lines into one: a list.
            b',' => return Err(KeyError::List),
            b'"' => return Err(KeyError::Syntax("a bare key cannot contain a double quote")),
            0x20..=0x7e => {}
            _ => return Err(KeyError::Syntax("only printable ASCII characters are allowed")),
        }
    }
    Ok(Key::from_ascii(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(v: &str) -> Result<Option<Key>, KeyError> {
        parse_key(std::iter::once(v.as_bytes()), KeyRules::default())
    }

    #[test]
    fn b2_quoted_and_bare_denote_the_same_key() {
        assert_eq!(one("\"abc-123\"").unwrap(), one("abc-123").unwrap());
        assert_eq!(one("  \"abc\"\t").unwrap().unwrap().as_str(), "abc");
    }

    #[test]
    fn b2_escapes_are_unescaped() {
        assert_eq!(one(r#""a\"b\\c""#).unwrap().unwrap().as_str(), r#"a"b\c"#);
        assert_eq!(one(r#""a\nb""#), Err(KeyError::Syntax("only \\\" and \\\\ may be escaped")));
    }

    #[test]
    fn b2_strict_syntax_rejects_bare_keys() {
        let strict = KeyRules { strict: true, ..KeyRules::default() };
        assert_eq!(parse_value(b"abc", strict), Err(KeyError::NotQuoted));
        assert_eq!(parse_value(b"\"abc\"", strict).unwrap().as_str(), "abc");
    }

    #[test]
    fn b3_invalid_shapes_are_rejected() {
        assert_eq!(one("\"\""), Err(KeyError::Empty));
        assert_eq!(one("   "), Err(KeyError::Empty));
        assert_eq!(one("\"a\", \"b\""), Err(KeyError::List));
        assert_eq!(one("a,b"), Err(KeyError::List));
        assert!(matches!(one("\"abc"), Err(KeyError::Syntax(_))));
        assert!(matches!(one("\"a\";p=1"), Err(KeyError::Syntax(_))));
        assert!(matches!(one("\"a\" x"), Err(KeyError::Syntax(_))));
        assert!(matches!(one("caf\u{e9}"), Err(KeyError::Syntax(_))));
        assert!(matches!(parse_value(b"a\x01b", KeyRules::default()), Err(KeyError::Syntax(_))));
        assert!(matches!(parse_value(b"\"a\xffb\"", KeyRules::default()), Err(KeyError::Syntax(_))));
    }

    #[test]
    fn b3_length_limit_counts_unescaped_characters() {
        let max = "k".repeat(255);
        assert!(one(&max).is_ok());
        assert_eq!(one(&format!("{max}k")), Err(KeyError::TooLong { max: 255 }));
        // 254 characters plus one escaped quote is 255 once unescaped.
        let escaped = format!("\"{}\\\"\"", "k".repeat(254));
        assert_eq!(one(&escaped).unwrap().unwrap().as_str().len(), 255);
    }

    #[test]
    fn b3_repeated_header_is_rejected() {
        let lines = [b"a".as_slice(), b"a".as_slice()];
        assert_eq!(parse_key(lines.into_iter(), KeyRules::default()), Err(KeyError::Repeated));
    }

    #[test]
    fn b4_absent_header_is_none() {
        assert_eq!(parse_key(std::iter::empty(), KeyRules::default()), Ok(None));
    }

    #[test]
    fn debug_never_prints_the_whole_key() {
        let k = one("secret-key-material").unwrap().unwrap();
        assert_eq!(format!("{k:?}"), "Key(secr…(19))");
        assert_eq!(one("ab").unwrap().unwrap().redacted().to_string(), "ab…(2)");
    }

    #[test]
    fn long_keys_and_escapes_past_the_inline_size() {
        for n in [63, 64, 65, 200, 255] {
            let bare = "k".repeat(n);
            assert_eq!(one(&bare).unwrap().unwrap().as_str(), bare);
            let quoted = format!("\"{}\\\"\"", "k".repeat(n - 1));
            assert_eq!(one(&quoted).unwrap().unwrap().as_str(), format!("{}\"", "k".repeat(n - 1)));
            assert_eq!(one(&quoted).unwrap(), one(&quoted).unwrap());
        }
    }
}
