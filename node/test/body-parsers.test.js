'use strict'
// Body parsers keep working whether they run before or after the middleware, and the
// handler gets the body it would have got without idempotency.
const { test } = require('node:test')
const assert = require('node:assert/strict')
const express = require('express')
const Fastify = require('fastify')
const { MemoryStore } = require('..')
const http = require('node:http')
const { idempotency, verify } = require('../express')
const { key, post } = require('./helpers')

async function listen (app) {
  const server = await new Promise(resolve => { const s = app.listen(0, '127.0.0.1', () => resolve(s)) })
  return { base: `http://127.0.0.1:${server.address().port}`, close: () => { server.closeAllConnections(); server.close() } }
}

const PARSERS = [
  ['express.json', (o) => express.json(o), '{"amount": 42}', 'application/json', { amount: 42 }, '{"amount": 43}'],
  ['express.raw', (o) => express.raw({ type: '*/*', ...o }), 'raw \u00e9 bytes', 'application/octet-stream', 'raw \u00e9 bytes', 'raw bytes'],
  ['express.text', (o) => express.text(o), 'plain text', 'text/plain', 'plain text', 'plain text!'],
  ['express.urlencoded', (o) => express.urlencoded({ extended: false, ...o }), 'a=1&b=two', 'application/x-www-form-urlencoded', { a: '1', b: 'two' }, 'a=2&b=two']
]

for (const order of ['parser after the middleware', 'parser before the middleware, with verify']) {
  for (const [name, parser, body, type, expected, changed] of PARSERS) {
    test(`Express: ${name}(), ${order}`, async () => {
      const app = express()
      const mw = idempotency({ store: new MemoryStore() })
      if (order.includes('after')) app.use(mw, parser())
      else app.use(parser({ verify }), mw)
      let runs = 0
      app.post('/pay', (req, res) => {
        runs++
        const seen = Buffer.isBuffer(req.body) ? req.body.toString() : req.body
        res.status(201).json({ seen })
      })
      const { base, close } = await listen(app)
      try {
        const k = key()
        const first = await post(base, '/pay', k, body, { 'content-type': type })
        assert.equal(first.status, 201)
        assert.deepEqual(JSON.parse(first.text).seen, expected)
        const again = await post(base, '/pay', k, body, { 'content-type': type })
        assert.equal(again.replayed, true)
        assert.equal(again.text, first.text)
        assert.equal((await post(base, '/pay', k, changed, { 'content-type': type })).status, 422)
        assert.equal(runs, 1)
      } finally {
        close()
      }
    })
  }
}

/** Express with a JSON parser (and its verify hook, when given) in front of the middleware. */
async function parsedFirst (parserOptions, options = {}) {
  const app = express()
  app.use(express.json({ limit: '10mb', ...parserOptions }), idempotency({ store: new MemoryStore(), ...options }))
  let runs = 0
  app.post('/pay', (req, res) => { runs++; res.status(201).json({ amount: req.body.amount }) })
  app.use((err, req, res, next) => res.status(500).type('text/plain').send(err.message))
  const server = await listen(app)
  return { ...server, runs: () => runs }
}

test('Express after express.json(): bodies that parse alike never share a fingerprint', async () => {
  const app = await parsedFirst({ verify })
  try {
    // Each pair parses to the same JavaScript value (so JSON.stringify is the same), but
    // they are different requests: the second of each pair must not replay the first.
    for (const [a, b] of [
      ['{"amount": 1e19}', '{"amount": 10000000000000000000}'],
      ['{"amount": 12.50000000000000001}', '{"amount": 12.50000000000000000}'],
      ['{"amount": 1, "amount": 2}', '{"amount": 2}']
    ]) {
      const k = key()
      assert.equal((await post(app.base, '/pay', k, a, { 'content-type': 'application/json' })).status, 201)
      const other = await post(app.base, '/pay', k, b, { 'content-type': 'application/json' })
      assert.equal(other.status, 422, `${b} after ${a}: ${other.text}`)
    }
    assert.equal(app.runs(), 3)
  } finally {
    app.close()
  }
})

