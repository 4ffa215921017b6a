//! Encryption at rest of stored responses, with key rotation (docs/RULES.md B24).
//!
//! A store that keeps records outside this process (Redis, PostgreSQL) and was given
//! [`EncryptionKeys`] writes every record sealed with the first key, and opens a record
//! with whichever of its keys the record names: keys rotate by putting the new one first
//! and keeping the old ones until `ttl` has passed. Records written in plain text before
//! encryption was turned on are still read, so turning it on needs no migration.
//!
//! The cipher is XAES-256-GCM (C2SP): AES-256-GCM under a key derived per record from the
//! key and the first half of a random 192-bit nonce. Random nonces of that size never
//! collide in practice however many records a key seals, where plain AES-GCM's 96-bit
//! ones reach NIST's limit of 2^32 records per key within days on a busy service. The
//! record id and the fingerprint are associated data, so a sealed record that is altered
//! in the store, or copied to another key's id, does not open: that is a store error
//! (B18), never a replay to the wrong owner and never a re-execution.
//!
//! The derivation is two AES blocks (RustCrypto's `aes`); AES-256-GCM is ring's, in
//! assembly. The tests hold the result to the specification's vectors and its
//! 10 000-message accumulated test.
//!
//! A sealed record: `IDR`, version `2`, the key id's length (one byte) and the key id,
//! the 24-byte nonce, then the plain encoding (`record.rs`, version 1) encrypted, then the
//! 16-byte tag. The associated data is everything before the nonce, the record id and the
//! fingerprint.

use std::fmt;

use aes::Aes256;
use aes::cipher::{BlockCipherEncrypt, KeyInit};
use base64::Engine as _;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use zeroize::Zeroizing;

use crate::config::ConfigError;
use crate::fingerprint::{Fingerprint, RecordId};
use crate::record::{DecodeError, MAGIC, Record};
use crate::store::StoreError;

/// The version byte of a sealed record.
const SEALED_VERSION: u8 = 2;
/// The length of a key, in bytes (256 bits).
pub const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
/// The longest key id. Ids are written into every record and logged when one fails to
/// open, so they are short and plain: letters, digits, `.`, `_` and `-`.
pub const MAX_KEY_ID_LEN: usize = 64;

/// The keys a store encrypts records with: the first seals every record written, each of
/// them opens the records that name it. Its `Debug` output shows the ids, never a key;
/// the keys are wiped from memory when it is dropped.
pub struct EncryptionKeys {
    keys: Vec<Key>,
}

struct Key {
    id: String,
    xaes: Xaes,
}

/// One XAES-256-GCM key: its AES-256 round keys and the subkey K1 of the derivation (both
/// wiped on drop).
struct Xaes {
    block: Aes256,
    k1: Zeroizing<[u8; 16]>,
}

impl Xaes {
    fn new(key: &[u8; KEY_LEN]) -> Xaes {
        let block = Aes256::new(key.into());
        // L = AES(K, 0¹²⁸); K1 is L doubled in GF(2¹²⁸), as CMAC's first subkey.
        let mut l = Zeroizing::new([0u8; 16]);
        block.encrypt_block((&mut *l).into());
        let mut k1 = Zeroizing::new([0u8; 16]);
        for i in 0..16 {
            k1[i] = (l[i] << 1) | l.get(i + 1).map_or(0, |next| next >> 7);
        }
        if l[0] & 0x80 != 0 {
            k1[15] ^= 0x87;
        }
        Xaes { block, k1 }
    }

    /// The AES-256-GCM key and nonce the 24-byte `nonce` comes to: Kx is AES(K, M1 ⊕ K1) ‖
    /// AES(K, M2 ⊕ K1), with Mi = 0, i, 'X', 0, the nonce's first 12 bytes; the nonce is
    /// its last 12.
    fn for_nonce(&self, nonce: &[u8; NONCE_LEN]) -> (LessSafeKey, Nonce) {
        let mut kx = Zeroizing::new([0u8; 32]);
        for (i, half) in kx.chunks_exact_mut(16).enumerate() {
            half[1] = i as u8 + 1;
            half[2] = b'X';
            half[4..].copy_from_slice(&nonce[..12]);
            for (b, k) in half.iter_mut().zip(self.k1.iter()) {
                *b ^= k;
            }
            self.block.encrypt_block(half.try_into().unwrap_or_else(|_| unreachable!("16-byte halves")));
        }
        let mut tail = [0u8; 12];
        tail.copy_from_slice(&nonce[12..]);
        // A 32-byte key is all AES_256_GCM asks for.
        let key = UnboundKey::new(&AES_256_GCM, &kx[..]).map(LessSafeKey::new);
        (key.unwrap_or_else(|_| unreachable!("a 32-byte AES-256 key")), Nonce::assume_unique_for_key(tail))
    }
}

