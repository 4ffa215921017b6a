'use strict'
// While a Redis or PostgreSQL call is in flight the event loop keeps running: the store
// is made to stall (Redis CLIENT PAUSE; a PostgreSQL table lock held by another session)
// and an interval timer must keep firing through the stall.
const { test } = require('node:test')
const assert = require('node:assert/strict')
const net = require('node:net')
const { spawn, execSync } = require('node:child_process')
const { RedisStore, PostgresStore } = require('..')
const native = require('../lib/native')
const { NATIVE } = require('../lib/stores')
const { key, env } = require('./helpers')

const STALL = 600

function redisCommand (url, ...args) {
  const u = new URL(url)
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(u.port || 6379), u.hostname, () => {
      socket.write(`*${args.length}\r\n` + args.map(a => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join(''))
    })
    socket.once('data', (d) => { socket.end(); resolve(d.toString()) })
    socket.once('error', reject)
  })
}

async function ticksDuring (call) {
  let ticks = 0
  let maxGap = 0
  let last = Date.now()
  const timer = setInterval(() => { ticks++; const now = Date.now(); maxGap = Math.max(maxGap, now - last); last = now }, 10)
  const started = Date.now()
  try {
    await call()
  } finally {
    clearInterval(timer)
  }
  return { ticks, maxGap, elapsed: Date.now() - started }
}

async function beginWithNewKey (store) {
  const engine = new native.Engine(store[NATIVE])
  const pending = native.check(engine.handle, 'POST', '/pay', [key('loop')])
  assert.ok(pending instanceof native.Pending)
  const decided = pending.begin(Buffer.from('{}'))
  assert.ok(decided instanceof Promise, 'a networked store answers through a Promise')
  const lease = await decided
  assert.ok(lease instanceof native.Lease)
  await lease.release()
}

test('the event loop keeps running while Redis is paused', async () => {
  const url = env('REDIS_URL', 'Redis')
  const store = await RedisStore.connect(url)
  assert.match(await redisCommand(url, 'CLIENT', 'PAUSE', String(STALL), 'ALL'), /^\+OK/)
  const { ticks, maxGap, elapsed } = await ticksDuring(() => beginWithNewKey(store))
  assert.ok(elapsed >= STALL * 0.8, `the claim was not held up by the pause (${elapsed} ms)`)
  assert.ok(ticks >= 20 && maxGap < 200, `the event loop was blocked: ${ticks} ticks, max gap ${maxGap} ms`)
})

test('the event loop keeps running while PostgreSQL holds a lock', async () => {
  const url = env('DATABASE_URL', 'PostgreSQL')
  const store = await PostgresStore.connect(url)
  const psql = execSync('command -v psql || ls /usr/lib/postgresql/*/bin/psql | tail -n 1', { shell: '/bin/bash' }).toString().trim()
  // One session: the lock is held from the moment psql prints `locked` until the sleep ends.
  const steps = ['BEGIN', 'LOCK TABLE idempo_records IN ACCESS EXCLUSIVE MODE', "SELECT 'locked'", `SELECT pg_sleep(${STALL / 1000})`, 'COMMIT']
  const locker = spawn(psql, [url, '-q', '-A', '-t', ...steps.flatMap(step => ['-c', step])], { stdio: ['ignore', 'pipe', 'inherit'] })
  try {
    // A loaded machine can take a while to start psql: wait for the lock, not a guess.
    await new Promise((resolve, reject) => {
      let out = ''
      locker.stdout.on('data', (d) => { out += d; if (out.includes('locked')) resolve() })
      locker.once('exit', () => reject(new Error(`psql exited before taking the lock: ${out}`)))
    })
    const { ticks, maxGap, elapsed } = await ticksDuring(() => beginWithNewKey(store))
    assert.ok(elapsed >= STALL * 0.5, `the claim was not held up by the lock (${elapsed} ms)`)
    assert.ok(ticks >= 15 && maxGap < 200, `the event loop was blocked: ${ticks} ticks, max gap ${maxGap} ms`)
  } finally {
    await new Promise(resolve => locker.exitCode !== null ? resolve() : locker.once('exit', resolve))
  }
})
