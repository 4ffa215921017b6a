'use strict'
// Fastify plugin: `await fastify.register(require('idempo/fastify'), { store })`.
//
// One preParsing hook, added only to the routes whose method is covered: it checks the
// head, buffers the raw body (up to maxRequestBody), claims the key and hands the same
// bytes on to the content-type parsers the application registered. The response is
// recorded on reply.raw as it is written (lib/record.js, shared with Express) and stored
// before its end.
const { Readable } = require('node:stream')
const fp = require('fastify-plugin')
const native = require('./lib/native')
const { GONE, Keyed, createEngine, drain, replyOf, toBuffer } = require('./lib/engine')
const { record } = require('./lib/record')
const { typed } = require('./lib/errors')

const TOO_LARGE = Symbol('too large')

async function idempotencyPlugin (fastify, options) {
  const { engine, admit, verdict, covers, needsCheck } = createEngine(options)
  fastify.decorate('idempotency', {
    stats: () => { needsCheck.flush(); return engine.stats() },
    options: () => engine.options()
  })

  // A callback-style hook (cheaper than an async one), returning at once for requests
  // without a key. It runs for every request on the route, with or without a body.
  function idempoPreParsing (request, reply, payload, done) {
    if (!needsCheck(request.headers)) return done(null, payload)
    let keyed
    try {
      keyed = admit(request.raw.method, request.raw.url, request.headers, request)
    } catch (err) {
      return done(typed(err)) // nothing is claimed: a 500 from the error handler
    }
    if (keyed === null) return done(null, payload)
    if (!(keyed instanceof Keyed)) return refuse(request, reply, keyed)
    readAll(payload, keyed.bodyLimit, (err, body) => {
      if (err) return done(err)
      if (body === TOO_LARGE) return refuse(request, reply, keyed.tooLarge())
      let decided
      try {
        decided = keyed.begin(body, reply.raw)
      } catch (err) {
        return done(typed(err))
      }
      if (decided instanceof Promise) decided.then((d) => proceed(d, body), done)
      else proceed(decided, body)
    })

    function proceed (decided, body) {
      if (decided === GONE || reply.sent) return // the client left while waiting for the original (B20)
      if (decided instanceof native.Lease) record(reply.raw, decided, verdict)
      else if (decided !== null) return sendReply(reply, decided) // null: the store failed, failOpen
      done(null, bodyStream(body))
    }
  }

  // The hooks go on the routes whose methods are covered only: a GET route pays nothing.
  const add = (list, hook) => (list ? [].concat(list, hook) : [hook])
  fastify.addHook('onRoute', (route) => {
    const methods = [].concat(route.method)
    if (!methods.some(covers)) return
    route.preParsing = add(route.preParsing, idempoPreParsing)
  })
}

/**
 * The bytes read, as the stream the content-type parsers read: pushed at once (a stream
 * made by `Readable.from` goes through an async iterator, a microtask a read).
 */
function bodyStream (body) {
  const stream = new Readable({ read () {} })
  if (body.length) stream.push(body)
  stream.push(null)
  stream.receivedEncodedLength = body.length
  return stream
}

/** Send an engine's reply; its status. */
function sendReply (reply, r) {
  const { status, headers, body } = replyOf(r)
  for (const name of Object.keys(headers)) {
    // Fastify keeps reply headers in a plain object, where `__proto__` cannot be a key:
    // that one goes on the raw response, which Fastify's writeHead merges.
    if (name === '__proto__') reply.raw.setHeader(name, headers[name])
    else reply.header(name, headers[name])
  }
  reply.code(status).send(body)
  return status
}

/** Answer without running the handler; after a 413, what is left of the body is drained. */
function refuse (request, reply, r) {
  if (sendReply(reply, r) === 413) drain(request.raw)
}

/** `cb(null, body)` with the whole body, or TOO_LARGE as soon as it passes `limit` (the rest left unread). */
function readAll (stream, limit, cb) {
  const chunks = []
  let size = 0
  const done = (err, value) => {
    stream.off('data', onData)
    stream.off('end', onEnd)
    stream.off('error', onError)
    cb(err, value)
  }
  const onData = (chunk) => {
    const buf = toBuffer(chunk)
    size += buf.length
    if (size > limit) {
      stream.pause()
      return done(null, TOO_LARGE)
    }
    chunks.push(buf)
  }
  const onEnd = () => done(null, chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, size))
  const onError = (err) => done(err)
  stream.on('data', onData)
  stream.on('end', onEnd)
  stream.on('error', onError)
}

module.exports = fp(idempotencyPlugin, { fastify: '>=4', name: 'idempo' })
module.exports.default = module.exports
module.exports.idempotency = module.exports