impl fmt::Debug for EncryptionKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncryptionKeys").field("ids", &self.ids().collect::<Vec<_>>()).finish()
    }
}

impl EncryptionKeys {
    /// Keys as `(id, key)` pairs, the one to encrypt with first. Each key is 32 bytes (from
    /// a CSPRNG: `openssl rand -base64 32`); ids are 1 to 64 of `A-Z a-z 0-9 . _ -`, each
    /// once.
    pub fn new<I, S, K>(keys: I) -> Result<EncryptionKeys, ConfigError>
    where
        I: IntoIterator<Item = (S, K)>,
        S: Into<String>,
        K: AsRef<[u8]>,
    {
        let mut out: Vec<Key> = Vec::new();
        for (id, key) in keys {
            let id = id.into();
            check_id(&id)?;
            if out.iter().any(|k| k.id == id) {
                return Err(ConfigError(format!("encryption_keys: the key id {id:?} is given twice")));
            }
            let key = key.as_ref();
            if key.len() != KEY_LEN {
                return Err(ConfigError(format!(
                    "encryption_keys: key {id:?} must be {KEY_LEN} bytes, got {} (make one with `openssl rand -base64 32`)",
                    key.len()
                )));
            }
            let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
            bytes.copy_from_slice(key);
            out.push(Key { id, xaes: Xaes::new(&bytes) });
        }
        if out.is_empty() {
            return Err(ConfigError(
                "encryption_keys holds no key; leave it unset to store records unencrypted".into(),
            ));
        }
        Ok(EncryptionKeys { keys: out })
    }

    /// Keys written as text, `id:base64key` separated by commas (`k2:…,k1:…`), the one to
    /// encrypt with first: the form of an environment variable such as
    /// `IDEMPO_ENCRYPTION_KEYS`. Standard or URL-safe base64, padded or not.
    pub fn parse(text: &str) -> Result<EncryptionKeys, ConfigError> {
        let mut pairs = Vec::new();
        for (n, entry) in text.split(',').enumerate() {
            let entry = entry.trim();
            let Some((id, encoded)) = entry.split_once(':') else {
                return Err(ConfigError(format!(
                    "encryption_keys: entry {} is not id:base64key (write k2:<base64>,k1:<base64>)",
                    n + 1
                )));
            };
            let id = id.trim();
            check_id(id)?;
            let key = decode_base64(encoded.trim()).ok_or_else(|| {
                ConfigError(format!(
                    "encryption_keys: the key of {id:?} is not base64 (make one with `openssl rand -base64 32`)"
                ))
            })?;
            pairs.push((id.to_owned(), key));
        }
        EncryptionKeys::new(pairs)
    }

