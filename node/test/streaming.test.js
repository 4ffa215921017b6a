'use strict'
// B13: the first chunk of a streamed response reaches the client while the handler is
// still producing the rest; the replay is byte-identical.
const { test } = require('node:test')
const assert = require('node:assert/strict')
const { PassThrough } = require('node:stream')
const express = require('express')
const Fastify = require('fastify')
const { MemoryStore } = require('..')
const { idempotency } = require('../express')
const { key } = require('./helpers')

async function firstChunkThenRest (base, k, release) {
  const res = await fetch(base + '/stream', { method: 'POST', headers: { 'idempotency-key': k } })
  const reader = res.body.getReader()
  const first = await Promise.race([reader.read(), new Promise((resolve, reject) => setTimeout(() => reject(new Error('no first chunk')), 5000))])
  assert.equal(Buffer.from(first.value).toString(), 'data: one\n\n')
  // The handler is blocked before its second chunk: the key is in flight.
  const dup = await fetch(base + '/stream', { method: 'POST', headers: { 'idempotency-key': k } })
  assert.equal(dup.status, 409)
  release()
  let rest = ''
  for (;;) {
    const { value, done } = await reader.read()
    if (done) break
    rest += Buffer.from(value).toString()
  }
  const whole = 'data: one\n\n' + rest
  assert.equal(whole, 'data: one\n\ndata: two\n\n')
  const replay = await fetch(base + '/stream', { method: 'POST', headers: { 'idempotency-key': k } })
  assert.equal(replay.headers.get('idempotency-replayed'), 'true')
  assert.equal(await replay.text(), whole)
}

function gate () {
  let open
  const opened = new Promise(resolve => { open = resolve })
  return { opened, open }
}

test('B13: Express streams res.write chunks before the handler finishes', async () => {
  const g = gate()
  let runs = 0
  const app = express()
  app.use(idempotency({ store: new MemoryStore() }))
  app.post('/stream', async (req, res) => {
    runs++
    res.type('text/event-stream')
    res.write('data: one\n\n')
    await g.opened
    res.end('data: two\n\n')
  })
  const server = await new Promise(resolve => { const s = app.listen(0, '127.0.0.1', () => resolve(s)) })
  try {
    await firstChunkThenRest(`http://127.0.0.1:${server.address().port}`, key('express-stream'), g.open)
    assert.equal(runs, 1)
  } finally {
    server.closeAllConnections()
    server.close()
  }
})

test('B13: Fastify streams a reply stream before the handler finishes', async () => {
  const g = gate()
  let runs = 0
  const app = Fastify()
  await app.register(require('../fastify'), { store: new MemoryStore() })
  app.post('/stream', async (req, reply) => {
    runs++
    const out = new PassThrough()
    out.write('data: one\n\n')
    g.opened.then(() => out.end('data: two\n\n'))
    return reply.type('text/event-stream').send(out)
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  try {
    await firstChunkThenRest(`http://127.0.0.1:${app.server.address().port}`, key('fastify-stream'), g.open)
    assert.equal(runs, 1)
  } finally {
    await app.close()
  }
})
