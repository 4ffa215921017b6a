'use strict'
// B20: a duplicate that prefers to wait gets its in-flight original's response instead of
// a 409, through real Express and Fastify servers on every store; a waiting client that
// leaves gives its place back at once.
const { test } = require('node:test')
const assert = require('node:assert/strict')
const net = require('node:net')
const { eachApp, key, post, problem } = require('./helpers')

const tick = (ms) => new Promise(resolve => setTimeout(resolve, ms))
const waiting = (n) => ({ prefer: `wait=${n}` })

eachApp(test, 'B20: duplicates that prefer to wait get the replay', async (app) => {
  const k = key('wait')
  const first = post(app.base, '/slow?ms=800', k, '')
  await tick(200)
  const dups = await Promise.all(Array.from({ length: 20 }, () => post(app.base, '/slow?ms=800', k, '', waiting(5))))
  const original = await first
  assert.equal(original.status, 200)
  assert.equal(original.replayed, false)
  for (const r of dups) {
    assert.equal(r.status, 200, r.text)
    assert.equal(r.replayed, true)
    assert.equal(r.headers.get('preference-applied'), 'wait=5')
    assert.equal(r.text, original.text)
  }
  assert.equal(app.counter.get(), 1)
  const stats = app.stats()
  assert.deepEqual([stats.waited, stats.waitTimeouts, stats.conflicts], [20, 0, 0])
})

eachApp(test, 'B20: a wait that runs out is a 409 with Retry-After', async (app) => {
  const k = key('timeout')
  let done = false
  const first = post(app.base, '/slow?ms=2500', k, '').then((r) => { done = true; return r })
  await tick(200)
  const dup = await post(app.base, '/slow?ms=2500', k, '', waiting(1))
  assert.equal(done, false, 'answered before the original finished')
  problem(dup, 409, 'key-in-use')
  assert.equal(dup.headers.get('retry-after'), '1')
  assert.equal(dup.headers.get('preference-applied'), 'wait=1')
  await first
  assert.equal(app.stats().waitTimeouts, 1)
}, { stores: ['memory'] })

/** Send a keyed request that prefers to wait, then destroy the socket while it waits. */
function leaveWhileWaiting (base, k) {
  const { port } = new URL(base)
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => {
      socket.write(`POST /slow?ms=1500 HTTP/1.1\r\nHost: t\r\nIdempotency-Key: ${k}\r\nPrefer: wait=5\r\nContent-Length: 0\r\n\r\n`)
      setTimeout(() => { socket.destroy(); resolve() }, 200)
    })
    socket.on('error', reject)
  })
}

eachApp(test, 'B20: a waiter whose client leaves frees its place', async (app) => {
  const k = key('max-waiters')
  let done = false
  const first = post(app.base, '/slow?ms=1500', k, '').then((r) => { done = true; return r })
  await tick(200)
  await leaveWhileWaiting(app.base, k)
  await tick(100)
  // The place the leaver held is free: this one waits...
  const waiter = post(app.base, '/slow?ms=1500', k, '', waiting(5))
  await tick(200)
  // ...and holds the only place, so the next one is refused at once.
  const refused = await post(app.base, '/slow?ms=1500', k, '', waiting(5))
  assert.equal(done, false, 'refused while the original still ran')
  problem(refused, 409, 'key-in-use')
  assert.equal(refused.headers.get('preference-applied'), null)
  const replay = await waiter
  assert.equal(replay.status, 200, replay.text)
  assert.equal(replay.replayed, true)
  await first
  const stats = app.stats()
  assert.deepEqual([stats.waited, stats.conflicts], [2, 1])
}, { options: { maxWaiters: 1 } })