    /// The key ids, the one that encrypts first.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|k| k.id.as_str())
    }

    /// `record` sealed with the first key, for the record id `id` whose claim was made with
    /// `fingerprint`.
    pub fn seal(&self, id: &RecordId, fingerprint: &Fingerprint, record: &Record) -> Result<Vec<u8>, StoreError> {
        let key = &self.keys[0];
        let head_len = MAGIC.len() + 2 + key.id.len();
        let mut out = Vec::with_capacity(head_len + NONCE_LEN + record.encoded_len() + TAG_LEN);
        out.extend_from_slice(MAGIC);
        out.push(SEALED_VERSION);
        out.push(key.id.len() as u8);
        out.extend_from_slice(key.id.as_bytes());
        let mut nonce = [0u8; NONCE_LEN];
        crate::store::fill_random(&mut nonce).map_err(|_| EncryptionError::NoRandomness)?;
        out.extend_from_slice(&nonce);
        let body_at = out.len();
        record.encode_into(&mut out);
        let aad = Associated::new(&out[..head_len], id, fingerprint);
        let (cipher, nonce) = key.xaes.for_nonce(&nonce);
        let tag = cipher
            .seal_in_place_separate_tag(nonce, Aad::from(aad.bytes()), &mut out[body_at..])
            .map_err(|_| EncryptionError::TooLarge)?;
        out.extend_from_slice(tag.as_ref());
        Ok(out)
    }

    /// A sealed record opened: the one [`EncryptionKeys::seal`] sealed for the same id and
    /// fingerprint, else an error naming the record's key id.
    pub fn open(&self, id: &RecordId, fingerprint: &Fingerprint, bytes: &[u8]) -> Result<Record, StoreError> {
        let sealed = Sealed::parse(bytes)?;
        let Some(key) = self.keys.iter().find(|k| k.id == sealed.key_id) else {
            return Err(EncryptionError::UnknownKey { key_id: sealed.key_id.to_owned() }.into());
        };
        let aad = Associated::new(sealed.head, id, fingerprint);
        let mut in_out = sealed.ciphertext_and_tag.to_vec();
        let (cipher, nonce) = key.xaes.for_nonce(&sealed.nonce);
        let plain_len = cipher
            .open_in_place(nonce, Aad::from(aad.bytes()), &mut in_out)
            .map_err(|_| EncryptionError::DoesNotOpen { key_id: sealed.key_id.to_owned() })?
            .len();
        in_out.truncate(plain_len);
        // The plain bytes are this record's own: its body is a slice of them.
        Ok(Record::decode_owned(in_out.into())?)
    }
}

/// The bytes a store keeps for `record`: sealed with `keys` when it has them, else the plain
/// encoding. A store that keeps records as bytes writes through this.
pub fn write_record(
    keys: Option<&EncryptionKeys>,
    id: &RecordId,
    fingerprint: &Fingerprint,
    record: &Record,
) -> Result<Vec<u8>, StoreError> {
    match keys {
        Some(keys) => keys.seal(id, fingerprint, record),
        None => Ok(record.encode()),
    }
}

/// A stored record read back: sealed ones opened with `keys`, plain ones (written before
/// encryption was turned on, or by a store without it) decoded as they are.
pub fn read_record(
    keys: Option<&EncryptionKeys>,
    id: &RecordId,
    fingerprint: &Fingerprint,
    bytes: &[u8],
) -> Result<Record, StoreError> {
    if !is_sealed(bytes) {
        return Ok(Record::decode(bytes)?);
    }
    match keys {
        Some(keys) => keys.open(id, fingerprint, bytes),
        None => Err(EncryptionError::NoKeys { key_id: Sealed::parse(bytes)?.key_id.to_owned() }.into()),
    }
}

fn is_sealed(bytes: &[u8]) -> bool {
    bytes.len() > MAGIC.len() && bytes.starts_with(MAGIC) && bytes[MAGIC.len()] == SEALED_VERSION
}

/// A sealed record's parts, borrowed from its bytes.
struct Sealed<'a> {
    head: &'a [u8],
    key_id: &'a str,
    nonce: [u8; NONCE_LEN],
    ciphertext_and_tag: &'a [u8],
}

impl<'a> Sealed<'a> {
    fn parse(bytes: &'a [u8]) -> Result<Sealed<'a>, DecodeError> {
        let id_at = MAGIC.len() + 2;
        let id_len = *bytes.get(id_at - 1).ok_or(DecodeError("truncated"))? as usize;
        let nonce_at = id_at + id_len;
        if bytes.len() < nonce_at + NONCE_LEN + TAG_LEN {
            return Err(DecodeError("truncated"));
        }
        let key_id = std::str::from_utf8(&bytes[id_at..nonce_at])
            .ok()
            .filter(|id| check_id(id).is_ok())
            .ok_or(DecodeError("invalid encryption key id"))?;
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&bytes[nonce_at..nonce_at + NONCE_LEN]);
        Ok(Sealed { head: &bytes[..nonce_at], key_id, nonce, ciphertext_and_tag: &bytes[nonce_at + NONCE_LEN..] })
    }
}

/// The associated data of a sealed record, on the stack: its head, the record id and the
/// fingerprint.
struct Associated {
    buf: [u8; MAGIC.len() + 2 + MAX_KEY_ID_LEN + 64],
    len: usize,
}

