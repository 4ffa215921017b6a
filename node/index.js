'use strict'
// idempo: make unsafe HTTP requests safe to retry. The stores and errors are here; the
// middleware is in `idempo/express` and `idempo/fastify`.
const { MemoryStore, RedisStore, PostgresStore } = require('./lib/stores')
const { IdempoError, ConfigurationError, StoreUnavailableError, StateError } = require('./lib/errors')
const { setLogger } = require('./lib/log')

module.exports = {
  MemoryStore,
  RedisStore,
  PostgresStore,
  IdempoError,
  ConfigurationError,
  StoreUnavailableError,
  StateError,
  setLogger
}
