'use strict'
// Store calls that cannot answer at once settle their Promises through one completion queue
// per JavaScript thread (bindings/node/src/completions.rs). Each case runs in a child
// process, on real Redis, since what is checked is how the process lives and ends: it
// must keep running while a call is in flight, exit by itself once all have settled, and
// survive a worker thread that ends with calls of its own still in flight.
const { test } = require('node:test')
const assert = require('node:assert/strict')
const path = require('node:path')
const { spawn } = require('node:child_process')
const { env, key } = require('./helpers')

const NODE_DIR = path.join(__dirname, '..')

/** Run `body` (a script) in a child Node process; its exit code, output and how long it took. */
function child (body, { timeout = 20000 } = {}) {
  const script = `
    'use strict'
    const { RedisStore } = require(${JSON.stringify(NODE_DIR)})
    const native = require(${JSON.stringify(path.join(NODE_DIR, 'lib', 'native'))})
    const { NATIVE } = require(${JSON.stringify(path.join(NODE_DIR, 'lib', 'stores'))})
    const url = ${JSON.stringify(env('REDIS_URL', 'Redis'))}
    const prefix = ${JSON.stringify(key('queue'))}
    const { replyOf } = require(${JSON.stringify(path.join(NODE_DIR, 'lib', 'engine'))})
    const begin = (engine, i) => native.check(engine.handle, 'POST', '/pay', [prefix + '-' + i]).begin(Buffer.from('{}'))
    ${body}
  `
  return new Promise((resolve) => {
    const started = Date.now()
    const proc = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    proc.stdout.on('data', (d) => { out += d })
    proc.stderr.on('data', (d) => { out += d })
    const timer = setTimeout(() => proc.kill('SIGKILL'), timeout)
    proc.on('exit', (code, signal) => {
      clearTimeout(timer)
      resolve({ code, signal, out, elapsed: Date.now() - started })
    })
  })
}

test('300 claims at once all settle, and the process then exits by itself', async () => {
  const r = await child(`
    ;(async () => {
      const engine = new native.Engine((await RedisStore.connect(url))[NATIVE])
      const decided = Array.from({ length: 300 }, (_, i) => begin(engine, i))
      // Redis answers through Promises (one ready on the first poll is answered at once).
      if (decided.filter(d => d instanceof Promise).length < 250) throw new Error('few Promises')
      const leases = await Promise.all(decided)
      if (!leases.every(l => l instanceof native.Lease)) throw new Error('every new key is a lease')
      await Promise.all(leases.map((l) => { l.start(201, ['content-type', 'text/plain']); l.push(Buffer.from('ok')); return l.complete() }))
      const replays = await Promise.all(Array.from({ length: 300 }, (_, i) => begin(engine, i)))
      console.log('replayed', replays.filter(r => r && replyOf(r).status === 201).length)
    })()
  `)
  assert.equal(r.signal, null, `the process had to be killed (it did not exit by itself):\n${r.out}`)
  assert.equal(r.code, 0, r.out)
  assert.match(r.out, /replayed 300/)
})

test('a call in flight keeps the process alive until it settles', async () => {
  // Nothing else holds the event loop: only the pending claim may keep it running.
  const r = await child(`
    RedisStore.connect(url).then((store) => {
      const engine = new native.Engine(store[NATIVE])
      const net = require('node:net')
      const u = new URL(url)
      // Pause Redis for 500 ms, then claim: the claim's Promise is all that is left.
      const socket = net.connect(Number(u.port), u.hostname, () => socket.write('CLIENT PAUSE 500 ALL\\r\\n'))
      socket.once('data', () => {
        socket.destroy()
        const started = Date.now()
        const decided = begin(engine, 0)
        if (!(decided instanceof Promise)) throw new Error('the paused store answered at once')
        decided.then((lease) => {
          console.log('settled after', Date.now() - started, 'ms', lease instanceof native.Lease)
          return lease.release()
        })
      })
    })
  `)
  assert.equal(r.code, 0, r.out)
  const m = r.out.match(/settled after (\d+) ms true/)
  assert.ok(m, `the process ended before its claim settled:\n${r.out}`)
  assert.ok(Number(m[1]) >= 300, `the claim was held up by the pause (${m[1]} ms)`)
})

test('a worker that ends with calls in flight leaves the process working', async () => {
  const r = await child(`
    const { Worker } = require('node:worker_threads')
    ;(async () => {
      const worker = new Worker(\`
        const { parentPort } = require('node:worker_threads')
        const { RedisStore } = require(\${JSON.stringify(${JSON.stringify(NODE_DIR)})})
        const native = require(\${JSON.stringify(${JSON.stringify(path.join(NODE_DIR, 'lib', 'native'))})})
        const { NATIVE } = require(\${JSON.stringify(${JSON.stringify(path.join(NODE_DIR, 'lib', 'stores'))})})
        RedisStore.connect(\${JSON.stringify(url)}).then((store) => {
          const engine = new native.Engine(store[NATIVE])
          let settled = 0
          const more = () => {
            for (let i = 0; i < 50; i++) {
              const k = \${JSON.stringify(prefix)} + '-w-' + Math.random()
              Promise.resolve(native.check(engine.handle, 'POST', '/pay', [k]).begin(Buffer.from('{}'))).then(() => { settled++ })
            }
            parentPort.postMessage(settled)
            setImmediate(more)
          }
          more()
        })
      \`, { eval: true })
      // Let it get going, then end it while its claims are in flight.
      await new Promise((resolve) => { let n = 0; worker.on('message', () => { if (++n === 20) resolve() }) })
      await worker.terminate()
      await new Promise((resolve) => setTimeout(resolve, 300))
      const engine = new native.Engine((await RedisStore.connect(url))[NATIVE])
      const leases = await Promise.all(Array.from({ length: 50 }, (_, i) => begin(engine, i)))
      console.log('after the worker', leases.filter(l => l instanceof native.Lease).length)
    })()
  `)
  assert.equal(r.signal, null, `the process crashed or hung:\n${r.out}`)
  assert.equal(r.code, 0, r.out)
  assert.match(r.out, /after the worker 50/)
})
