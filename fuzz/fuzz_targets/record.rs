//! The record codec (B18, B24) on arbitrary stored bytes: decoding never panics, whatever
//! decodes encodes to bytes that decode to the same record, and reading them as an
//! encrypting store does (a sealed record's header, key id and tag parsed) never panics.
#![no_main]

use std::sync::OnceLock;

use idempo::EncryptionKeys;
use idempo::encryption::read_record;
use idempo::fingerprint::{Fingerprint, RecordId};
use idempo::record::Record;
use libfuzzer_sys::fuzz_target;

fn keys() -> &'static EncryptionKeys {
    static KEYS: OnceLock<EncryptionKeys> = OnceLock::new();
    KEYS.get_or_init(|| EncryptionKeys::new([("k1", [1u8; 32]), ("k2", [2u8; 32])]).expect("two valid keys"))
}

fuzz_target!(|data: &[u8]| {
    let (id, fp) = (RecordId([3; 32]), Fingerprint([4; 32]));
    let _ = read_record(Some(keys()), &id, &fp, data);
    let Ok(record) = Record::decode(data) else { return };
    let again = Record::decode(&record.encode()).expect("an encoded record decodes");
    assert_eq!(again, record);
});
