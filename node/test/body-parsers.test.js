'use strict'
// Body parsers keep working whether they run before or after the middleware, and the
// handler gets the body it would have got without idempotency.
const { test } = require('node:test')
const assert = require('node:assert/strict')
const express = require('express')
const Fastify = require('fastify')
const { MemoryStore } = require('..')
const { idempotency } = require('../express')
const { key, post } = require('./helpers')

async function listen (app) {
  const server = await new Promise(resolve => { const s = app.listen(0, '127.0.0.1', () => resolve(s)) })
  return { base: `http://127.0.0.1:${server.address().port}`, close: () => { server.closeAllConnections(); server.close() } }
}

for (const order of ['parser after the middleware', 'parser before the middleware']) {
  // A parser that ran first leaves the parsed body: its canonical form is fingerprinted,
  // so the changed body must change the content, not only the bytes.
  for (const [name, parser, body, type, expected, changed] of [
    ['express.json()', express.json(), '{"amount": 42}', 'application/json', { amount: 42 }, '{"amount": 43}'],
    ['express.raw()', express.raw({ type: '*/*' }), 'raw \u00e9 bytes', 'application/octet-stream', 'raw \u00e9 bytes', 'raw bytes'],
    ['express.text()', express.text(), 'plain text', 'text/plain', 'plain text', 'plain text!'],
    ['express.urlencoded()', express.urlencoded({ extended: false }), 'a=1&b=two', 'application/x-www-form-urlencoded', { a: '1', b: 'two' }, 'a=2&b=two']
  ]) {
    test(`Express: ${name}, ${order}`, async () => {
      const app = express()
      const mw = idempotency({ store: new MemoryStore() })
      if (order.includes('after')) app.use(mw, parser)
      else app.use(parser, mw)
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
