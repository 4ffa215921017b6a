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
const { GONE, claimed, createEngine, drain, headerObject, toBuffer } = require('./lib/engine')
const { record } = require('./lib/record')
const { typed } = require('./lib/errors')

const TOO_LARGE = Symbol('too large')

async function idempotencyPlugin (fastify, options) {
  const { engine, place, verdict, covers, headersOf, needsCheck } = createEngine(options)
  fastify.decorate('idempotency', {
    stats: () => { needsCheck.flush(); return engine.stats() },
    options: () => engine.options()
  })

  // A callback-style hook (cheaper than an async one), returning at once for requests
  // without a key. It runs for every request on the route, with or without a body.
  function idempoPreParsing (request, reply, payload, done) {
    if (!needsCheck(request.headers)) return done(null, payload)
    let checked
    try {
      checked = engine.check(request.raw.method, request.raw.url, headersOf(request.headers))
    } catch (err) {
      return done(typed(err))
    }
    if (checked === null) return done(null, payload)
    if (!(checked instanceof native.Pending)) return refuse(request, reply, checked)
    try {
      place(checked, request)
    } catch (err) {
      return done(typed(err)) // nothing is claimed: a 500 from the error handler
    }
    const state = { pending: checked, lease: null }
    claim(state, payload, request, reply).then((body) => {
      if (body === GONE || reply.sent) return
      if (state.lease) record(reply.raw, state.lease, verdict)
      const replayed = Readable.from(body.length ? [body] : [])
      replayed.receivedEncodedLength = body.length
      done(null, replayed)
    }, done)
  }

  // The hooks go on the routes whose methods are covered only: a GET route pays nothing.
  const add = (list, hook) => (list ? [].concat(list, hook) : [hook])
  fastify.addHook('onRoute', (route) => {
    const methods = [].concat(route.method)
    if (!methods.some(covers)) return
    route.preParsing = add(route.preParsing, idempoPreParsing)
  })
}

async function claim (state, payload, request, reply) {
  const body = await readAll(payload, state.pending.bodyLimit)
  if (body === TOO_LARGE) {
    refuse(request, reply, state.pending.tooLarge())
    return body
  }
  let decided = claimed(state.pending, body, reply.raw)
  if (decided instanceof Promise) decided = await decided
  if (decided === GONE) return GONE // the client left while waiting for the original (B20)
  if (decided instanceof native.Lease) state.lease = decided
  else if (decided !== null) sendReply(reply, decided) // null: the store failed, failOpen
  return body
}

function sendReply (reply, r) {
  return reply.code(r.status).headers(headerObject(r.headers)).send(r.body)
}

/** Answer without running the handler; after a 413, what is left of the body is drained. */
function refuse (request, reply, r) {
  sendReply(reply, r)
  if (r.status === 413) drain(request.raw)
}

/** The whole body, or TOO_LARGE as soon as it passes `limit` (the rest left unread). */
function readAll (stream, limit) {
  return new Promise((resolve, reject) => {
    const chunks = []
    let size = 0
    const done = (settle, value) => {
      stream.off('data', onData)
      stream.off('end', onEnd)
      stream.off('error', onError)
      settle(value)
    }
    const onData = (chunk) => {
      const buf = toBuffer(chunk)
      size += buf.length
      if (size > limit) {
        stream.pause()
        return done(resolve, TOO_LARGE)
      }
      chunks.push(buf)
    }
    const onEnd = () => done(resolve, chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, size))
    const onError = (err) => done(reject, err)
    stream.on('data', onData)
    stream.on('end', onEnd)
    stream.on('error', onError)
  })
}

module.exports = fp(idempotencyPlugin, { fastify: '>=4', name: 'idempo' })
module.exports.default = module.exports
module.exports.idempotency = module.exports
