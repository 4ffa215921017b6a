//! RFC 9457 problem responses (B15).
//!
//! Every refusal is `application/problem+json` with `Cache-Control: no-store` and the
//! members `type`, `title`, `status`, `detail` and `code`. `type` is `<base><code>`, a
//! stable URI documented in the README ("Problem types").

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};

/// Every problem the engine answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemCode {
    /// 400: the key header is malformed (B3).
    InvalidKey,
    /// 400: the key is required and absent (B4).
    MissingKey,
    /// 400: the request body could not be read (the client broke off while sending it).
    BodyUnreadable,
    /// 413: the body of a keyed request exceeds `max_request_body` (B7).
    BodyTooLarge,
    /// 409: the first request with this key is still running (B9).
    KeyInUse,
    /// 422: the key was used for a different request (B6).
    FingerprintMismatch,
    /// 503: the store failed and `on_store_error` is fail-closed (B16, B18).
    StoreUnavailable,
}

impl ProblemCode {
    /// The `code` member, and the last segment of the `type` URI.
    pub fn code(self) -> &'static str {
        match self {
            ProblemCode::InvalidKey => "invalid-key",
            ProblemCode::MissingKey => "missing-key",
            ProblemCode::BodyUnreadable => "body-unreadable",
            ProblemCode::BodyTooLarge => "body-too-large",
            ProblemCode::KeyInUse => "key-in-use",
            ProblemCode::FingerprintMismatch => "fingerprint-mismatch",
            ProblemCode::StoreUnavailable => "store-unavailable",
        }
    }

    pub fn status(self) -> StatusCode {
        match self {
            ProblemCode::InvalidKey | ProblemCode::MissingKey | ProblemCode::BodyUnreadable => StatusCode::BAD_REQUEST,
            ProblemCode::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ProblemCode::KeyInUse => StatusCode::CONFLICT,
            ProblemCode::FingerprintMismatch => StatusCode::UNPROCESSABLE_ENTITY,
            ProblemCode::StoreUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// Titles for 400 (missing), 409 and 422 are the IETF draft's own.
    pub fn title(self) -> &'static str {
        match self {
            ProblemCode::InvalidKey => "Idempotency-Key is invalid",
            ProblemCode::MissingKey => "Idempotency-Key is missing",
            ProblemCode::BodyUnreadable => "Request body could not be read",
            ProblemCode::BodyTooLarge => "Request body is too large for an idempotent request",
            ProblemCode::KeyInUse => "A request is outstanding for this Idempotency-Key",
            ProblemCode::FingerprintMismatch => "Idempotency-Key is already used",
            ProblemCode::StoreUnavailable => "Idempotency store is unavailable",
        }
    }
}

/// Build a problem response. `retry_after` adds a `Retry-After` header in whole seconds.
pub fn problem(base: &str, code: ProblemCode, detail: &str, retry_after: Option<Duration>) -> Response<Bytes> {
    let status = code.status();
    let mut body = String::with_capacity(160 + base.len() + detail.len());
    body.push_str("{\"type\":");
    push_json_string(&mut body, &format!("{base}{}", code.code()));
    body.push_str(",\"title\":");
    push_json_string(&mut body, code.title());
    body.push_str(",\"status\":");
    body.push_str(&status.as_u16().to_string());
    body.push_str(",\"detail\":");
    push_json_string(&mut body, detail);
    body.push_str(",\"code\":");
    push_json_string(&mut body, code.code());
    body.push('}');

    let length = body.len();
    let mut res = Response::new(Bytes::from(body));
    *res.status_mut() = status;
    let h = res.headers_mut();
    // Set here so every binding sends the same head, whatever its server would add.
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(after) = retry_after {
        h.insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs(after)));
    }
    res
}

/// Whole seconds, rounded up, at least 1 (B9).
pub fn retry_after_secs(left: Duration) -> u64 {
    let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
    secs.max(1)
}

fn push_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn b15_problem_shape() {
        let res = problem(
            crate::config::defaults::PROBLEM_BASE,
            ProblemCode::KeyInUse,
            "a \"quoted\"\nline",
            Some(Duration::from_millis(1500)),
        );
        assert_eq!(res.status(), StatusCode::CONFLICT);
        assert_eq!(res.headers()["content-type"], "application/problem+json");
        assert_eq!(res.headers()["cache-control"], "no-store");
        assert_eq!(res.headers()["retry-after"], "2");
        let body = std::str::from_utf8(res.body()).unwrap();
        assert_eq!(
            body,
            "{\"type\":\"https://idempo.dev/problems/key-in-use\",\"title\":\"A request is outstanding for this Idempotency-Key\",\"status\":409,\"detail\":\"a \\\"quoted\\\"\\nline\",\"code\":\"key-in-use\"}"
        );
    }

    #[test]
    fn b9_retry_after_is_whole_seconds_at_least_one() {
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(10)), 1);
        assert_eq!(retry_after_secs(Duration::from_secs(3)), 3);
        assert_eq!(retry_after_secs(Duration::from_millis(3001)), 4);
    }
}
