'use strict'
// Express middleware: `app.use(idempotency({ store }))`.
//
// For a covered request with a key, the body is buffered (up to maxRequestBody) and put
// back on the request stream, so body parsers mounted after this middleware read it as
// if nothing happened. Mounted after a body parser, the middleware needs the raw bytes
// the parser read: give the parser this module's `verify` hook
// (`express.json({ verify })`); without it a keyed request is refused with a
// ConfigurationError, because fingerprinting a re-serialised body would make different
// requests look the same. The response is recorded by wrapping res.writeHead/res.write/
// res.end (lib/record.js: streaming keeps working) and stored before the final chunk is
// sent, so a client retrying at once finds the replay.
const native = require('./lib/native')
const { GONE, Keyed, createEngine, drain, replyOf } = require('./lib/engine')
const { record } = require('./lib/record')
const { ConfigurationError, typed } = require('./lib/errors')

const TOO_LARGE = Symbol('too large')
const ABORTED = Symbol('aborted')
const RAW_BODY = Symbol('idempo.rawBody')

/**
 * The `verify` hook of Express's body parsers (`express.json({ verify })`, `express.raw`,
 * `express.text`, `express.urlencoded`): keeps the bytes the parser read, for the
 * idempotency middleware mounted after it to fingerprint.
 */
function verify (req, res, buf) {
  req[RAW_BODY] = buf
}

function idempotency (options) {
  const { engine, admit, verdict, covers, needsCheck } = createEngine(options)

  function idempotencyMiddleware (req, res, next) {
    if (!covers(req.method) || !needsCheck(req.headers)) return next()
    let keyed
    try {
      keyed = admit(req.method, req.originalUrl || req.url, req.headers, req)
    } catch (err) {
      return next(typed(err)) // nothing is claimed: a 500 from the app's error handler
    }
    if (keyed === null) return next()
    if (!(keyed instanceof Keyed)) return refuse(req, res, keyed)
    readBody(req, keyed.bodyLimit, (err, body) => {
      if (err === ABORTED) return // the client went away; nothing was claimed
      if (err === TOO_LARGE) return refuse(req, res, keyed.tooLarge())
      if (err instanceof ConfigurationError) return next(err)
      if (err) return sendReply(res, keyed.unreadable(`the request body could not be read: ${err.message}`))
      let decided
      try {
        decided = keyed.begin(body, res)
      } catch (err) {
        return next(typed(err))
      }
      if (decided instanceof Promise) decided.then(proceed, next)
      else proceed(decided)
    })

    function proceed (decided) {
      if (decided === GONE) return // the client left while waiting for the original (B20)
      if (decided === null) return next() // store failed and onStoreError is failOpen
      if (!(decided instanceof native.Lease)) return sendReply(res, decided)
      record(res, decided, verdict)
      next()
    }
  }

  idempotencyMiddleware.stats = () => {
    needsCheck.flush()
    return engine.stats()
  }
  idempotencyMiddleware.options = () => engine.options()
  return idempotencyMiddleware
}

/** Send an engine's reply; its status. */
function sendReply (res, r) {
  const { status, headers, body } = replyOf(r)
  res.writeHead(status, headers)
  res.end(body)
  return status
}

/** Answer without running the handler; after a 413, what is left of the body is drained. */
function refuse (req, res, reply) {
  if (sendReply(res, reply) === 413) drain(req)
}

/**
 * Read the request body without ending the stream for whoever reads next: chunks are
 * pulled with read() until the message is complete, then put back with unshift() before
 * 'end' is emitted. A body parser that ran before leaves its raw bytes through `verify`.
 */
function readBody (req, limit, done) {
  if (req._body === true || req.readableEnded) {
    const raw = req[RAW_BODY]
    if (raw === undefined) {
      return done(new ConfigurationError(
        'idempo: a body parser read this request before the idempotency middleware, so its bytes are gone. ' +
        "Mount idempotency() before the parser, or give the parser idempo's verify hook: " +
        "const { verify } = require('idempo/express'); app.use(express.json({ verify }))"))
    }
    return done(raw.length > limit ? TOO_LARGE : null, raw)
  }
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
      if (size > limit) return finish(TOO_LARGE)
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

module.exports = { idempotency, verify }
module.exports.default = idempotency