test('Express after a parser without verify: keyed requests are refused with a ConfigurationError', async () => {
  const app = await parsedFirst({})
  try {
    const keyed = await post(app.base, '/pay', key(), '{"amount": 1}', { 'content-type': 'application/json' })
    assert.equal(keyed.status, 500)
    assert.match(keyed.text, /express\.json\(\{ verify \}\)/, 'the message says how to set it up')
    assert.equal(app.runs(), 0, 'the handler did not run')
    const unkeyed = await post(app.base, '/pay', undefined, '{"amount": 1}', { 'content-type': 'application/json' })
    assert.equal(unkeyed.status, 201, 'requests without a key pass as before')
  } finally {
    app.close()
  }
})

test('Express after express.json(): a chunked body over maxRequestBody gets 413', async () => {
  const app = await parsedFirst({ verify }, { maxRequestBody: 1024 })
  try {
    const big = JSON.stringify({ amount: 1, pad: 'x'.repeat(4096) })
    const res = await new Promise((resolve, reject) => {
      const req = http.request(`${app.base}/pay`, { method: 'POST', headers: { 'content-type': 'application/json', 'idempotency-key': key() } }, (r) => {
        const chunks = []
        r.on('data', c => chunks.push(c))
        r.on('end', () => resolve({ status: r.statusCode, headers: r.headers, text: Buffer.concat(chunks).toString() }))
      })
      req.on('error', reject)
      req.write(big.slice(0, 2000)) // no Content-Length: chunked
      req.end(big.slice(2000))
    })
    assert.equal(res.status, 413, res.text)
    assert.equal(JSON.parse(res.text).code, 'body-too-large')
    assert.equal(app.runs(), 0)
  } finally {
    app.close()
  }
})

test('Fastify: its JSON and text parsers and a custom parser still work', async () => {
  const app = Fastify()
  await app.register(require('../fastify'), { store: new MemoryStore() })
  app.addContentTypeParser('application/x-custom', { parseAs: 'string' }, (req, body, done) => done(null, { custom: body.toUpperCase() }))
  let runs = 0
  app.post('/pay', async (req, reply) => { runs++; return reply.code(201).send({ seen: req.body }) })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const base = `http://127.0.0.1:${app.server.address().port}`
  try {
    for (const [body, type, expected] of [
      ['{"amount": 42}', 'application/json', { amount: 42 }],
      ['plain text', 'text/plain', 'plain text'],
      ['abc', 'application/x-custom', { custom: 'ABC' }]
    ]) {
      const k = key()
      const first = await post(base, '/pay', k, body, { 'content-type': type })
      assert.equal(first.status, 201, first.text)
      assert.deepEqual(JSON.parse(first.text).seen, expected)
      assert.equal((await post(base, '/pay', k, body, { 'content-type': type })).replayed, true)
    }
    assert.equal(runs, 3)
  } finally {
    await app.close()
  }
})

test('Fastify inject works through the plugin', async () => {
  const app = Fastify()
  await app.register(require('../fastify'), { store: new MemoryStore(), required: true })
  app.post('/pay', async (req) => ({ amount: req.body.amount }))
  const k = key()
  const first = await app.inject({ method: 'POST', url: '/pay', headers: { 'idempotency-key': k }, payload: { amount: 7 } })
  const again = await app.inject({ method: 'POST', url: '/pay', headers: { 'idempotency-key': k }, payload: { amount: 7 } })
  assert.equal(first.statusCode, 200)
  assert.equal(again.headers['idempotency-replayed'], 'true')
  assert.equal(again.body, first.body)
  const missing = await app.inject({ method: 'POST', url: '/pay', payload: { amount: 7 } })
  assert.equal(missing.statusCode, 400)
  assert.equal(missing.json().code, 'missing-key')
  await app.close()
})
