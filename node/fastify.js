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
const { createEngine, toBuffer } = require('./lib/engine')
const { record } = require('./lib/record')
const { typed } = require('./lib/errors')

const TOO_LARGE = Symbol('too large')

async function idempotencyPlugin (fastify, options) {
  const { engine, scope, storeStatus, covers, headersOf, needsCheck } = createEngine(options)
  fastify.decorate('idempotency', { stats: () => { needsCheck.flush(); return engine.stats() } })

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
    if (!(checked instanceof native.Pending)) return sendReply(reply, checked)
    if (scope) checked.setScope(String(scope(request)))
    const state = { pending: checked, lease: null }
    claim(state, payload, reply).then((body) => {
      if (reply.sent) return
      if (state.lease) record(reply.raw, state.lease, storeStatus)
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

async function claim (state, payload, reply) {
  const body = await readAll(payload, state.pending.bodyLimit)
  if (body === TOO_LARGE) {
    sendReply(reply, state.pending.tooLarge())
    return body
  }
  await begin(state, body, reply)
  return body
}

async function begin (state, body, reply) {
  let decided = state.pending.begin(body)
  if (decided instanceof Promise) decided = await decided
  if (decided === null) return // store failed and onStoreError is failOpen
  if (decided instanceof native.Lease) state.lease = decided
  else sendReply(reply, decided)
}

function sendReply (reply, r) {
  const headers = {}
  for (let i = 0; i + 1 < r.headers.length; i += 2) headers[r.headers[i]] = r.headers[i + 1]
  return reply.code(r.status).headers(headers).send(r.body)
}

async function readAll (stream, limit) {
  const chunks = []
  let size = 0
  for await (const chunk of stream) {
    const buf = toBuffer(chunk)
    size += buf.length
    if (size > limit) {
      stream.resume()
      return TOO_LARGE
    }
    chunks.push(buf)
  }
  return chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, size)
}

module.exports = fp(idempotencyPlugin, { fastify: '>=4', name: 'idempo' })
module.exports.default = module.exports
module.exports.idempotency = module.exports
