'use strict'
// B8: of 200 simultaneous identical requests over real HTTP exactly one runs the handler,
// for each framework and store, and across two node:cluster worker processes on Redis.
const { test } = require('node:test')
const assert = require('node:assert/strict')
const { spawn } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const http = require('node:http')
const net = require('node:net')
const { key, eachApp, env, FIXTURES } = require('./helpers')

const N = 200

/** N requests at once, each on its own connection. */
function fire (base, k, n = N) {
  const agent = new http.Agent({ keepAlive: false, maxSockets: Infinity })
  const one = () => new Promise((resolve, reject) => {
    const req = http.request(`${base}/slow?ms=300`, { method: 'POST', agent, headers: { 'idempotency-key': k, 'content-type': 'text/plain' } }, (res) => {
      const chunks = []
      res.on('data', c => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString() }))
    })
    req.on('error', reject)
    req.end('same')
  })
  return Promise.all(Array.from({ length: n }, one))
}

function checkOutcome (responses) {
  const originals = responses.filter(r => r.status === 200 && !r.headers['idempotency-replayed'])
  const replays = responses.filter(r => r.status === 200 && r.headers['idempotency-replayed'] === 'true')
  const conflicts = responses.filter(r => r.status === 409)
  assert.equal(originals.length, 1, JSON.stringify(responses.map(r => r.status)))
  assert.equal(originals.length + replays.length + conflicts.length, responses.length)
  for (const r of replays) assert.equal(r.body, originals[0].body)
  for (const r of conflicts) assert.equal(JSON.parse(r.body).code, 'key-in-use')
}

eachApp(test, 'B8: 200 concurrent duplicates run the handler once', async ({ base, counter }) => {
  checkOutcome(await fire(base, key('b8')))
  assert.equal(counter.get(), 1)
})

/** A port free right now (the kernel's choice), for an app started in another process. */
function freePort () {
  return new Promise((resolve, reject) => {
    const probe = net.createServer().once('error', reject)
    probe.listen(0, '127.0.0.1', () => { const { port } = probe.address(); probe.close(() => resolve(port)) })
  })
}

/**
 * Start the Express fixture app as two node:cluster workers on one port. Another process
 * may take the port between the probe and the bind (the suites run side by side): the app
 * then exits, and it is started again on another port.
 */
async function startCluster (extraEnv) {
  for (let attempt = 0; ; attempt++) {
    const port = await freePort()
    const child = spawn(process.execPath, [path.join(FIXTURES, 'express-app.js')], {
      env: { ...process.env, ...extraEnv, PORT: String(port), WORKERS: '2' },
      stdio: ['ignore', 'inherit', 'inherit']
    })
    const exited = new Promise(resolve => child.once('exit', resolve))
    const running = () => child.exitCode === null && child.signalCode === null
    const base = `http://127.0.0.1:${port}`
    for (let i = 0; i < 200 && running(); i++) {
      try {
        await fetch(base + '/counter')
        return { base, stop: async () => { if (running()) child.kill(); await exited } }
      } catch {
        await new Promise(resolve => setTimeout(resolve, 50))
      }
    }
    if (running()) child.kill()
    await exited
    if (attempt >= 2) throw new Error('the cluster app did not start')
  }
}

test('B8: 200 concurrent duplicates across two node:cluster workers on Redis run once', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'idempo-cluster-'))
  const app = await startCluster({ IDEMPO_STORE: env('REDIS_URL', 'Redis'), IDEMPO_COUNTER_FILE: path.join(dir, 'count') })
  try {
    const responses = await fire(app.base, key('cluster'))
    checkOutcome(responses)
    const pids = new Set(responses.map(r => r.headers['x-pid']))
    assert.equal(pids.size, 2, `both workers answered: ${[...pids]}`)
    assert.equal(fs.readFileSync(path.join(dir, 'count'), 'utf8'), '1')
  } finally {
    await app.stop()
  }
})
