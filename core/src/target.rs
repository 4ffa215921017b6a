//! The request target as the client sent it, split into the raw path and query that are
//! fingerprinted (B6). One implementation, so that every integration fingerprints the same
//! request the same way whatever form its server hands over.

#[cfg(feature = "host")]
/// Split a raw request target into path and query (without the `?`). An absolute-form
/// target (`http://host:port/path?q`, what a client talking to a proxy sends) gives the
/// same path and query as its origin-form twin (`/path?q`; `http://host?q` is `/?q`); a
/// fragment, which clients never send, is part of neither.
pub fn split_target(target: &[u8]) -> (&[u8], &[u8]) {
    let (absolute, rest) = match after_authority(target) {
        Some(rest) => (true, rest),
        None => (false, target),
    };
    let rest = match rest.iter().position(|&b| b == b'#') {
        Some(hash) => &rest[..hash],
        None => rest,
    };
    let (path, query) = match rest.iter().position(|&b| b == b'?') {
        Some(q) => (&rest[..q], &rest[q + 1..]),
        None => (rest, &[][..]),
    };
    (if absolute && path.is_empty() { b"/" } else { path }, query)
}

/// The origin form of a raw path that comes without its query (ASGI's `raw_path`):
/// `http://host:port/p` is `/p`, `http://host` is `/`; any other path is returned as it is.
pub fn origin_path(path: &[u8]) -> &[u8] {
    match after_authority(path) {
        Some([]) => b"/",
        Some(rest) => rest,
        None => path,
    }
}

/// What follows `scheme://authority` in an absolute-form target, if it is one.
fn after_authority(target: &[u8]) -> Option<&[u8]> {
    let first = *target.first()?;
    if !first.is_ascii_alphabetic() {
        return None;
    }
    let colon = target.iter().position(|&b| b == b':')?;
    if !target[..colon].iter().all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.')) {
        return None;
    }
    let rest = target[colon + 1..].strip_prefix(b"//")?;
    // The authority ends at the first '/', '?' or '#'.
    let end = rest.iter().position(|&b| matches!(b, b'/' | b'?' | b'#')).unwrap_or(rest.len());
    Some(&rest[end..])
}

/// Characters a WSGI server may have decoded out of a path that stay as they are when it
/// is encoded again; everything else is percent-encoded.
#[cfg(feature = "host")]
const PATH_SAFE: &[u8] = b"/:@!$&'()*+,;=-._~%";

/// Rebuild the raw path from a decoded one (WSGI's `SCRIPT_NAME + PATH_INFO`, as bytes)
/// when the server does not give the raw target: printable ASCII that may appear in a path
/// stays, anything else is percent-encoded, the way clients encode it.
#[cfg(feature = "host")]
pub fn encode_path(decoded: &[u8]) -> Vec<u8> {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = Vec::with_capacity(decoded.len());
    for &b in decoded {
        if b.is_ascii_alphanumeric() || PATH_SAFE.contains(&b) {
            out.push(b);
        } else {
            out.extend_from_slice(&[b'%', HEX[(b >> 4) as usize], HEX[(b & 15) as usize]]);
        }
    }
    out
}

#[cfg(all(test, feature = "host"))]
mod tests {
    use super::*;

    fn split(t: &str) -> (&str, &str) {
        let (p, q) = split_target(t.as_bytes());
        (std::str::from_utf8(p).unwrap(), std::str::from_utf8(q).unwrap())
    }

    #[test]
    fn b6_origin_and_absolute_forms_split_the_same() {
        assert_eq!(split("/echo?a=1&b"), ("/echo", "a=1&b"));
        assert_eq!(split("/echo"), ("/echo", ""));
        assert_eq!(split("/echo?"), ("/echo", ""));
        assert_eq!(split("http://127.0.0.1:8080/echo?a=1"), ("/echo", "a=1"));
        assert_eq!(split("HTTPS://example.com/a/b"), ("/a/b", ""));
        assert_eq!(split("http://example.com"), ("/", ""));
        assert_eq!(split("http://example.com?x=1"), ("/", "x=1"));
        assert_eq!(split("http://user@example.com:1/p?q#frag"), ("/p", "q"));
        assert_eq!(split("/p#frag"), ("/p", ""));
        assert_eq!(split("*"), ("*", ""));
        assert_eq!(split("example.com:443"), ("example.com:443", ""));
        // Only `scheme://` makes an absolute form: a path holding "://" stays a path.
        assert_eq!(split("/redirect?to=http://x/y"), ("/redirect", "to=http://x/y"));
        assert_eq!(origin_path(b"http://h:1/a/b"), b"/a/b");
        assert_eq!(origin_path(b"http://h:1"), b"/");
        assert_eq!(origin_path(b"/a"), b"/a");
    }

    #[test]
    fn b6_decoded_paths_are_encoded_again() {
        assert_eq!(encode_path(b"/a b/\xc3\xa9"), b"/a%20b/%C3%A9");
        assert_eq!(encode_path(b"/ok/-._~:@!$&'()*+,;=%"), b"/ok/-._~:@!$&'()*+,;=%");
    }
}
