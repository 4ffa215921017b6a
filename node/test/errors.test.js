'use strict'
// Bad input and broken stores: typed errors with a `code`, problem responses at request
// time, never an unhandled rejection or a crash.
const { test, after } = require('node:test')
const assert = require('node:assert/strict')
const net = require('node:net')
const http = require('node:http')
const { spawn } = require('node:child_process')
const express = require('express')
const { MemoryStore, RedisStore, PostgresStore, IdempoError, ConfigurationError, StoreUnavailableError, setLogger } = require('..')
const { idempotency } = require('../express')
const { key, post } = require('./helpers')

const unhandled = []
process.on('unhandledRejection', (err) => unhandled.push(err))
after(() => assert.deepEqual(unhandled, [], 'no unhandled rejections'))

function freePort () {
  return new Promise(resolve => { const s = net.createServer().listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => resolve(p)) }) })
}

test('unreachable stores reject with a typed error carrying a code', async () => {
  const port = await freePort()
  for (const connect of [() => RedisStore.connect(`redis://127.0.0.1:${port}`), () => PostgresStore.connect(`postgres://postgres@127.0.0.1:${port}/postgres`)]) {
    await assert.rejects(connect(), (err) => {
      assert.ok(err instanceof StoreUnavailableError && err instanceof IdempoError && err instanceof Error)
      assert.equal(err.code, 'IDEMPO_STORE_UNAVAILABLE')
      return true
    })
  }
  // A URL of the wrong kind is a configuration error, and never echoes a password.
  await assert.rejects(RedisStore.connect('postgres://app:s3cret@db/x'), (err) => {
    assert.ok(err instanceof ConfigurationError && err.code === 'IDEMPO_CONFIG')
    assert.match(err.message, /is not a Redis URL/)
    assert.doesNotMatch(err.message, /s3cret/)
    return true
  })
  assert.throws(() => new RedisStore(), TypeError)
})

