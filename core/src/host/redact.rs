//! Connection strings without their secrets (B22): what every repr, Debug output, error and
//! log line shows of a store URL.
//!
//! A URL's password (user-info) and its `password`/`sslpassword` query parameters are
//! replaced by `***`. A string that does not parse as a URL is not shown at all: it may be
//! a keyword/value connection string (`host=… password=…`) or a URL mistyped around its
//! secret. Errors from the client libraries are scrubbed of the same secrets, in case one
//! ever echoes its connection string.

use std::borrow::Cow;

/// Query parameters that hold a secret (PostgreSQL's `password` and `sslpassword`).
const SECRET_PARAMS: &[&str] = &["password", "sslpassword"];

/// What is shown of a URL that does not parse.
pub const UNPARSABLE: &str = "<unparsable URL>";

fn is_secret_param(name: &str) -> bool {
    SECRET_PARAMS.iter().any(|p| p.eq_ignore_ascii_case(name))
}

/// `url` with its password and secret parameters replaced by `***`.
pub fn redact_url(url: &str) -> String {
    let Ok(mut parsed) = url::Url::parse(url) else { return UNPARSABLE.to_owned() };
    if parsed.password().is_some() && parsed.set_password(Some("***")).is_err() {
        return UNPARSABLE.to_owned();
    }
    if parsed.query_pairs().any(|(name, _)| is_secret_param(&name)) {
        let pairs: Vec<(String, String)> = parsed
            .query_pairs()
            .map(|(name, value)| {
                let value = if is_secret_param(&name) { "***".to_owned() } else { value.into_owned() };
                (name.into_owned(), value)
            })
            .collect();
        parsed.query_pairs_mut().clear().extend_pairs(pairs);
    }
    parsed.into()
}

/// The secrets of some URLs, to scrub from text a library produced about them.
#[derive(Clone, Default)]
pub struct Secrets(Vec<String>);

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secrets({} held)", self.0.len())
    }
}

impl Secrets {
    pub fn of<'a>(urls: impl IntoIterator<Item = &'a str>) -> Secrets {
        let mut secrets = Vec::new();
        for url in urls {
            let Ok(parsed) = url::Url::parse(url) else { continue };
            if let Some(password) = parsed.password() {
                secrets.push(password.to_owned());
                secrets.extend(decoded(password));
            }
            for (name, value) in parsed.query_pairs() {
                if is_secret_param(&name) {
                    secrets.push(value.into_owned());
                }
            }
        }
        // Longest first, so a secret containing another is replaced whole; too short a
        // string would blank out ordinary words, and cannot be told from them anyway.
        secrets.retain(|s| s.len() >= 3);
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        Secrets(secrets)
    }

    /// `text` with every secret replaced by `***`.
    pub fn scrub<'t>(&self, text: &'t str) -> Cow<'t, str> {
        let mut out = Cow::Borrowed(text);
        for secret in &self.0 {
            if out.contains(secret.as_str()) {
                out = Cow::Owned(out.replace(secret.as_str(), "***"));
            }
        }
        out
    }
}

/// A percent-encoded password as it is once decoded, when that differs.
fn decoded(s: &str) -> Option<String> {
    if !s.contains('%') {
        return None;
    }
    percent_encoding::percent_decode_str(s).decode_utf8().ok().map(|d| d.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn b22_urls_are_redacted() {
        assert_eq!(redact_url("postgres://app:s3cret@db:5432/x"), "postgres://app:***@db:5432/x");
        assert_eq!(redact_url("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
        assert_eq!(redact_url("postgres://app@db/x"), "postgres://app@db/x");
        assert_eq!(redact_url("redis://:pw@h:1"), "redis://:***@h:1");
        assert_eq!(
            redact_url("postgres://app@db/x?sslmode=verify-full&password=s3cret&SSLPassword=k3y"),
            "postgres://app@db/x?sslmode=verify-full&password=***&SSLPassword=***"
        );
        assert_eq!(redact_url("postgres://u:p%40ss@h/x"), "postgres://u:***@h/x");
        assert_eq!(redact_url("host=db password=s3cret"), UNPARSABLE);
        assert_eq!(redact_url("postgres://u:pw@[bad/x"), UNPARSABLE);
    }

    #[test]
    fn b22_library_text_is_scrubbed_of_the_secrets() {
        let secrets = Secrets::of(["postgres://u:p%40ss@h/x?sslpassword=k3y-secret", "redis://:pw@h"]);
        assert_eq!(
            secrets.scrub("could not connect to postgres://u:p%40ss@h/x (p@ss) with k3y-secret"),
            "could not connect to postgres://u:***@h/x (***) with ***"
        );
        assert_eq!(secrets.scrub("nothing here"), "nothing here");
        assert_eq!(format!("{secrets:?}"), "Secrets(3 held)");
    }
}
