'use strict'
// Express middleware: `app.use(idempotency({ store }))`.
//
// For a covered request with a key, the body is buffered (up to maxRequestBody) and put
// back on the request stream, so body parsers mounted after this middleware read it as
// if nothing happened. Mounted after a body parser, the parsed body is used instead
// (exact bytes for express.raw()/express.text(); JSON.stringify of req.body otherwise).
// The response is recorded by wrapping res.writeHead/res.write/res.end (lib/record.js:
// streaming keeps working) and stored before the final chunk is sent, so a client
// retrying at once finds the replay.
const native = require('./lib/native')
const { createEngine } = require('./lib/engine')
const { record } = require('./lib/record')
const { typed } = require('./lib/errors')

const TOO_LARGE = Symbol('too large')
const ABORTED = Symbol('aborted')

function idempotency (options) {
  const { engine, scope, storeStatus, covers, headersOf, needsCheck } = createEngine(options)
  let skipped = 0 // requests whose method is not covered, added to stats().bypassed

  function idempotencyMiddleware (req, res, next) {
    if (!covers(req.method)) {
      skipped++
      return next()
    }
    if (!needsCheck(req.headers)) return next()
    let checked
    try {
      checked = engine.check(req.method, req.originalUrl || req.url, headersOf(req.headers))
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

  idempotencyMiddleware.stats = () => {
    needsCheck.flush()
    const stats = engine.stats()
    stats.bypassed += skipped
    return stats
  }
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

module.exports = { idempotency }
module.exports.default = idempotency
module.exports.idempotency = idempotency
