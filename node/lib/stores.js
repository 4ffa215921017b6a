'use strict'
const native = require('./native')
const { StoreUnavailableError } = require('./errors')

const NATIVE = Symbol('idempo.native')

function unavailable (err) {
  return new StoreUnavailableError(err.message, { cause: err })
}

/** An in-process store: one process, no services. */
class MemoryStore {
  constructor ({ maxEntries } = {}) {
    this[NATIVE] = native.NativeStore.memory(maxEntries)
  }
}

/** A store in Redis or Redis Cluster. Make one with `await RedisStore.connect(url)`. */
class RedisStore {
  constructor () {
    throw new TypeError('use `await RedisStore.connect(url)` (or RedisStore.cluster(urls))')
  }

  static async connect (url, { prefix } = {}) {
    return wrap(RedisStore, await native.NativeStore.redis(url, prefix).catch(e => { throw unavailable(e) }))
  }

  static async cluster (urls, { prefix } = {}) {
    return wrap(RedisStore, await native.NativeStore.redisCluster(urls, prefix).catch(e => { throw unavailable(e) }))
  }
}

/** A store in PostgreSQL. Make one with `await PostgresStore.connect(url)`. */
class PostgresStore {
  constructor () {
    throw new TypeError('use `await PostgresStore.connect(url)`')
  }

  static async connect (url, { table, migrate } = {}) {
    return wrap(PostgresStore, await native.NativeStore.postgres(url, table, migrate).catch(e => { throw unavailable(e) }))
  }

  /** Delete expired rows, `batch` at a time; resolves to how many were deleted. */
  async sweep (batch) {
    return this[NATIVE].sweep(batch).catch(e => { throw unavailable(e) })
  }
}

function wrap (Class, handle) {
  const store = Object.create(Class.prototype)
  store[NATIVE] = handle
  return store
}

module.exports = { MemoryStore, RedisStore, PostgresStore, NATIVE }
