//! The typed exceptions, and the one place core errors become Python exceptions.

use idempo::{ConfigError, StoreError};
use pyo3::PyErr;
use pyo3::create_exception;
use pyo3::exceptions::PyException;

create_exception!(_native, IdempoError, PyException, "Base class of every error raised by idempo.");
create_exception!(_native, ConfigurationError, IdempoError, "An option has a value idempo cannot work with.");
create_exception!(_native, StoreUnavailableError, IdempoError, "The store cannot be reached or refused the operation.");
create_exception!(_native, StoreCorruptError, IdempoError, "The store holds an entry idempo cannot decode.");

pub fn store_error(e: StoreError) -> PyErr {
    match e {
        // A record that does not open (B24) is one idempo cannot read, as a corrupt one.
        StoreError::Corrupt(_) | StoreError::Encryption(_) => StoreCorruptError::new_err(e.to_string()),
        StoreError::Unavailable(_) | StoreError::Full => StoreUnavailableError::new_err(e.to_string()),
    }
}

pub fn config_error(e: ConfigError) -> PyErr {
    ConfigurationError::new_err(e.to_string())
}

pub fn config(message: impl Into<String>) -> PyErr {
    ConfigurationError::new_err(message.into())
}

/// This process's runtime (`idempo::host::runtime`), or why it could not start.
pub fn runtime() -> pyo3::PyResult<&'static tokio::runtime::Runtime> {
    idempo::host::runtime::runtime()
        .map_err(|e| pyo3::exceptions::PyRuntimeError::new_err(format!("idempo could not start its I/O runtime: {e}")))
}
