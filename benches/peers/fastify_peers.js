'use strict'
// The Fastify peer app for `make bench`: the fixture's /echo, /counter and /reset endpoints
// on idempo's own Fastify, behind @node-idempotency/core (installed by
// benches/peers/install.sh). The library ships no Fastify package, so it is wired in the
// way its core's README describes for any framework: `onRequest` before the handler (here
// a preHandler hook, once Fastify has parsed the JSON body its fingerprint hashes) and
// `onResponse` with the handler's answer before it is sent (a preSerialization hook).
//
//   IDEMPO_STORE=memory|redis://… PORT=… [IDEMPO_BARE=1] [PEER=idempo] node fastify_peers.js
//
// PEER=idempo registers idempo's own plugin on this same app instead, so idempo's ratio
// to bare and the peer's are to one bare app.
// This is the same library as the Express peer (express_peers.js), so a Fastify app's
// ratio to bare can be compared with a peer's on the same framework.
const path = require('node:path')
const root = path.join(__dirname, '..', '..')
const Fastify = require(require.resolve('fastify', { paths: [path.join(root, 'node')] }))
const { nodeIdempotency } = require('./node_idempotency')

async function nodeIdempotencyHooks (store) {
  const { idem, IdempotencyError, statusOf } = await nodeIdempotency(store)
  const PARAMS = Symbol('node-idempotency params')
  return {
    async preHandler (req, reply) {
      const params = { method: req.method, headers: req.headers, path: req.routeOptions.url, body: req.body }
      let cached
      try {
        cached = await idem.onRequest(params)
      } catch (err) {
        if (err instanceof IdempotencyError) return reply.code(statusOf(err)).send({ message: err.message })
        throw err
      }
      if (cached) return reply.code(cached.additional.status).send(cached.body)
      req[PARAMS] = params
    },
    async preSerialization (req, reply, payload) {
      const params = req[PARAMS]
      if (params) await idem.onResponse(params, { body: payload, additional: { status: reply.statusCode } })
      return payload
    }
  }
}

async function main () {
  const store = process.env.IDEMPO_STORE || 'memory'
  const bare = process.env.IDEMPO_BARE === '1'
  let counter = 0
  const app = Fastify()
  // As the fixture app does, so the two bare apps do the same work.
  app.addHook('onSend', async (req, reply) => { reply.header('X-Pid', String(process.pid)) })
  app.get('/counter', async () => ({ count: counter }))
  app.post('/reset', async (req, reply) => { counter = 0; return reply.code(204).send() })
  const ours = process.env.PEER === 'idempo'
  if (!bare && ours) {
    const { storeFromUrl } = require(path.join(root, 'node'))
    await app.register(require(path.join(root, 'node', 'fastify')), { store: await storeFromUrl(store) })
  }
  const hooks = bare || ours ? {} : await nodeIdempotencyHooks(store)
  app.post('/echo', hooks, async (req, reply) => {
    counter++
    return reply.code(201).send(req.body)
  })
  await app.listen({ port: Number(process.env.PORT || 8080), host: '127.0.0.1' })
}

main().catch(err => { console.error(err.message); process.exit(1) })
