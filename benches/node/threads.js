'use strict'
// CPU per request of a fixture app (Express or Fastify), split by thread: Node's own
// (JavaScript) and idempo's runtime (store I/O). In-process: the app's request handler
// gets real `IncomingMessage`/`ServerResponse` objects over a socket that discards what is
// written, so no client shares the machine and no kernel loopback cost is counted.
//
//   IDEMPO_STORE=memory|redis://… node benches/node/threads.js express|fastify bare|first|replay [N] [C]
//
// N requests a round (default 10 000), C at a time (default 32), ROUNDS rounds (default 5)
// after a warm-up of N. Prints the process's CPU per request in each round and the
// average per thread name over the rounds (from /proc/self/task), and V8's collections in
// each round. Fastify on Redis with full collections in every round is a run in V8's
// pretenured state, which it keeps (benches/README.md, "allocation-site pretenuring");
// Express makes some full collections anyway (a map per response, docs/DECISIONS.md).
const fs = require('node:fs')
const http = require('node:http')
const path = require('node:path')
const { Duplex } = require('node:stream')
const { PerformanceObserver, constants } = require('node:perf_hooks')

const root = path.join(__dirname, '..', '..')
const [framework = 'fastify', workload = 'first', n = '10000', c = '32'] = process.argv.slice(2)
if (workload === 'bare') process.env.IDEMPO_BARE = '1'
const fixtures = path.join(root, 'tests', 'fixtures', 'node')
const { Counter, optionsFromEnv } = require(path.join(fixtures, 'common.js'))
const { storeFromUrl } = require(path.join(root, 'node'))
const N = Number(n)
const C = Number(c)
const ROUNDS = Number(process.env.ROUNDS || 5)
// What idempo-load sends (benches/src/bin/load.rs).
const BODY = Buffer.from('{"amount":100,"currency":"eur","note":"benchmark"}')

class NullSocket extends Duplex {
  constructor () {
    super()
    this.remoteAddress = '127.0.0.1'
    this.remotePort = 1
  }

  _read () {}
  _write (chunk, encoding, cb) { cb() }
  _writev (chunks, cb) { cb() }
  setTimeout () { return this }
  setNoDelay () { return this }
  setKeepAlive () { return this }
}

/** One POST /echo through `handler` on `socket`; its status. */
function request (handler, socket, key) {
  return new Promise((resolve) => {
    const req = new http.IncomingMessage(socket)
    Object.assign(req, { method: 'POST', url: '/echo', httpVersion: '1.1', httpVersionMajor: 1, httpVersionMinor: 1 })
    req.headers = { host: '127.0.0.1', 'content-type': 'application/json', 'content-length': String(BODY.length) }
    if (key) req.headers['idempotency-key'] = `"${key}"`
    req.rawHeaders = Object.entries(req.headers).flat()
    const res = new http.ServerResponse(req)
    res.assignSocket(socket)
    res.on('finish', () => {
      res.detachSocket(socket) // as Node's server does, so the socket serves the next request
      resolve(res.statusCode)
    })
    handler(req, res)
    // The body arrives after the head, as from a socket.
    setImmediate(() => { req.push(BODY); req.complete = true; req.push(null) })
  })
}

/** CPU time (µs) by thread name, digits dropped (`V8 Worker` threads summed). */
function threads () {
  const tick = 1e6 / 100 // USER_HZ
  const byName = new Map()
  for (const tid of fs.readdirSync('/proc/self/task')) {
    let stat
    try { stat = fs.readFileSync(`/proc/self/task/${tid}/stat`, 'utf8') } catch { continue }
    const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')).replace(/\d+$/, '')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    byName.set(name, (byName.get(name) || 0) + (Number(fields[11]) + Number(fields[12])) * tick)
  }
  return byName
}

async function main () {
  const store = await storeFromUrl(process.env.IDEMPO_STORE || 'memory')
  const app = await require(path.join(fixtures, `${framework}-app.js`)).createApp(store, new Counter(), optionsFromEnv())
  let handler = app
  if (framework === 'fastify') {
    await app.ready()
    handler = (req, res) => app.server.emit('request', req, res)
  }
  const tag = `threads-${process.pid}-${Date.now()}`
  let seq = 0
  const keyOf = { first: () => `${tag}-${seq++}`, replay: () => `${tag}-replayed` }[workload] || (() => null)
  const run = async (count) => {
    let left = count
    const client = async () => {
      const socket = new NullSocket() // one a connection, kept alive as a client's is
      while (left-- > 0) {
        const status = await request(handler, socket, keyOf())
        if (status >= 300) throw new Error(`status ${status}`)
      }
    }
    await Promise.all(Array.from({ length: C }, client))
  }
  if (workload === 'replay') await run(1)
  await run(N) // V8 settles
  const before = threads()
  const rounds = []
  const gc = { full: 0, ms: 0 }
  const observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      gc.ms += entry.duration
      if (entry.detail.kind === constants.NODE_PERFORMANCE_GC_MAJOR) gc.full++
    }
  })
  observer.observe({ entryTypes: ['gc'] })
  const collections = []
  for (let r = 0; r < ROUNDS; r++) {
    const cpu = process.cpuUsage()
    gc.full = 0
    gc.ms = 0
    await run(N)
    const used = process.cpuUsage(cpu)
    rounds.push((used.user + used.system) / N)
    await new Promise(setImmediate) // the observer's entries of this round
    collections.push(`${gc.full} full, ${gc.ms.toFixed(0)} ms`)
  }
  observer.disconnect()
  const split = []
  for (const [name, us] of threads()) {
    const per = (us - (before.get(name) || 0)) / (N * ROUNDS)
    if (per >= 0.5) split.push(`${name} ${per.toFixed(1)}`)
  }
  console.log(`${framework} ${workload} on ${process.env.IDEMPO_STORE || 'memory'}: CPU per request ` +
    `${rounds.map(us => us.toFixed(1)).join(', ')} µs; by thread (µs): ${split.join(', ')}; ` +
    `V8 collections by round: ${collections.join('; ')}`)
  process.exit(0)
}

main().catch((err) => { console.error(err); process.exit(1) })
