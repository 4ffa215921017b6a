'use strict'
// What the Express middleware and the Fastify plugin share: options in, a native engine
// out, and the small helpers that move bytes between Node and the engine. No rule lives
// here: every decision is the native engine's (idempo::host in the Rust core).
const native = require('./native')
const { MemoryStore, NATIVE } = require('./stores')
const { ConfigurationError, typed } = require('./errors')
require('./log') // idempo's log lines reach the console until setLogger says otherwise

/**
 * `scope: GLOBAL_SCOPE`: one namespace for every caller, whatever its credentials (B5).
 * Only for services whose keys are unique across all callers.
 */
const GLOBAL_SCOPE = Symbol.for('idempo.globalScope')

/** Split options into the native engine's and the user's own functions. */
function createEngine (options = {}) {
  const { store = new MemoryStore(), scope, storeStatus, ...engineOptions } = options
  if (!store || !store[NATIVE]) {
    throw new ConfigurationError('store must be a MemoryStore, RedisStore or PostgresStore')
  }
  if (scope !== undefined && scope !== GLOBAL_SCOPE && typeof scope !== 'function') {
    throw new ConfigurationError('scope must be a function of the request returning a string, or GLOBAL_SCOPE')
  }
  if (storeStatus !== undefined && typeof storeStatus !== 'function') {
    throw new ConfigurationError('storeStatus must be a function of the status code returning a boolean')
  }
  let engine
  try {
    engine = new native.Engine(store[NATIVE], engineOptions)
  } catch (err) {
    throw typed(err)
  }
  const verdict = (status) => verdictOf(storeStatus, status)
  return { engine, admit: admitter(engine, scope), verdict, covers: coverage(engine), needsCheck: keyFilter(engine) }
}

/**
 * Look at the head of a request that carries a key: `null` (pass through), a `Reply`
 * (answer it, nothing is read), or a `Keyed` request whose body to read and claim with.
 * Throws what the engine and the user's scope function throw (nothing is claimed).
 */
function admitter (engine, scope) {
  const headersOf = headerPicker(engine)
  const place = placer(scope)
  const named = typeof scope === 'function'
  const scopeOf = named ? scope : scope === GLOBAL_SCOPE ? () => true : () => undefined
  const bodyLimit = engine.bodyLimit
  const handle = engine.handle
  return (method, url, headers, req) => {
    const picked = headersOf(headers)
    const looked = native.look(handle, method, picked)
    if (typeof looked !== 'boolean') return looked // null or a Reply
    if (looked === false) return new Keyed(handle, method, url, picked, named, scopeOf(req), bodyLimit)
    // It may wait for an in-flight duplicate: a Pending, which can stop the wait (B20).
    const pending = native.check(handle, method, url, picked)
    place(pending, req)
    return new Waiting(pending)
  }
}

/**
 * Put a pending key in its namespace (B5): the scope function's answer (a value that is
 * not a string is refused by the engine), the global one, or, with neither, the core's
 * default (the caller's Authorization). Throws what the scope function throws.
 */
function placer (scope) {
  if (scope === GLOBAL_SCOPE) return (pending) => pending.setGlobalScope()
  if (scope) return (pending, req) => pending.setScope(scope(req))
  return () => {}
}

/** A keyed request that does not wait: claimed in one native call once its body is read. */
class Keyed {
  constructor (handle, method, url, headers, named, scope, bodyLimit) {
    this.handle = handle
    this.method = method
    this.url = url
    this.headers = headers
    this.named = named
    this.scope = scope
    /** The largest body to buffer; past it answer `tooLarge()` (B7). */
    this.bodyLimit = bodyLimit
  }

  /** A `Lease` (run the handler), a `Reply`, `null` (run unprotected), or a Promise of one. */
  begin (body) {
    return native.claim(this.handle, this.method, this.url, this.headers, this.named, this.scope, body)
  }

  /** The 413 reply for a body over `bodyLimit` (B7). */
  tooLarge () {
    return native.check(this.handle, this.method, this.url, this.headers).tooLarge()
  }

  /** The 400 reply for a body that could not be read. */
  unreadable (reason) {
    return native.check(this.handle, this.method, this.url, this.headers).unreadable(reason)
  }
}

/** A keyed request that may wait for an in-flight duplicate (B20), over its `Pending`. */
class Waiting extends Keyed {
  constructor (pending) {
    super(null, null, null, null, false, undefined, pending.bodyLimit)
    this.pending = pending
  }

  /** As `Keyed.begin`, or `GONE` if the client left `res` while waiting. */
  begin (body, res) {
    return claimed(this.pending, body, res)
  }

  tooLarge () { return this.pending.tooLarge() }
  unreadable (reason) { return this.pending.unreadable(reason) }
}

/**
 * What the user's `storeStatus` says of `status`, for the engine: undefined without one,
 * the error's message if it threw (the engine then applies its default and logs it).
 */
function verdictOf (storeStatus, status) {
  if (!storeStatus) return undefined
  try {
    return Boolean(storeStatus(status))
  } catch (err) {
    return String((err && err.message) || err)
  }
}

/**
 * Whether a request must go to the engine at all. The core says (B4, as data) which
 * header a covered request needs for anything to happen; without it the request passes
 * through, counted, with no native call. When keys are required every request is checked.
 */
