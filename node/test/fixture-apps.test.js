'use strict'
// The Node fixture apps registered in tests/fixtures/apps.json start from the repository
// root with their command, configured only by the fixture variables (tests/fixtures/README.md).
const { test } = require('node:test')
const assert = require('node:assert/strict')
const { spawn } = require('node:child_process')
const net = require('node:net')
const path = require('node:path')
const { key, env } = require('./helpers')

const ROOT = path.join(__dirname, '..', '..')
const APPS = require(path.join(ROOT, 'tests', 'fixtures', 'apps.json'))

const freePort = () => new Promise(resolve => { const s = net.createServer().listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => resolve(p)) }) })

// The app on a free port, answering itself (X-Pid is its pid: never a server another suite
// started on that port). The port is chosen before the app binds it, so a suite running
// beside this one can take it in between: an app that exits before answering is started
// again on another port.
async function started (name, env) {
  const [cmd, ...args] = APPS[name].command
  for (let attempt = 0; ; attempt++) {
    const port = await freePort()
    const child = spawn(path.join(ROOT, cmd), args, { cwd: ROOT, env: { ...process.env, ...env, PORT: String(port) }, stdio: ['ignore', 'ignore', 'inherit'] })
    const base = `http://127.0.0.1:${port}`
    for (let i = 0; i < 300 && child.exitCode === null; i++) {
      const answer = await fetch(base + '/counter').catch(() => null)
      if (answer && answer.headers.get('x-pid') === String(child.pid)) return { child, base }
      await new Promise(resolve => setTimeout(resolve, 50))
    }
    child.kill()
    if (attempt === 2) throw new Error(`${name} did not start`)
  }
}

for (const name of ['express', 'fastify']) {
  for (const store of ['memory', 'redis', 'postgres']) {
    test(`fixture app ${name} on ${store} serves the contract`, async () => {
      const url = store === 'memory' ? 'memory' : env(store === 'redis' ? 'REDIS_URL' : 'DATABASE_URL', store)
      const { child, base } = await started(name, { IDEMPO_STORE: url, IDEMPO_REQUIRED: '1' })
      try {
        const req = (p, k, body) => fetch(base + p, { method: 'POST', headers: k ? { 'idempotency-key': k } : {}, body })
        assert.equal((await req('/reset')).status, 204)
        const k = key(name)
        const first = await req('/echo', k, 'hello')
        assert.equal(first.status, 201)
        assert.equal(await first.text(), 'hello')
        assert.equal((await req('/echo', k, 'hello')).headers.get('idempotency-replayed'), 'true')
        assert.equal((await (await req('/echo', undefined, 'x')).json()).code, 'missing-key')
        const status = await req('/status/418', key())
        assert.equal(status.status, 418)
        assert.equal(await status.text(), 'status:418')
        assert.equal(await (await req('/slow?ms=10', key())).text(), 'slept:10')
        assert.equal((await (await req('/large?bytes=50000', key())).arrayBuffer()).byteLength, 50000)
        assert.equal((await (await req('/stream', key())).text()).match(/data: event/g).length, 5)
        const kr = key('raise')
        assert.equal((await req('/raise', kr)).status, 500)
        assert.equal((await req('/raise', kr)).status, 500)
        assert.deepEqual(await (await fetch(base + '/counter')).json(), { count: 7 })
        assert.equal((await req('/reset')).status, 204)
        assert.deepEqual(await (await fetch(base + '/counter')).json(), { count: 0 })
      } finally {
        child.kill()
        await new Promise(resolve => child.exitCode !== null ? resolve() : child.once('exit', resolve))
      }
    })
  }
}
