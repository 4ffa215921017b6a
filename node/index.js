'use strict'
// idempo: make unsafe HTTP requests safe to retry. The stores and errors are here; the
// middleware is in `idempo/express` and `idempo/fastify`.
const { MemoryStore, RedisStore, PostgresStore, storeFromUrl } = require('./lib/stores')
const native = require('./lib/native')
const { IdempoError, ConfigurationError, StoreUnavailableError, StateError } = require('./lib/errors')
const { setLogger } = require('./lib/log')
const { GLOBAL_SCOPE } = require('./lib/engine')

module.exports = {
  MemoryStore,
  RedisStore,
  PostgresStore,
  storeFromUrl,
  GLOBAL_SCOPE,
  /** The counter names of `stats()`, from the core. */
  COUNTERS: Object.freeze(native.counters()),
  /** The core's default of every option (durations in ms), as `options()` reports them. */
  defaults: () => native.defaults(),
  IdempoError,
  ConfigurationError,
  StoreUnavailableError,
  StateError,
  setLogger
}
