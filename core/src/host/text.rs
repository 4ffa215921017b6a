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

/// The request target of a WSGI environ, as `(path, query)`: as the client sent it where
/// the server gives it (`RAW_URI`: gunicorn, werkzeug; `REQUEST_URI`: waitress, uWSGI), so
/// the fingerprint matches every other server's; else rebuilt from the decoded
/// `SCRIPT_NAME`, `PATH_INFO` and `QUERY_STRING`. `get` reads an environ string as bytes
/// (see [`bytes_of`]), `None` when absent.
pub fn environ_target<E>(mut get: impl FnMut(&str) -> Result<Option<Vec<u8>>, E>) -> Result<(Vec<u8>, Vec<u8>), E> {
    let mut raw = get("RAW_URI")?.filter(|t| !t.is_empty());
    if raw.is_none() {
        raw = get("REQUEST_URI")?.filter(|t| !t.is_empty());
    }
    if let Some(target) = raw {
        let (path, query) = crate::target::split_target(&target);
        return Ok((path.to_vec(), query.to_vec()));
    }
    let mut decoded = get("SCRIPT_NAME")?.unwrap_or_default();
    decoded.extend(get("PATH_INFO")?.unwrap_or_default());
    Ok((crate::target::encode_path(&decoded), get("QUERY_STRING")?.unwrap_or_default()))
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
    fn b6_wsgi_target_as_sent_else_rebuilt() {
        let target = |pairs: &[(&str, &str)]| {
            let get = |k: &str| Ok::<_, ()>(pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| bytes_of(v).into_owned()));
            environ_target(get).map(|(p, q)| (String::from_utf8(p).unwrap(), String::from_utf8(q).unwrap()))
        };
        let sent = [("RAW_URI", "/a%2Fb?x=1"), ("PATH_INFO", "/a/b"), ("QUERY_STRING", "x=1")];
        assert_eq!(target(&sent), Ok(("/a%2Fb".to_owned(), "x=1".to_owned())));
        let waitress = [("RAW_URI", ""), ("REQUEST_URI", "/w?y"), ("PATH_INFO", "/other")];
        assert_eq!(target(&waitress), Ok(("/w".to_owned(), "y".to_owned())));
        let decoded = [("SCRIPT_NAME", "/app"), ("PATH_INFO", "/caf\u{e9} x"), ("QUERY_STRING", "q=1")];
        assert_eq!(target(&decoded), Ok(("/app/caf%E9%20x".to_owned(), "q=1".to_owned())));
    }

    #[test]
    fn wsgi_environ_keys() {
        assert_eq!(environ_key(&http::header::CONTENT_LENGTH), "CONTENT_LENGTH");
        assert_eq!(environ_key(&http::HeaderName::from_static("idempotency-key")), "HTTP_IDEMPOTENCY_KEY");
    }
}
