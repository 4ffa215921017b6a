//! The `wait` preference of RFC 7240 (`Prefer: wait=N`), for B20.

/// The seconds a request's `Prefer` header values ask to wait, if they hold a valid
/// `wait` preference. RFC 7240 §2: preferences are a comma-separated list, each a token
/// with an optional `=value` and `;parameters`; names match without regard to case; of a
/// preference given more than once only the first counts; `wait` is delta-seconds. A
/// malformed `wait` is ignored, as an unknown preference is.
pub(crate) fn wait_preference<'a>(values: impl Iterator<Item = &'a [u8]>) -> Option<u64> {
    for line in values {
        for preference in split_outside_quotes(line, b',') {
            let head = split_outside_quotes(preference, b';').next().unwrap_or_default();
            let (name, value) = match head.iter().position(|&b| b == b'=') {
                Some(i) => (trim(&head[..i]), Some(trim(&head[i + 1..]))),
                None => (trim(head), None),
            };
            if !name.eq_ignore_ascii_case(b"wait") {
                continue;
            }
            let value = value.map(|v| v.strip_prefix(b"\"").and_then(|v| v.strip_suffix(b"\"")).unwrap_or(v));
            return value.and_then(delta_seconds);
        }
    }
    None
}

/// RFC 9110 delta-seconds: digits only; a value too large for a number is as good as the
/// largest one (it is capped by `max_wait` anyway).
fn delta_seconds(v: &[u8]) -> Option<u64> {
    if v.is_empty() || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(std::str::from_utf8(v).ok()?.parse().unwrap_or(u64::MAX))
}

fn trim(v: &[u8]) -> &[u8] {
    v.trim_ascii()
}

/// Split at `sep`, except inside a quoted string (where `\` escapes the next byte).
fn split_outside_quotes(v: &[u8], sep: u8) -> impl Iterator<Item = &[u8]> {
    let mut start = 0;
    let mut quoted = false;
    let mut escaped = false;
    let mut cuts = Vec::new();
    for (i, &b) in v.iter().enumerate() {
        match b {
            _ if escaped => escaped = false,
            b'\\' if quoted => escaped = true,
            b'"' => quoted = !quoted,
            _ if b == sep && !quoted => {
                cuts.push(&v[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    cuts.push(&v[start..]);
    cuts.into_iter()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wait(values: &[&str]) -> Option<u64> {
        wait_preference(values.iter().map(|v| v.as_bytes()))
    }

    #[test]
    fn b20_the_first_valid_wait_preference_counts() {
        assert_eq!(wait(&["wait=5"]), Some(5));
        assert_eq!(wait(&["respond-async, WAIT = 7"]), Some(7));
        assert_eq!(wait(&["handling=lenient; x=\"a,wait=9\", wait=3;foo"]), Some(3));
        assert_eq!(wait(&["return=minimal", "wait=2", "wait=8"]), Some(2));
        assert_eq!(wait(&["wait=\"4\""]), Some(4));
        assert_eq!(wait(&["wait=99999999999999999999999"]), Some(u64::MAX));
    }

    #[test]
    fn b20_a_malformed_or_absent_wait_is_no_preference() {
        for bad in ["", "wait", "wait=", "wait=-1", "wait=1.5", "wait=abc", "waiting=3", "respond-async"] {
            assert_eq!(wait(&[bad]), None, "{bad:?}");
        }
        assert_eq!(wait(&[]), None);
    }
}
