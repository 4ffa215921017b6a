'use strict'
// B11: a client that goes away never gives its key back. The handler's work stands, so
// the retry replays it (whole, or without its body where the stream was destroyed: B12);
// only an error of the handler or its body releases. Through real Express and Fastify
// servers and real sockets closed by the client.
const { test } = require('node:test')
const assert = require('node:assert/strict')
const net = require('node:net')
const { PassThrough, Readable, pipeline } = require('node:stream')
const express = require('express')
const Fastify = require('fastify')
const { MemoryStore } = require('..')
const { idempotency } = require('../express')
const { key, post } = require('./helpers')

/** Send a keyed POST and destroy the socket: at once, or once the response head arrived. */
function leave (base, path, k, { afterHead = false } = {}) {
  const { port } = new URL(base)
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => {
      socket.write(`POST ${path} HTTP/1.1\r\nHost: t\r\nIdempotency-Key: ${k}\r\nContent-Type: text/plain\r\nContent-Length: 1\r\n\r\nx`)
      if (!afterHead) { socket.destroy(); resolve() }
    })
    let head = ''
    socket.on('data', (d) => {
      head += d.toString('latin1')
      if (afterHead && head.includes('\r\n\r\n')) {
        socket.destroy()
        if (head.startsWith('HTTP/1.1 200')) resolve()
        else reject(new Error(`the response did not start: ${head.slice(0, 60)}`))
      }
    })
    socket.on('error', reject)
  })
}

/** Send again while the key is in flight (409), for up to `seconds`. */
async function past409 (base, path, k, seconds = 5) {
  const deadline = Date.now() + seconds * 1000
  for (;;) {
    const r = await post(base, path, k, 'x')
    if (r.status !== 409 || Date.now() > deadline) return r
    await new Promise(resolve => setTimeout(resolve, 20))
  }
}

function gate () {
  let open
  const opened = new Promise(resolve => { open = resolve })
  return { opened, open }
}

const tick = (ms) => new Promise(resolve => setTimeout(resolve, ms))

async function listen (framework, routes) {
  if (framework === 'express') {
    const app = express()
    app.use(idempotency({ store: new MemoryStore() }))
    routes.express(app)
    const server = await new Promise(resolve => { const s = app.listen(0, '127.0.0.1', () => resolve(s)) })
    return { base: `http://127.0.0.1:${server.address().port}`, close: () => { server.closeAllConnections(); server.close() } }
  }
  const app = Fastify()
  await app.register(require('../fastify'), { store: new MemoryStore() })
  routes.fastify(app)
  await app.listen({ port: 0, host: '127.0.0.1' })
  return { base: `http://127.0.0.1:${app.server.address().port}`, close: () => app.close() }
}

for (const framework of ['express', 'fastify']) {
  test(`B11: 200 clients gone mid-handler each get the one execution replayed [${framework}]`, async () => {
    const n = 200
    const g = gate()
    const runs = new Map()
    const pay = async (k) => {
      runs.set(k, (runs.get(k) || 0) + 1)
      await g.opened
      return `paid:${k}`
    }
    const app = await listen(framework, {
      express: (a) => a.post('/pay', async (req, res) => res.type('text/plain').send(await pay(req.get('idempotency-key')))),
      fastify: (a) => a.post('/pay', async (req, reply) => reply.type('text/plain').send(await pay(req.headers['idempotency-key'])))
    })
    try {
      const keys = Array.from({ length: n }, (_, i) => key(`gone-${i}`))
      await Promise.all(keys.map(k => leave(app.base, '/pay', k)))
      for (let waited = 0; runs.size < n; waited += 10) {
        assert.ok(waited < 10000, `only ${runs.size} of ${n} handlers started`)
        await tick(10)
      }
      await tick(100) // the server has seen every socket close
      assert.equal((await post(app.base, '/pay', keys[0], 'x')).status, 409, 'the key was released while its handler ran')
      g.open()
      for (const k of keys) {
        const r = await past409(app.base, '/pay', k)
        assert.deepEqual([r.status, r.text, r.replayed], [200, `paid:${k}`, true])
      }
      assert.deepEqual([...new Set(runs.values())], [1])
    } finally {
      await app.close()
    }
  })
}

test('B11: Express, a client gone mid-stream: what the handler still writes is recorded', async () => {
  const g = gate()
  let runs = 0
  const app = await listen('express', {
    express: (a) => a.post('/stream', async (req, res) => {
      runs++
      res.type('text/event-stream')
      res.write('data: one\n\n')
      await g.opened
      res.end('data: two\n\n')
    })
  })
  try {
    const k = key('express-stream-gone')
    await leave(app.base, '/stream', k, { afterHead: true })
    await tick(50)
    g.open()
    const r = await past409(app.base, '/stream', k)
    assert.deepEqual([r.status, r.text, r.replayed], [200, 'data: one\n\ndata: two\n\n', true])
    assert.equal(runs, 1)
  } finally {
    app.close()
  }
})

for (const framework of ['express', 'fastify']) {
  test(`B11, B12: a piped stream destroyed when the client left is stored without its body [${framework}]`, async () => {
    let runs = 0
    const events = () => {
      const out = new PassThrough()
      out.write('data: one\n\n') // and nothing more until the client is gone
      if (++runs > 1) out.end() // a wrong second run ends, so the test fails rather than hangs
      return out
    }
    const app = await listen(framework, {
      // pipeline destroys the source once the response closes early (an error there).
      express: (a) => a.post('/stream', (req, res) => { res.type('text/event-stream'); pipeline(events(), res, () => {}) }),
      // Fastify destroys the payload stream itself.
      fastify: (a) => a.post('/stream', async (req, reply) => reply.type('text/event-stream').send(events()))
    })
    try {
      const k = key(`${framework}-piped-gone`)
      await leave(app.base, '/stream', k, { afterHead: true })
      const r = await past409(app.base, '/stream', k)
      assert.deepEqual([r.status, r.text, r.headers.get('idempotency-replay')], [200, '', 'omitted'])
      assert.match(r.headers.get('content-type'), /^text\/event-stream/)
      assert.equal(runs, 1)
    } finally {
      await app.close()
    }
  })

  test(`B11: a piped stream that fails with the client there releases [${framework}]`, async () => {
    let runs = 0
    const failing = () => {
      const first = ++runs === 1
      return Readable.from((async function * () {
        yield 'data: one\n\n'
        await tick(20)
        if (first) throw new Error('the body failed')
        yield 'data: two\n\n'
      })())
    }
    const app = await listen(framework, {
      express: (a) => a.post('/stream', (req, res) => { res.type('text/event-stream'); pipeline(failing(), res, () => {}) }),
      fastify: (a) => {
        a.setErrorHandler((err, req, reply) => reply.code(500).send(err.message))
        a.post('/stream', async (req, reply) => reply.type('text/event-stream').send(failing()))
      }
    })
    try {
      const k = key(`${framework}-piped-fails`)
      await post(app.base, '/stream', k, 'x').catch(() => {}) // the response is cut off
      await tick(50)
      const r = await past409(app.base, '/stream', k)
      assert.deepEqual([r.status, r.text, r.replayed], [200, 'data: one\n\ndata: two\n\n', false])
      assert.equal(runs, 2, 'the key was not released after the body failed')
    } finally {
      await app.close()
    }
  })
}