function keyFilter (engine) {
  const header = engine.passesWithout()
  let skipped = 0
  let flushing = false
  const needsCheck = (headers) => {
    if (header === null || headers[header] !== undefined) return true
    skipped++
    if (!flushing) {
      // Count in batches: one native call per tick, not per request.
      flushing = true
      setImmediate(flush)
    }
    return false
  }
  const flush = () => {
    flushing = false
    if (skipped) engine.countBypassed(skipped)
    skipped = 0
  }
  needsCheck.flush = flush
  return needsCheck
}

/**
 * The values of the request headers the engine reads, in the order it names them
 * (`undefined` where absent), taken from Node's parsed `headers` object: only those few
 * cross into native code. A repeated header arrives joined with ", " and is refused as a
 * list, as a repeated key must be (B3).
 */
function headerPicker (engine) {
  const names = engine.requestHeadersRead()
  return (headers) => {
    const values = new Array(names.length)
    for (let i = 0; i < names.length; i++) values[i] = headers[names[i]]
    return values
  }
}

/**
 * `engine.covers(method)` (B1), remembered per method: the answer is the core's, asked
 * once per method, so a request that is not covered does not cross into native code.
 */
function coverage (engine) {
  const known = new Map()
  return (method) => {
    let covered = known.get(method)
    if (covered === undefined) {
      covered = engine.covers(method)
      known.set(method, covered)
    }
    return covered
  }
}

/**
 * What is left of a refused body (B7): read and thrown away up to the core's DRAIN_LIMIT,
 * so a client still sending reads its 413 rather than a reset; past it, the connection
 * is closed.
 */
function drain (req) {
  if (req.complete || req.destroyed) return
  let left = native.DRAIN_LIMIT
  req.on('data', (chunk) => {
    left -= chunk.length
    if (left < 0) req.socket.destroy()
  })
  req.resume()
}

/**
 * A reply from the engine as `{ status, headers, body }`, `headers` an object for
 * writeHead (a repeated name as an array). The engine sends a reply with a small body as
 * one Latin-1 string, `status NUL count NUL (name NUL value NUL){count} body`
 * (bindings/node/src/convert.rs), one with a larger body as `{ status, headers: [name,
 * value, …], body }`.
 */
function replyOf (r) {
  if (typeof r !== 'string') return { status: r.status, headers: headerObject(r.headers), body: r.body }
  let at = r.indexOf('\0')
  const status = +r.slice(0, at++)
  let next = r.indexOf('\0', at)
  const count = +r.slice(at, next)
  at = next + 1
  const headers = Object.create(null) // a header may be named `constructor` or `__proto__`
  for (let i = 0; i < count; i++) {
    next = r.indexOf('\0', at)
    const name = r.slice(at, next)
    at = next + 1
    next = r.indexOf('\0', at)
    add(headers, name, r.slice(at, next))
    at = next + 1
  }
  return { status, headers, body: Buffer.from(r.slice(at), 'latin1') }
}

/** A reply's `[name, value, …]` as an object for writeHead: repeated names as arrays. */
function headerObject (flat) {
  const headers = Object.create(null)
  for (let i = 0; i + 1 < flat.length; i += 2) add(headers, flat[i], flat[i + 1])
  return headers
}

function add (headers, name, value) {
  const had = headers[name]
  headers[name] = had === undefined ? value : [].concat(had, value)
}

/** Response headers as `[name, value, …]` from `getHeaders()`. */
function flatHeaders (headers) {
  const flat = []
  for (const name of Object.keys(headers)) {
    const value = headers[name]
    if (Array.isArray(value)) {
      for (const v of value) flat.push(name, String(v))
    } else if (value !== undefined) {
      flat.push(name, String(value))
    }
  }
  return flat
}

/** Bytes of a body chunk as Node writes it. */
function toBuffer (chunk, encoding) {
  if (chunk == null) return null
  if (Buffer.isBuffer(chunk)) return chunk
  if (chunk instanceof Uint8Array) return Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength)
  return Buffer.from(String(chunk), typeof encoding === 'string' ? encoding : 'utf8')
}

/** What `claimed` resolves to when the client left while its request waited. */
const GONE = Symbol('client gone')

/**
 * Claim the key: `pending.begin(body)`, a value or a Promise of one. A claim that may wait
 * for an in-flight duplicate (B20) watches `res` (Node's response) meanwhile: if the client
 * leaves, the wait stops and frees its place, and the result is GONE; a key the claim took
 * just then is released, since the handler never runs.
 */
function claimed (pending, body, res) {
  const mayWait = pending.mayWait
  const decided = pending.begin(body)
  if (!(decided instanceof Promise) || !mayWait) return decided
  return new Promise((resolve, reject) => {
    let gone = false
    const onClose = () => {
      gone = true
      pending.leave()
      resolve(GONE)
    }
    res.once('close', onClose)
    decided.then((d) => {
      res.removeListener('close', onClose)
      if (!gone) return resolve(d)
      const released = d instanceof native.Lease ? d.release() : undefined
      if (released instanceof Promise) released.catch(() => {})
    }, (err) => {
      res.removeListener('close', onClose)
      if (!gone) reject(err)
    })
  })
}

module.exports = { GLOBAL_SCOPE, GONE, Keyed, createEngine, drain, replyOf, flatHeaders, toBuffer }
