'use strict'
// The stores. Each holds a native store (idempo::host::store in the Rust core), which
// checks the URL and options and applies the core's defaults.
const native = require('./native')
const { StoreUnavailableError, typed } = require('./errors')

const NATIVE = Symbol('idempo.native')

/** Check the store's URL and options now (a ConfigurationError), then connect. */
async function connect (kind, urls, options) {
  let spec
  try {
    spec = native.NativeStore.spec(kind, urls, options)
  } catch (err) {
    throw typed(err)
  }
  try {
    return await native.NativeStore.connect(spec)
  } catch (err) {
    throw new StoreUnavailableError(err.message, { cause: err })
  }
}

/** An in-process store: one process, no services. */
class MemoryStore {
  constructor (options) {
    try {
      this[NATIVE] = native.NativeStore.memory(options)
    } catch (err) {
      throw typed(err)
    }
  }
}

/** A store in Redis or Redis Cluster. Make one with `await RedisStore.connect(url)`. */
class RedisStore {
  constructor () {
    throw new TypeError('use `await RedisStore.connect(url)` (or RedisStore.cluster(urls))')
  }

  static async connect (url, options) {
    return wrap(await connect('redis', [url], options))
  }

  static async cluster (urls, options) {
    return wrap(await connect('cluster', urls, options))
  }
}

/** A store in PostgreSQL. Make one with `await PostgresStore.connect(url)`. */
class PostgresStore {
  constructor () {
    throw new TypeError('use `await PostgresStore.connect(url)`')
  }

  static async connect (url, options) {
    return wrap(await connect('postgres', [url], options))
  }

  /** Delete expired rows, `batch` at a time; resolves to how many were deleted. */
  async sweep (batch) {
    return this[NATIVE].sweep(batch).catch(e => { throw new StoreUnavailableError(e.message, { cause: e }) })
  }
}

const CLASSES = { memory: MemoryStore, redis: RedisStore, postgres: PostgresStore }

/** The store a URL names (`memory`, `redis://…`, `postgres://…`), with its options. */
async function storeFromUrl (url, options) {
  return wrap(await connect('url', [url], options))
}

function wrap (handle) {
  const store = Object.create(CLASSES[handle.kind].prototype)
  store[NATIVE] = handle
  return store
}

for (const Class of Object.values(CLASSES)) {
  Class.prototype.toString = function () { return this[NATIVE].describe() }
  Class.prototype[Symbol.for('nodejs.util.inspect.custom')] = function () { return this[NATIVE].describe() }
}

module.exports = { MemoryStore, RedisStore, PostgresStore, storeFromUrl, NATIVE }