impl Associated {
    fn new(head: &[u8], id: &RecordId, fingerprint: &Fingerprint) -> Associated {
        let mut buf = [0u8; MAGIC.len() + 2 + MAX_KEY_ID_LEN + 64];
        let mut len = 0;
        for part in [head, &id.0, &fingerprint.0] {
            buf[len..len + part.len()].copy_from_slice(part);
            len += part.len();
        }
        Associated { buf, len }
    }

    fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

fn check_id(id: &str) -> Result<(), ConfigError> {
    let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if id.is_empty() || id.len() > MAX_KEY_ID_LEN || !id.chars().all(plain) {
        return Err(ConfigError(format!(
            "encryption_keys: the key id {id:?} must be 1 to {MAX_KEY_ID_LEN} of A-Z a-z 0-9 . _ -"
        )));
    }
    Ok(())
}

fn decode_base64(text: &str) -> Option<Zeroizing<Vec<u8>>> {
    use base64::alphabet;
    use base64::engine::DecodePaddingMode;
    use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
    let config = GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
    [GeneralPurpose::new(&alphabet::STANDARD, config), GeneralPurpose::new(&alphabet::URL_SAFE, config)]
        .iter()
        .find_map(|engine| engine.decode(text).ok())
        .map(Zeroizing::new)
}

/// Why a record could not be sealed or opened. Every case names the record's key id (never
/// a key), so the log says which key is missing or which record was tampered with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EncryptionError {
    /// The record is sealed with a key this store does not have (a retired key dropped
    /// before `ttl` passed, or a key of another deployment).
    UnknownKey { key_id: String },
    /// The record is sealed and this store has no keys.
    NoKeys { key_id: String },
    /// The record names a key this store has and does not open with it: it was altered in
    /// the store, or copied there from another key's id.
    DoesNotOpen { key_id: String },
    /// The operating system gave no randomness for a nonce.
    NoRandomness,
    /// A record too large for the cipher (beyond 256 GiB; records are capped far below).
    TooLarge,
}

impl fmt::Display for EncryptionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncryptionError::UnknownKey { key_id } => write!(
                f,
                "a record is encrypted with key {key_id:?}, which is not among encryption_keys \
                 (keep a retired key until ttl has passed)"
            ),
            EncryptionError::NoKeys { key_id } => {
                write!(f, "a record is encrypted with key {key_id:?} and this store has no encryption_keys")
            }
            EncryptionError::DoesNotOpen { key_id } => write!(
                f,
                "a record does not open with encryption key {key_id:?}: it was altered in the store \
                 or copied there from another key"
            ),
            EncryptionError::NoRandomness => f.write_str("no randomness from the operating system for a nonce"),
            EncryptionError::TooLarge => f.write_str("a record too large to encrypt"),
        }
    }
}

impl std::error::Error for EncryptionError {}

