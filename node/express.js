'use strict'
// Express middleware: `app.use(idempotency({ store }))`.
//
// For a covered request with a key, the body is buffered (up to maxRequestBody) and put
// back on the request stream, so body parsers mounted after this middleware read it as
// if nothing happened. Mounted after a body parser, the parsed body is used instead
// (exact bytes for express.raw()/express.text(); JSON.stringify of req.body otherwise).
// The response is recorded by wrapping res.writeHead/res.write/res.end (streaming keeps
// working: every chunk goes out as it is written) and stored before the final chunk is
// sent, so a client retrying at once finds the replay.
const native = require('./lib/native')
const { createEngine, splitTarget, flatHeaders, toBuffer, complete } = require('./lib/engine')
const { typed } = require('./lib/errors')

const TOO_LARGE = Symbol('too large')
const ABORTED = Symbol('aborted')

function idempotency (options) {
  const { engine, scope, storeStatus } = createEngine(options)

  function idempotencyMiddleware (req, res, next) {
    const [path, query] = splitTarget(req.originalUrl || req.url)
    let checked
    try {
      checked = engine.check(req.method, path, query, req.rawHeaders)
    } catch (err) {
      return next(typed(err))
    }
    if (checked === null) return next()
    if (!(checked instanceof native.Pending)) return sendReply(res, checked)
    const pending = checked
    if (scope) pending.setScope(String(scope(req)))
    readBody(req, pending.bodyLimit, (err, body) => {
      if (err === ABORTED) return // the client went away; nothing was claimed
      if (err === TOO_LARGE) return sendReply(res, pending.tooLarge())
      if (err) return sendReply(res, pending.unreadable(`the request body could not be read: ${err.message}`))
      const decided = pending.begin(body)
      if (decided instanceof Promise) decided.then(proceed, next)
      else proceed(decided)
    })

    function proceed (decided) {
      if (decided === null) return next() // store failed and onStoreError is failOpen
      if (!(decided instanceof native.Lease)) return sendReply(res, decided)
      record(res, decided, storeStatus)
      next()
    }
  }

  idempotencyMiddleware.stats = () => engine.stats()
  return idempotencyMiddleware
}

function sendReply (res, reply) {
  res.writeHead(reply.status, reply.headers)
  res.end(reply.body)
}

/** Bytes of an already-parsed body, for a middleware mounted after a body parser. */
function parsedBody (body) {
  if (body === undefined || body === null) return Buffer.alloc(0)
  if (Buffer.isBuffer(body)) return body
  if (typeof body === 'string') return Buffer.from(body)
  return Buffer.from(JSON.stringify(body))
}

/**
 * Read the request body without ending the stream for whoever reads next: chunks are
 * pulled with read() until the message is complete, then put back with unshift() before
 * 'end' is emitted.
 */
function readBody (req, limit, done) {
  if (req._body === true || req.readableEnded) return done(null, parsedBody(req.body))
  const chunks = []
  let size = 0
  let finished = false
  const finish = (err, body) => {
    if (finished) return
    finished = true
    req.removeListener('readable', onReadable)
    req.removeListener('error', onError)
    req.removeListener('close', onClose)
    done(err, body)
  }
  const onError = (err) => finish(err)
  const onClose = () => { if (!req.complete) finish(ABORTED) }
  function onReadable () {
    let chunk
    while ((chunk = req.read()) !== null) {
      const buf = typeof chunk === 'string' ? Buffer.from(chunk) : chunk
      size += buf.length
      if (size > limit) {
        req.resume() // discard the rest
        return finish(TOO_LARGE)
      }
      chunks.push(buf)
    }
    if (req.complete && req.readableLength === 0) {
      const body = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, size)
      if (body.length > 0) req.unshift(body)
      finish(null, body)
    }
  }
  req.on('readable', onReadable)
  req.on('error', onError)
  req.on('close', onClose)
}

/** Wrap the response so each chunk is kept by the lease as it goes out. */
function record (res, lease, storeStatus) {
  const { writeHead, write, end } = res
  let started = false
  const start = (status, headers) => {
    if (!started) {
      started = true
      lease.start(status, headers)
    }
  }

  res.writeHead = function (statusCode, reason, headers) {
    if (lease.active && !started) {
      const extra = typeof reason === 'string' ? headers : reason
      const merged = { ...this.getHeaders() }
      if (Array.isArray(extra)) {
        const flat = Array.isArray(extra[0]) ? extra.flat() : extra
        for (let i = 0; i + 1 < flat.length; i += 2) merged[String(flat[i]).toLowerCase()] = flat[i + 1]
      } else if (extra) {
        for (const k of Object.keys(extra)) merged[k.toLowerCase()] = extra[k]
      }
      start(statusCode, flatHeaders(merged))
    }
    return writeHead.apply(this, arguments)
  }

  res.write = function (chunk, encoding, cb) {
    if (lease.active) {
      start(this.statusCode, flatHeaders(this.getHeaders()))
      const buf = toBuffer(chunk, encoding)
      if (buf) lease.push(buf)
    }
    return write.apply(this, arguments)
  }

  res.end = function (chunk, encoding, cb) {
    if (!lease.active) return end.apply(this, arguments)
    start(this.statusCode, flatHeaders(this.getHeaders()))
    const buf = typeof chunk === 'function' ? null : toBuffer(chunk, encoding)
    if (buf) lease.push(buf)
    const args = arguments
    const stored = complete(lease, this.statusCode, storeStatus)
    if (stored instanceof Promise) {
      // The final chunk waits for the store, so an immediate retry sees the replay.
      stored.then(() => end.apply(this, args), () => end.apply(this, args))
      return this
    }
    return end.apply(this, args)
  }

  // The client went away before the response was complete: a retry must run again.
  res.on('close', () => {
    if (lease.active) lease.release()
  })
}

module.exports = { idempotency }
module.exports.default = idempotency
module.exports.idempotency = idempotency
