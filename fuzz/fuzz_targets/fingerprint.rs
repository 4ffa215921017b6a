//! The fingerprint encoding (B6): every field is length-prefixed, so moving bytes from one
//! field to the next changes the fingerprint; the same request always gives the same one.
#![no_main]

use idempo::fingerprint::FingerprintKey;
use libfuzzer_sys::fuzz_target;

fn fields(data: &[u8]) -> [&[u8]; 5] {
    let mut parts = data.splitn(5, |&b| b == 0);
    std::array::from_fn(|_| parts.next().unwrap_or(b""))
}

fuzz_target!(|data: &[u8]| {
    let [method, path, query, header, body] = fields(data);
    let key = FingerprintKey::new(None);
    let fingerprint = |path: &[u8], query: &[u8]| {
        let mut b = key.start(method, path, query);
        b.header("content-type", std::iter::once(header));
        b.finish(body)
    };
    let first = fingerprint(path, query);
    assert!(first == fingerprint(path, query), "not deterministic");
    // The same bytes split differently between path and query are another request.
    if let Some((&last, rest)) = path.split_last() {
        let mut moved = vec![last];
        moved.extend_from_slice(query);
        assert!(first != fingerprint(rest, &moved), "path/query boundary not encoded");
    }
});