test('every synchronous export of the addon catches panics', () => {
  // Async exports are covered by napi-rs itself (a panicking future rejects its promise);
  // every other #[napi] function must be #[napi(catch_unwind)], and every hand-written
  // callback run in `guarded`, or a bug would abort.
  const fs = require('node:fs')
  const path = require('node:path')
  const dir = path.join(__dirname, '..', '..', 'bindings', 'node', 'src')
  let checked = 0
  for (const file of fs.readdirSync(dir).filter(f => f.endsWith('.rs'))) {
    const lines = fs.readFileSync(path.join(dir, file), 'utf8').split('\n').map(l => l.trim())
    lines.forEach((line, i) => {
      // A Node-API callback written by hand (hot.rs) runs its body inside `guarded`.
      if (/^unsafe extern "C" fn \w+\(env: napi_env, info: napi_callback_info\)/.test(line)) {
        checked++
        assert.match(lines[i + 1], /^guarded\(env, /, `${file}: ${line} does not catch panics`)
        return
      }
      // Runs once as the module loads, not as a JavaScript call: it catches panics itself.
      if (line === '#[napi_derive::module_init]') {
        assert.match(lines.slice(i + 1, i + 8).join('\n'), /catch_unwind\(/, `${file}: module_init does not catch panics`)
        return
      }
      if (!line.startsWith('#[napi')) return
      const item = lines.slice(i + 1).find(l => !l.startsWith('#[') && !l.startsWith('///')) || ''
      if (!/^(pub )?fn /.test(item)) return
      checked++
      assert.match(line, /catch_unwind/, `${file}: ${item} is exported without catch_unwind`)
    })
  }
  assert.ok(checked > 20, `only ${checked} exports found: the check is not reading the sources`)
})

test('a panic in the addon is a JavaScript error, and the process keeps serving', async () => {
  const native = require('../lib/native')
  assert.equal(typeof native.panicForTest, 'function', 'the test build (debug) has the panic hook')
  assert.throws(() => native.panicForTest(), /a panic on purpose/)
  // Still serving, through the same addon.
  const app = express()
  app.use(idempotency())
  app.post('/pay', (req, res) => res.status(201).send('paid'))
  const server = await new Promise(resolve => { const s = app.listen(0, '127.0.0.1', () => resolve(s)) })
  try {
    const base = `http://127.0.0.1:${server.address().port}`
    const k = key()
    assert.equal((await post(base, '/pay', k, 'x')).status, 201)
    assert.equal((await post(base, '/pay', k, 'x')).replayed, true)
  } finally {
    server.closeAllConnections()
    server.close()
  }
})

// A redis-server of this test's own. A port taken by a suite running beside this one makes
// it exit: then it is started again on another.
async function ownRedis () {
  for (let attempt = 0; ; attempt++) {
    const port = await freePort()
    const proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' })
    const up = await new Promise((resolve, reject) => {
      proc.on('error', reject)
      const tryConnect = (n) => {
        if (proc.exitCode !== null) return resolve(false)
        const s = net.connect(port, '127.0.0.1', () => { s.end(); resolve(proc.exitCode === null) })
        s.on('error', () => n > 0 ? setTimeout(() => tryConnect(n - 1), 50) : reject(new Error('redis-server did not start')))
      }
      tryConnect(100)
    })
    if (up) return { port, proc }
    proc.kill()
    if (attempt === 2) throw new Error('redis-server did not start')
  }
}

for (const policy of ['failClosed', 'failOpen']) {
  test(`B16: a store that goes down answers per onStoreError (${policy})`, async () => {
    const { port, proc } = await ownRedis()
    const lines = []
    const capture = (level) => (message) => lines.push(`${level} ${message}`)
    setLogger({ error: capture('error'), warn: capture('warn') })
    const app = express()
    const mw = idempotency({ store: await RedisStore.connect(`redis://127.0.0.1:${port}`), onStoreError: policy })
    app.use(mw)
    app.post('/pay', express.text({ type: '*/*' }), (req, res) => res.status(201).send(req.body))
    const server = await new Promise(resolve => { const s = app.listen(0, '127.0.0.1', () => resolve(s)) })
    const base = `http://127.0.0.1:${server.address().port}`
    try {
      assert.equal((await post(base, '/pay', key(), 'x')).status, 201)
      proc.kill('SIGKILL')
      await new Promise(resolve => proc.once('exit', resolve))
      const r = await post(base, '/pay', key(), 'body', { 'content-type': 'text/plain' })
      if (policy === 'failClosed') {
        assert.equal(r.status, 503)
        assert.equal(JSON.parse(r.text).code, 'store-unavailable')
        assert.equal(r.headers.get('retry-after'), '1')
      } else {
        assert.equal(r.status, 201)
        assert.equal(r.text, 'body', 'fail open runs the handler with its body')
        // The warning comes from a runtime thread: give the event loop a moment.
        for (let i = 0; i < 50 && !lines.some(l => l.includes('unprotected')); i++) await new Promise(resolve => setTimeout(resolve, 20))
        assert.ok(lines.some(l => l.startsWith('warn idempo: ') && l.includes('unprotected')), `logged: ${lines.join(' | ')}`)
      }
      assert.equal(mw.stats().storeErrors, 1)
    } finally {
      setLogger(console)
      server.closeAllConnections()
      server.close()
      proc.kill('SIGKILL')
    }
  })
}

test('setLogger checks its logger and level, and null silences idempo', () => {
  assert.throws(() => setLogger(console, { level: 'loud' }), (err) => err instanceof ConfigurationError && /level/.test(err.message))
  assert.throws(() => setLogger({ warn () {} }), (err) => err instanceof ConfigurationError && /error/.test(err.message))
  assert.throws(() => setLogger({ error () {}, warn () {} }, { level: 'debug' }), /info, debug/)
  setLogger(null)
  setLogger(console)
})

test('hostile input: bad keys, huge keys, aborted bodies never crash the process', async () => {
  const app = express()
  app.use(idempotency({ store: new MemoryStore() }))
  app.post('/pay', express.text({ type: '*/*' }), (req, res) => res.status(201).send('ok'))
  const server = await new Promise(resolve => { const s = app.listen(0, '127.0.0.1', () => resolve(s)) })
  const base = `http://127.0.0.1:${server.address().port}`
  try {
    for (const bad of ['a'.repeat(10000), '"' + '\\'.repeat(51) + '"', '"\u00e9"', '""']) {
      const r = await post(base, '/pay', bad, 'x')
      assert.equal(r.status, 400)
      assert.equal(JSON.parse(r.text).code, 'invalid-key')
    }
    // A client that sends half its declared body and disconnects.
    await new Promise((resolve) => {
      const req = http.request(`${base}/pay`, { method: 'POST', headers: { 'idempotency-key': 'half', 'content-length': '100' } })
      req.on('error', () => resolve())
      req.write('only a few bytes')
      setTimeout(() => { req.destroy(); resolve() }, 100)
    })
    // The key was never claimed: it runs normally afterwards.
    assert.equal((await post(base, '/pay', 'half', 'x')).status, 201)
  } finally {
    server.closeAllConnections()
    server.close()
  }
})
