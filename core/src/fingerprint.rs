//! Request fingerprints (B6) and record identities (B5).
//!
//! Both are hashes of a versioned, length-prefixed encoding, so that no two different
//! inputs can encode to the same bytes (`("ab", "c")` and `("a", "bc")` differ).

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::key::Key;

const FINGERPRINT_VERSION: &[u8] = b"idempo-fp-v1";
const IDENTITY_VERSION: &[u8] = b"idempo-id-v1";

/// SHA-256 (or HMAC-SHA256) of the request's method, path, query, chosen headers and body.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub [u8; 32]);

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({})", &hex(&self.0)[..12])
    }
}

/// The stored identity of a key: a hash of the length-prefixed pair (scope, key).
/// Raw keys never reach a store: stores see only this.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct RecordId(pub [u8; 32]);

impl std::hash::Hash for RecordId {
    // Its first 128 bits: already uniform (a SHA-256 output), and maps compare whole ids.
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        let word = |at: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&self.0[at..at + 8]);
            u64::from_le_bytes(w)
        };
        state.write_u64(word(0));
        state.write_u64(word(8));
    }
}

impl RecordId {
    /// The identity of `key` within `scope` (`None`: the one global namespace).
    pub fn new(scope: Option<&str>, key: &Key) -> RecordId {
        let mut h = Sha256::new();
        h.update(IDENTITY_VERSION);
        match scope {
            // A tag byte keeps "no scope" distinct from an empty scope string.
            None => h.update([0u8]),
            Some(s) => {
                h.update([1u8]);
                h.update((s.len() as u64).to_be_bytes());
                h.update(s.as_bytes());
            }
        }
        h.update((key.as_bytes().len() as u64).to_be_bytes());
        h.update(key.as_bytes());
        RecordId(h.finalize().into())
    }

    /// The identity of `key` for the caller holding `credential`, the SHA-256 of its
    /// `Authorization` (B5's default when no scope is set). Tagged apart from every scope
    /// string, so no scope function can produce the same namespace.
    pub fn of_credential(credential: &[u8; 32], key: &Key) -> RecordId {
        let mut h = Sha256::new();
        h.update(IDENTITY_VERSION);
        h.update([2u8]);
        h.update(credential);
        h.update((key.as_bytes().len() as u64).to_be_bytes());
        h.update(key.as_bytes());
        RecordId(h.finalize().into())
    }

    /// Lower-case hex, for store key names.
    pub fn hex(&self) -> String {
        hex(&self.0)
    }

    /// The id [`RecordId::hex`] wrote (either case), or `None` for anything else.
    pub fn from_hex(hex: &[u8]) -> Option<RecordId> {
        if hex.len() != 64 {
            return None;
        }
        let digit = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
        let mut id = [0u8; 32];
        for (byte, pair) in id.iter_mut().zip(hex.chunks_exact(2)) {
            *byte = digit(pair[0])? << 4 | digit(pair[1])?;
        }
        Some(RecordId(id))
    }
}

impl fmt::Debug for RecordId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RecordId({})", &self.hex()[..12])
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

/// The hashing key of the `fingerprint_secret` option, prepared once.
#[derive(Clone, Default)]
pub struct FingerprintKey(Option<Hmac<Sha256>>);

impl FingerprintKey {
    /// Plain SHA-256 when `secret` is `None`, HMAC-SHA256 otherwise.
    pub fn new(secret: Option<&[u8]>) -> FingerprintKey {
        // HMAC accepts keys of any length, so this cannot fail.
        FingerprintKey(secret.and_then(|s| Hmac::<Sha256>::new_from_slice(s).ok()))
    }

    /// Whether a `fingerprint_secret` is set (HMAC-SHA256).
    pub fn is_keyed(&self) -> bool {
        self.0.is_some()
    }

    /// Start a fingerprint; feed it with [`FingerprintBuilder`]'s methods in order.
    pub fn start(&self, method: &[u8], path: &[u8], query: &[u8]) -> FingerprintBuilder {
        let mut b = FingerprintBuilder(match &self.0 {
            None => Hasher::Plain(Sha256::new()),
            Some(mac) => Hasher::Keyed(Box::new(mac.clone())),
        });
        b.raw(FINGERPRINT_VERSION);
        b.field(method);
        b.field(path);
        b.field(query);
        b
    }
}

impl fmt::Debug for FingerprintKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() { "FingerprintKey(hmac)" } else { "FingerprintKey(sha256)" })
    }
}

enum Hasher {
    Plain(Sha256),
    Keyed(Box<Hmac<Sha256>>),
}

