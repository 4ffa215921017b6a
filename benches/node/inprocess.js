'use strict'
// The Node middleware's own cost per request, in-process, memory store:
//  - Express: the middleware function called directly (passthrough: a GET; replay: a
//    keyed POST whose body a parser with idempo's verify hook already read), the bare
//    `next()` call subtracted;
//  - Fastify: `inject` of the same app with and without the plugin, the difference.
//     make bench-node
const path = require('node:path')
const node = path.join(__dirname, '..', '..', 'node')
const { MemoryStore } = require(node)
const { idempotency, verify } = require(path.join(node, 'express'))
const Fastify = require(require.resolve('fastify', { paths: [node] }))

const N = 200000
const ROUNDS = 5

function median (xs) { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)] }

async function perCall (fn, n = N) {
  const rounds = []
  for (let r = 0; r < ROUNDS; r++) {
    const start = process.hrtime.bigint()
    for (let i = 0; i < n; i++) {
      const p = fn(i)
      if (p) await p
    }
    rounds.push(Number(process.hrtime.bigint() - start) / n / 1000)
  }
  return median(rounds)
}

async function perCallOnce (fn, n) {
  const start = process.hrtime.bigint()
  for (let i = 0; i < n; i++) await fn(i)
  return Number(process.hrtime.bigint() - start) / n / 1000
}

function fakeRes () {
  return { statusCode: 200, writeHead () {}, end () {}, getHeaders: () => ({}), on () {} }
}

async function express () {
  const mw = idempotency({ store: new MemoryStore({ maxEntries: 10_000_000, maxEntriesPerScope: 10_000_000, maxBytes: 2 ** 40 }) })
  const rawHeaders = ['Host', 'api.example.com', 'Content-Type', 'application/json', 'Content-Length', '15', 'User-Agent', 'bench', 'Accept', '*/*']
  const headers = { host: 'api.example.com', 'content-type': 'application/json', 'content-length': '15', 'user-agent': 'bench', accept: '*/*' }
  const get = { method: 'GET', url: '/charges', originalUrl: '/charges', rawHeaders, headers }
  const noop = () => {}
  const bare = await perCall(() => noop(get, fakeRes(), noop))
  const passthrough = await perCall(() => mw(get, fakeRes(), noop)) - bare
  const unkeyedReq = { method: 'POST', url: '/charges', originalUrl: '/charges', rawHeaders, headers }
  const passthroughPost = await perCall(() => mw(unkeyedReq, fakeRes(), noop)) - bare
  const body = Buffer.from('{"amount":4200}')
  // As after express.json({ verify }): the parsed body, and the bytes verify kept.
  const keyed = () => {
    const req = { method: 'POST', url: '/charges', originalUrl: '/charges', rawHeaders: [...rawHeaders, 'Idempotency-Key', 'replayed-key'], headers: { ...headers, 'idempotency-key': 'replayed-key' }, _body: true, body }
    verify(req, null, body)
    return req
  }
  // Store the response once, so every later call is a replay.
  await new Promise(resolve => {
    const res = { ...fakeRes(), statusCode: 201, end: resolve }
    mw(keyed(), res, () => res.end('{"id":"ch_1"}'))
  })
  let replays = 0
  const replayRes = { ...fakeRes(), writeHead (status) { if (status === 201) replays++ } }
  const replay = await perCall(() => mw(keyed(), replayRes, noop), N / 4) - bare
  if (replays === 0) throw new Error('replay benchmark did not replay')
  return { passthrough, passthroughPost, replay }
}

async function fastify () {
  const build = async (withPlugin) => {
    const app = Fastify()
    if (withPlugin) await app.register(require(path.join(node, 'fastify')), { store: new MemoryStore({ maxEntries: 10_000_000, maxEntriesPerScope: 10_000_000, maxBytes: 2 ** 40 }) })
    app.get('/charges', async () => ({ ok: true }))
    app.post('/charges', async (req, reply) => reply.code(201).send({ id: 'ch_1' }))
    await app.ready()
    return app
  }
  const bare = await build(false)
  const wrapped = await build(true)
  const get = { method: 'GET', url: '/charges' }
  const post = { method: 'POST', url: '/charges', headers: { 'idempotency-key': 'k', 'content-type': 'application/json' }, payload: '{"amount":4200}' }
  await wrapped.inject(post)
  // inject is noisy: alternate the two apps round by round and compare medians.
  const n = 5000
  const unkeyed = { ...post, headers: { 'content-type': 'application/json' } }
  const times = { bareGet: [], wrappedGet: [], barePost: [], replayPost: [], unkeyedPost: [] }
  for (let round = 0; round < 15; round++) {
    times.bareGet.push(await perCallOnce(() => bare.inject(get), n))
    times.wrappedGet.push(await perCallOnce(() => wrapped.inject(get), n))
    times.barePost.push(await perCallOnce(() => bare.inject(post), n))
    times.replayPost.push(await perCallOnce(() => wrapped.inject(post), n))
    times.unkeyedPost.push(await perCallOnce(() => wrapped.inject(unkeyed), n))
  }
  const [bareGet, wrappedGet, barePost, replayPost, unkeyedPost] = ['bareGet', 'wrappedGet', 'barePost', 'replayPost', 'unkeyedPost'].map(k => median(times[k]))
  return { bareGet, passthrough: wrappedGet - bareGet, barePost, passthroughPost: unkeyedPost - barePost, replay: replayPost - barePost }
}

async function main () {
  const e = await express()
  console.log(`express, middleware called directly: passthrough GET ${e.passthrough.toFixed(2)} µs, POST without a key ${e.passthroughPost.toFixed(2)} µs (budget 2), replay ${e.replay.toFixed(2)} µs (budget 15)`)
  const f = await fastify()
  console.log(`fastify inject: bare GET ${f.bareGet.toFixed(2)} µs, bare POST ${f.barePost.toFixed(2)} µs; plugin cost: passthrough GET ${f.passthrough.toFixed(2)} µs, POST without a key ${f.passthroughPost.toFixed(2)} µs (budget 2), replay ${f.replay.toFixed(2)} µs (budget 15)`)
}

main().catch(err => { console.error(err); process.exit(1) })
