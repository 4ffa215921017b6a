'use strict'
// Typed errors: every error idempo throws is an IdempoError with a stable `code`.

class IdempoError extends Error {
  constructor (message, code, options) {
    super(message, options)
    this.name = new.target.name
    this.code = code
  }
}

/** An option has a value idempo cannot work with. */
class ConfigurationError extends IdempoError {
  constructor (message, options) { super(message, 'IDEMPO_CONFIG', options) }
}

/** The store (Redis, PostgreSQL) cannot be reached or refused the operation. */
class StoreUnavailableError extends IdempoError {
  constructor (message, options) { super(message, 'IDEMPO_STORE_UNAVAILABLE', options) }
}

/** A native object was used in a state that does not allow it (a finished lease). */
class StateError extends IdempoError {
  constructor (message, options) { super(message, 'IDEMPO_STATE', options) }
}

const byCode = { IDEMPO_CONFIG: ConfigurationError, IDEMPO_STATE: StateError }

/** Turn an error thrown by the native module into its typed class. */
function typed (err) {
  const Class = err && byCode[err.code]
  return Class ? new Class(err.message, { cause: err }) : err
}

module.exports = { IdempoError, ConfigurationError, StoreUnavailableError, StateError, typed }