/// An incremental fingerprint: method, path and query are fed at [`FingerprintKey::start`],
/// then each fingerprinted header, then the body.
pub struct FingerprintBuilder(Hasher);

impl FingerprintBuilder {
    fn raw(&mut self, bytes: &[u8]) {
        match &mut self.0 {
            Hasher::Plain(h) => h.update(bytes),
            Hasher::Keyed(h) => h.update(bytes),
        }
    }

    fn field(&mut self, bytes: &[u8]) {
        self.raw(&(bytes.len() as u64).to_be_bytes());
        self.raw(bytes);
    }

    /// One fingerprinted header: its name and all of its values, in order.
    pub fn header<'a>(&mut self, name: &str, values: impl Iterator<Item = &'a [u8]>) {
        self.field(name.as_bytes());
        let values: Vec<&[u8]> = values.collect();
        self.raw(&(values.len() as u64).to_be_bytes());
        for v in values {
            self.field(v);
        }
    }

    /// Feed the body and finish.
    pub fn finish(mut self, body: &[u8]) -> Fingerprint {
        self.field(body);
        Fingerprint(match self.0 {
            Hasher::Plain(h) => h.finalize().into(),
            Hasher::Keyed(h) => h.finalize().into_bytes().into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::{KeyRules, parse_value};

    fn fp(
        key: &FingerprintKey,
        method: &str,
        path: &str,
        query: &str,
        hdrs: &[(&str, &[&str])],
        body: &str,
    ) -> Fingerprint {
        let mut b = key.start(method.as_bytes(), path.as_bytes(), query.as_bytes());
        for (name, values) in hdrs {
            b.header(name, values.iter().map(|v| v.as_bytes()));
        }
        b.finish(body.as_bytes())
    }

    #[test]
    fn b6_every_part_changes_the_fingerprint() {
        let k = FingerprintKey::default();
        let base = fp(&k, "POST", "/a", "x=1", &[("x-a", &["1"])], "body");
        assert_eq!(base, fp(&k, "POST", "/a", "x=1", &[("x-a", &["1"])], "body"));
        assert_ne!(base, fp(&k, "PATCH", "/a", "x=1", &[("x-a", &["1"])], "body"));
        assert_ne!(base, fp(&k, "POST", "/b", "x=1", &[("x-a", &["1"])], "body"));
        assert_ne!(base, fp(&k, "POST", "/a", "x=2", &[("x-a", &["1"])], "body"));
        assert_ne!(base, fp(&k, "POST", "/a", "x=1", &[("x-a", &["2"])], "body"));
        assert_ne!(base, fp(&k, "POST", "/a", "x=1", &[("x-a", &["1", ""])], "body"));
        assert_ne!(base, fp(&k, "POST", "/a", "x=1", &[("x-a", &["1"])], "bodz"));
    }

    #[test]
    fn b6_length_prefixes_prevent_shifting_bytes_between_fields() {
        let k = FingerprintKey::default();
        assert_ne!(fp(&k, "POST", "/ab", "c", &[], ""), fp(&k, "POST", "/a", "bc", &[], ""));
        assert_ne!(fp(&k, "POST", "/a", "", &[], "b"), fp(&k, "POST", "/a", "b", &[], ""));
    }

    #[test]
    fn b6_a_secret_keys_the_hash() {
        let plain = FingerprintKey::default();
        let s1 = FingerprintKey::new(Some(b"one"));
        let s2 = FingerprintKey::new(Some(b"two"));
        let a = fp(&plain, "POST", "/", "", &[], "x");
        let b = fp(&s1, "POST", "/", "", &[], "x");
        assert_ne!(a, b);
        assert_ne!(b, fp(&s2, "POST", "/", "", &[], "x"));
        assert_eq!(b, fp(&s1, "POST", "/", "", &[], "x"));
    }

    #[test]
    fn b5_identity_separates_scopes_and_hides_the_key() {
        let key = parse_value(b"k1", KeyRules::default()).unwrap();
        let global = RecordId::new(None, &key);
        assert_ne!(global, RecordId::new(Some(""), &key));
        assert_ne!(RecordId::new(Some("a"), &key), RecordId::new(Some("b"), &key));
        assert_eq!(global.hex().len(), 64);
        assert!(!global.hex().contains("k1"));
        // Length prefixes: ("ab", "c") and ("a", "bc") must not collide.
        let c = parse_value(b"c", KeyRules::default()).unwrap();
        let bc = parse_value(b"bc", KeyRules::default()).unwrap();
        assert_ne!(RecordId::new(Some("ab"), &c), RecordId::new(Some("a"), &bc));
    }
}
