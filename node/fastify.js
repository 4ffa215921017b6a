'use strict'
// Fastify plugin: `await fastify.register(require('idempo/fastify'), { store })`.
//
// onRequest checks the head; preParsing buffers the raw body (up to maxRequestBody),
// claims the key and hands the same bytes on to the content-type parsers the application
// registered; onSend records the serialized payload (or wraps a stream so each chunk goes
// out as it comes) and stores it before the end of the response.
const { PassThrough, Readable } = require('node:stream')
const fp = require('fastify-plugin')
const native = require('./lib/native')
const { createEngine, splitTarget, flatHeaders, toBuffer, complete } = require('./lib/engine')
const { typed } = require('./lib/errors')

const STATE = Symbol('idempo.state')
const TOO_LARGE = Symbol('too large')

async function idempotencyPlugin (fastify, options) {
  const { engine, scope, storeStatus } = createEngine(options)
  fastify.decorate('idempotency', { stats: () => engine.stats() })

  fastify.addHook('onRequest', async (request, reply) => {
    const [path, query] = splitTarget(request.raw.url)
    let checked
    try {
      checked = engine.check(request.raw.method, path, query, request.raw.rawHeaders)
    } catch (err) {
      throw typed(err)
    }
    if (checked === null) return
    if (!(checked instanceof native.Pending)) return sendReply(reply, checked)
    if (scope) checked.setScope(String(scope(request)))
    request[STATE] = { pending: checked, lease: null, begun: false }
  })

  fastify.addHook('preParsing', async (request, reply, payload) => {
    const state = request[STATE]
    if (!state || state.begun) return payload
    const body = await readAll(payload, state.pending.bodyLimit)
    if (body === TOO_LARGE) return sendReply(reply, state.pending.tooLarge())
    await begin(state, body, reply)
    if (reply.sent) return
    const replayed = Readable.from(body.length ? [body] : [])
    replayed.receivedEncodedLength = body.length
    return replayed
  })

  // A request without a body never reaches preParsing's reader: claim with an empty body.
  fastify.addHook('preValidation', async (request, reply) => {
    const state = request[STATE]
    if (state && !state.begun) await begin(state, Buffer.alloc(0), reply)
  })

  fastify.addHook('onSend', async (request, reply, payload) => {
    const state = request[STATE]
    const lease = state && state.lease
    if (!lease || !lease.active) return payload
    lease.start(reply.statusCode, flatHeaders(reply.getHeaders()))
    if (payload !== null && typeof payload === 'object' && typeof payload.pipe === 'function') {
      return recordStream(payload, lease, reply.statusCode, storeStatus)
    }
    const buf = toBuffer(payload)
    if (buf) lease.push(buf)
    await complete(lease, reply.statusCode, storeStatus)
    return payload
  })

  // Aborted, or finished without a body that went through onSend: nothing to replay.
  const release = async (request) => {
    const lease = request[STATE] && request[STATE].lease
    if (lease && lease.active) await lease.release()
  }
  fastify.addHook('onResponse', release)
  fastify.addHook('onRequestAbort', release)
}

async function begin (state, body, reply) {
  state.begun = true
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

function recordStream (source, lease, status, storeStatus) {
  const out = new PassThrough({
    transform (chunk, encoding, cb) {
      const buf = toBuffer(chunk, encoding)
      if (buf && lease.active) lease.push(buf)
      cb(null, chunk)
    },
    flush (cb) {
      // The end of the stream waits for the store, so an immediate retry sees the replay.
      Promise.resolve(lease.active ? complete(lease, status, storeStatus) : undefined).then(() => cb(), cb)
    }
  })
  source.on('error', (err) => {
    if (lease.active) lease.release()
    out.destroy(err)
  })
  return source.pipe(out)
}

module.exports = fp(idempotencyPlugin, { fastify: '>=4', name: 'idempo' })
module.exports.default = module.exports
module.exports.idempotency = module.exports
