//! The one place core errors become JavaScript errors (store errors surface as problem
//! responses, or, at connection time, see store.rs). Each carries a `code`; the package's
//! `errors.js` turns it into a typed `Error` subclass.

use idempo::ConfigError;

/// The `code` of a thrown error.
pub const CONFIG: &str = "IDEMPO_CONFIG";
pub const STATE: &str = "IDEMPO_STATE";

pub type Error = napi::Error<&'static str>;
pub type Result<T> = std::result::Result<T, Error>;

pub fn config_error(e: ConfigError) -> Error {
    Error::new(CONFIG, e)
}

pub fn config(message: impl ToString) -> Error {
    Error::new(CONFIG, message)
}

pub fn state(message: impl ToString) -> Error {
    Error::new(STATE, message)
}

/// A napi failure (a value of the wrong type from JavaScript) as a configuration error.
pub fn napi(e: napi::Error) -> Error {
    Error::new(CONFIG, e.reason)
}