impl From<EncryptionError> for StoreError {
    fn from(e: EncryptionError) -> Self {
        StoreError::Encryption(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http::{HeaderValue, StatusCode};

    const K1: [u8; 32] = [1; 32];
    const K2: [u8; 32] = [2; 32];

    fn record(body: &[u8]) -> Record {
        Record {
            status: StatusCode::CREATED,
            headers: vec![(http::header::CONTENT_TYPE, HeaderValue::from_static("text/plain"))],
            body: Some(Bytes::copy_from_slice(body)),
        }
    }

    fn ids() -> (RecordId, Fingerprint) {
        (RecordId([7; 32]), Fingerprint([9; 32]))
    }

    #[test]
    fn b24_sealed_records_open_and_hide_the_body() {
        let keys = EncryptionKeys::new([("k1", K1)]).unwrap();
        let (id, fp) = ids();
        let r = record(b"card 4242 marker");
        let sealed = keys.seal(&id, &fp, &r).unwrap();
        assert!(sealed.starts_with(b"IDR\x02\x02k1"));
        assert!(!sealed.windows(6).any(|w| w == b"marker"), "the body is in the sealed bytes");
        assert_eq!(keys.open(&id, &fp, &sealed).unwrap(), r);
        assert_eq!(read_record(Some(&keys), &id, &fp, &sealed).unwrap(), r);
        // Two seals of one record differ (a fresh nonce each).
        assert_ne!(keys.seal(&id, &fp, &r).unwrap(), sealed);
    }

    #[test]
    fn b24_altered_moved_or_foreign_records_do_not_open() {
        let keys = EncryptionKeys::new([("k1", K1)]).unwrap();
        let (id, fp) = ids();
        let sealed = keys.seal(&id, &fp, &record(b"x")).unwrap();
        let does_not_open = |r: Result<Record, StoreError>| matches!(r, Err(StoreError::Encryption(EncryptionError::DoesNotOpen { key_id })) if key_id == "k1");
        for at in 0..sealed.len() {
            let mut altered = sealed.clone();
            altered[at] ^= 1;
            let opened = read_record(Some(&keys), &id, &fp, &altered);
            // Past the key id (IDR, 2, its length, "k1"): the tag check is what refuses it.
            assert!(if at >= 8 { does_not_open(opened) } else { opened.is_err() }, "a change at byte {at} opened");
        }
        assert!(does_not_open(keys.open(&RecordId([8; 32]), &fp, &sealed)), "opened under another id");
        assert!(does_not_open(keys.open(&id, &Fingerprint([8; 32]), &sealed)), "opened with another fingerprint");
        let other = EncryptionKeys::new([("k1", K2)]).unwrap();
        assert!(does_not_open(other.open(&id, &fp, &sealed)), "opened with another key of the same id");
        let err = read_record(None, &id, &fp, &sealed).unwrap_err().to_string();
        assert!(err.contains("encrypted with key \"k1\" and this store has no encryption_keys"), "{err}");
        for cut in 0..sealed.len() {
            assert!(keys.open(&id, &fp, &sealed[..cut]).is_err(), "cut at {cut} opened");
        }
    }

    #[test]
    fn b24_rotation_and_plain_records() {
        let (id, fp) = ids();
        let old = EncryptionKeys::new([("k1", K1)]).unwrap();
        let sealed_k1 = old.seal(&id, &fp, &record(b"a")).unwrap();
        let rotated = EncryptionKeys::parse(&format!("k2:{},k1:{}", b64(&K2), b64(&K1))).unwrap();
        assert_eq!(rotated.ids().collect::<Vec<_>>(), ["k2", "k1"]);
        assert_eq!(rotated.open(&id, &fp, &sealed_k1).unwrap(), record(b"a"));
        assert!(rotated.seal(&id, &fp, &record(b"b")).unwrap().starts_with(b"IDR\x02\x02k2"));
        let retired = EncryptionKeys::new([("k2", K2)]).unwrap();
        let err = retired.open(&id, &fp, &sealed_k1).unwrap_err();
        assert!(err.to_string().contains("encrypted with key \"k1\", which is not among encryption_keys"), "{err}");
        // A record written before encryption was turned on reads as it is.
        let plain = record(b"plain").encode();
        assert_eq!(read_record(Some(&retired), &id, &fp, &plain).unwrap(), record(b"plain"));
        assert_eq!(write_record(None, &id, &fp, &record(b"p")).unwrap(), record(b"p").encode());
    }

    /// XAES-256-GCM `plaintext` under `key` and `nonce`: ciphertext and tag.
    fn xaes_seal(key: &[u8; 32], nonce: &[u8; 24], plaintext: &[u8], aad: &[u8]) -> Vec<u8> {
        let (cipher, nonce) = Xaes::new(key).for_nonce(nonce);
        let mut out = plaintext.to_vec();
        let tag = cipher.seal_in_place_separate_tag(nonce, Aad::from(aad), &mut out).unwrap();
        out.extend_from_slice(tag.as_ref());
        out
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn b24_the_cipher_is_xaes_256_gcm_by_its_vectors() {
        // The two vectors of the specification (c2sp.org/XAES-256-GCM): L's top bit clear,
        // then set (the doubling's two branches), without and with associated data.
        let nonce = *b"ABCDEFGHIJKLMNOPQRSTUVWX";
        let got = xaes_seal(&[1; 32], &nonce, b"XAES-256-GCM", b"");
        assert_eq!(hex(&got), "ce546ef63c9cc60765923609b33a9a1974e96e52daf2fcf7075e2271");
        let got = xaes_seal(&[3; 32], &nonce, b"XAES-256-GCM", b"c2sp.org/XAES-256-GCM");
        assert_eq!(hex(&got), "986ec1832593df5443a179437fd083bf3fdb41abd740a21f71eb769d");
        assert_eq!(hex(&*Xaes::new(&[1; 32]).k1), "e531954aca063d5b8d9c47a47d4cc6f0");
        assert_eq!(hex(&*Xaes::new(&[3; 32]).k1), "23810ec50edb99f374409466ed1f4b7b");
    }

    #[test]
    fn b24_the_cipher_passes_the_specification_s_accumulated_test() {
        // Keys, nonces, plaintexts and associated data from one SHAKE-128 stream, every
        // ciphertext into another: the digest the specification gives for 10 000 messages.
        use sha3::digest::{ExtendableOutput, Update, XofReader};
        let mut source = sha3::Shake128::default().finalize_xof();
        let mut digest = sha3::Shake128::default();
        for _ in 0..10_000 {
            let (mut key, mut nonce, mut len) = ([0u8; 32], [0u8; 24], [0u8; 1]);
            source.read(&mut key);
            source.read(&mut nonce);
            source.read(&mut len);
            let mut plaintext = vec![0u8; len[0] as usize];
            source.read(&mut plaintext);
            source.read(&mut len);
            let mut aad = vec![0u8; len[0] as usize];
            source.read(&mut aad);
            digest.update(&xaes_seal(&key, &nonce, &plaintext, &aad));
        }
        let mut sum = [0u8; 32];
        digest.finalize_xof().read(&mut sum);
        assert_eq!(hex(&sum), "e6b9edf2df6cec60c8cbd864e2211b597fb69a529160cd040d56c0c210081939");
    }

    proptest::proptest! {
        #[test]
        fn b24_arbitrary_and_mutated_records_never_panic(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..128),
            at in 0usize..512,
            byte in proptest::prelude::any::<u8>(),
        ) {
            let keys = EncryptionKeys::new([("k1", K1)]).unwrap();
            let (id, fp) = ids();
            let mut sealed = keys.seal(&id, &fp, &record(&bytes)).unwrap();
            let i = at % sealed.len();
            sealed[i] = byte;
            let _ = read_record(Some(&keys), &id, &fp, &sealed);
            let _ = read_record(None, &id, &fp, &sealed);
            let mut forged = b"IDR\x02".to_vec();
            forged.extend_from_slice(&bytes);
            let _ = read_record(Some(&keys), &id, &fp, &forged);
            let _ = read_record(Some(&keys), &id, &fp, &bytes);
        }
    }

    fn b64(key: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(key)
    }

    #[test]
    fn b24_bad_keys_are_configuration_errors_that_never_show_a_key() {
        let err = |r: Result<EncryptionKeys, ConfigError>| r.unwrap_err().to_string();
        assert!(err(EncryptionKeys::new([("k1", [0u8; 16])])).contains("key \"k1\" must be 32 bytes, got 16"));
        assert!(err(EncryptionKeys::new([("k 1", K1)])).contains("the key id \"k 1\" must be"));
        assert!(err(EncryptionKeys::new([("k1", K1), ("k1", K2)])).contains("given twice"));
        assert!(err(EncryptionKeys::new(Vec::<(String, [u8; 32])>::new())).contains("holds no key"));
        assert!(err(EncryptionKeys::parse("k1")).contains("entry 1 is not id:base64key"));
        let secret = "c2VjcmV0IHRoYXQgaXMgbm90IDMyIGJ5dGVz";
        let e = err(EncryptionKeys::parse(&format!("k1:{secret}")));
        assert!(e.contains("must be 32 bytes") && !e.contains(secret), "{e}");
        let e = err(EncryptionKeys::parse("k1:%%%notbase64"));
        assert!(e.contains("is not base64") && !e.contains("%%%"), "{e}");
        // URL-safe and unpadded forms are accepted.
        let unpadded = b64(&[0xfb; 32]).trim_end_matches('=').replace('+', "-").replace('/', "_");
        assert!(EncryptionKeys::parse(&format!(" k1 : {unpadded} ")).is_ok());
        let keys = EncryptionKeys::new([("k1", [0xab; 32])]).unwrap();
        let shown = format!("{keys:?}");
        assert_eq!(shown, "EncryptionKeys { ids: [\"k1\"] }");
    }
}
