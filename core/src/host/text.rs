//! Header bytes as host languages hold them.
//!
//! WSGI (PEP 3333) and Node hold header values, and Node the request target, as strings
//! whose code points are the bytes on the wire (latin-1). A string with a code point above
//! U+00FF did not come from the wire: its UTF-8 bytes are used, never a replacement
//! character, which would make two different values equal (and so two fingerprints).

use std::borrow::Cow;

/// The bytes a host string stands for.
pub fn bytes_of(s: &str) -> Cow<'_, [u8]> {
    if s.is_ascii() {
        return Cow::Borrowed(s.as_bytes());
    }
    let latin1: Option<Vec<u8>> = s.chars().map(|c| u8::try_from(u32::from(c)).ok()).collect();
    Cow::Owned(latin1.unwrap_or_else(|| s.as_bytes().to_vec()))
}

/// Where WSGI (and CGI) keep a request header in the environ: `CONTENT_LENGTH`,
/// `CONTENT_TYPE`, or `HTTP_` and the name in upper case with `_` for `-`.
pub fn environ_key(name: &http::HeaderName) -> String {
    match name.as_str() {
        "content-length" => "CONTENT_LENGTH".to_owned(),
        "content-type" => "CONTENT_TYPE".to_owned(),
        other => format!("HTTP_{}", other.to_ascii_uppercase().replace('-', "_")),
    }
}

/// The host string for header bytes: one code point per byte.
pub fn string_of(bytes: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(s) if s.is_ascii() => Cow::Borrowed(s),
        _ => Cow::Owned(bytes.iter().map(|&b| char::from(b)).collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn b6_latin1_round_trips_and_wider_text_keeps_its_bytes() {
        assert_eq!(&*bytes_of("abc"), b"abc");
        assert_eq!(&*bytes_of("caf\u{e9}"), b"caf\xe9");
        assert_eq!(&*string_of(b"caf\xe9"), "caf\u{e9}");
        assert_eq!(&*bytes_of(&string_of(&[0, 0x80, 0xff])), [0, 0x80, 0xff]);
        // Two different wide strings stay different.
        assert_eq!(&*bytes_of("\u{2460}"), "\u{2460}".as_bytes());
        assert_ne!(bytes_of("\u{2460}"), bytes_of("\u{2461}"));
    }

    #[test]
    fn wsgi_environ_keys() {
        assert_eq!(environ_key(&http::header::CONTENT_LENGTH), "CONTENT_LENGTH");
        assert_eq!(environ_key(&http::HeaderName::from_static("idempotency-key")), "HTTP_IDEMPOTENCY_KEY");
    }
}
