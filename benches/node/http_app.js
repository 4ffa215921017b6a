'use strict'
// One app for the loopback load test: APP=express|fastify, WRAPPED=1 adds idempotency
// (memory store). GET / and POST / answer a small JSON body. For profiling Express,
// WRAPPED=noop adds an empty middleware, WRAPPED=load only loads idempo, WRAPPED=covers
// makes one native call per request (engine.covers), WRAPPED=check one native check.
const path = require('node:path')
const node = path.join(__dirname, '..', '..', 'node')
const { MemoryStore } = require(node)
const wrapped = process.env.WRAPPED === '1'
const noop = process.env.WRAPPED === 'noop'
const port = Number(process.env.PORT)

async function main () {
  if (process.env.APP === 'express') {
    const express = require(require.resolve('express', { paths: [node] }))
    const app = express()
    if (wrapped) app.use(require(path.join(node, 'express')).idempotency({ store: new MemoryStore() }))
    if (noop) app.use((req, res, next) => next())
    if (process.env.WRAPPED === 'load') { require(path.join(node, 'express')); app.use((req, res, next) => next()) }
    if (process.env.WRAPPED === 'covers') {
      const native = require(path.join(node, 'lib', 'native'))
      const { NATIVE } = require(path.join(node, 'lib', 'stores'))
      const engine = new native.Engine(new MemoryStore()[NATIVE])
      app.use((req, res, next) => { engine.covers(req.method); next() })
    }
    if (process.env.WRAPPED === 'check') {
      const { idempotency } = require(path.join(node, 'express'))
      const native = require(path.join(node, 'lib', 'native'))
      const { NATIVE } = require(path.join(node, 'lib', 'stores'))
      const { handle } = new native.Engine(new MemoryStore()[NATIVE])
      app.use((req, res, next) => { native.check(handle, req.method, req.url, []); next() })
      void idempotency
    }
    app.get('/', (req, res) => res.json({ ok: true }))
    app.post('/', (req, res) => res.json({ ok: true }))
    app.listen(port, '127.0.0.1')
  } else {
    const app = require(require.resolve('fastify', { paths: [node] }))()
    if (wrapped) await app.register(require(path.join(node, 'fastify')), { store: new MemoryStore() })
    app.get('/', async () => ({ ok: true }))
    app.post('/', async () => ({ ok: true }))
    await app.listen({ port, host: '127.0.0.1' })
  }
}
main()
