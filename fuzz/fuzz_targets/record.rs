//! The record codec (B18) on arbitrary stored bytes: decoding never panics, and whatever
//! decodes encodes to bytes that decode to the same record.
#![no_main]

use idempo::record::Record;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(record) = Record::decode(data) else { return };
    let again = Record::decode(&record.encode()).expect("an encoded record decodes");
    assert_eq!(again, record);
});
