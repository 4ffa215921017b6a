//! Key parsing (B2, B3) on arbitrary header lines: never a panic; an accepted key is
//! non-empty, within the length limit, printable ASCII, and parses back to itself from
//! its quoted (RFC 9651 sf-string) form.
#![no_main]

use idempo::key::{KeyRules, parse_key, parse_value};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (strict, lines) = match data.split_first() {
        Some((flag, rest)) => (flag & 1 == 1, rest),
        None => (false, data),
    };
    let rules = KeyRules { max_len: 64, strict };
    // Each line is one header line; several lines are a repeated header.
    let Ok(Some(key)) = parse_key(lines.split(|&b| b == b'\n'), rules) else { return };
    let text = key.as_str();
    assert!(!text.is_empty() && text.len() <= rules.max_len, "accepted {text:?}");
    assert!(text.bytes().all(|b| (0x20..=0x7e).contains(&b)), "accepted a non-printable key {text:?}");
    let quoted = format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""));
    let again = parse_value(quoted.as_bytes(), rules).expect("a key's quoted form parses");
    assert_eq!(again.as_str(), text);
});
