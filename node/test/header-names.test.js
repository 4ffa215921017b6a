'use strict'
// Header names are data, not object keys: a response header named like a property every
// JavaScript object has (`constructor`, `__proto__`) is replayed as it was sent (B14), when
// replayHeaders names it. Found while reworking replyOf: a replay carried "function Object() { [native
// code] }, c" for `constructor` and lost `__proto__`.
const { test } = require('node:test')
const assert = require('node:assert/strict')
const path = require('node:path')
const { MemoryStore } = require('..')
const { key } = require('./helpers')

const express = require('express')
const Fastify = require('fastify')

// (A computed key: a literal `__proto__: 'p'` would set the prototype, not a property.)
const NAMES = { constructor: 'c', tostring: 't', ['__proto__']: 'p', 'x-plain': 'x' }
const options = () => ({ store: new MemoryStore(), scope: () => 't', replayHeaders: ['content-type', ...Object.keys(NAMES)] })

function setAll (set) {
  for (const name of Object.keys(NAMES)) set(name, NAMES[name])
}

async function expressApp () {
  const app = express()
  app.use(require(path.join(__dirname, '..', 'express')).idempotency(options()))
  app.post('/odd', (req, res) => {
    setAll((n, v) => res.setHeader(n, v))
    res.status(201).type('text/plain').send('odd')
  })
  const server = await new Promise((resolve) => { const s = app.listen(0, '127.0.0.1', () => resolve(s)) })
  return { base: `http://127.0.0.1:${server.address().port}`, close: () => new Promise((resolve) => server.close(resolve)) }
}

async function fastifyApp () {
  const app = Fastify()
  await app.register(require(path.join(__dirname, '..', 'fastify')), options())
  // Fastify keeps reply headers in a plain object of its own, so they go on the raw response.
  app.post('/odd', async (req, reply) => {
    setAll((n, v) => reply.raw.setHeader(n, v))
    return reply.code(201).type('text/plain').send('odd')
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  return { base: `http://127.0.0.1:${app.server.address().port}`, close: () => app.close() }
}

for (const [framework, make] of [['express', expressApp], ['fastify', fastifyApp]]) {
  test(`headers named constructor or __proto__ are replayed as sent (B14) [${framework}]`, async () => {
    const app = await make()
    try {
      const k = key('odd-names')
      const send = () => fetch(app.base + '/odd', { method: 'POST', headers: { 'idempotency-key': k }, body: 'b' })
      const first = await send()
      const again = await send()
      assert.equal(again.headers.get('idempotency-replayed'), 'true')
      for (const r of [first, again]) {
        assert.equal(r.status, 201)
        for (const name of Object.keys(NAMES)) assert.equal(r.headers.get(name), NAMES[name], `${name}: ${r.headers.get(name)}`)
        assert.equal(await r.text(), 'odd')
      }
    } finally {
      await app.close()
    }
  })
}
