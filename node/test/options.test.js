'use strict'
// What only the Node package has: its options reach the core as given, the core's
// defaults and counter list are the ones JavaScript sees, without JavaScript (or the
// .d.ts) stating them, and bad values are typed errors (the rules themselves are tested
// through the scenario files).
const { test } = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const path = require('node:path')
const Fastify = require('fastify')
const { MemoryStore, ConfigurationError, COUNTERS, defaults } = require('..')
const { idempotency } = require('../express')

test('unset options are the core defaults, read back in milliseconds', async () => {
  const mw = idempotency()
  // The core's table, read through the binding (the values themselves are the core's to test).
  assert.deepEqual(mw.options(), defaults())
  for (const name of ['leaseTtl', 'ttl', 'maxRequestBody', 'methods']) assert.ok(name in defaults(), name)
  const app = Fastify()
  await app.register(require('../fastify'))
  assert.deepEqual(app.idempotency.options(), defaults())
  await app.close()
})

test('every option reaches the core', () => {
  const given = {
    methods: ['PUT', 'post'],
    header: 'X-Request-Key',
    required: true,
    maxKeyLength: 40,
    strictKeySyntax: true,
    maxRequestBody: 2048,
    maxResponseBody: 4096,
    leaseTtl: 2500,
    maxLease: 30000,
    ttl: 120000,
    replayHeaders: ['etag', 'location'],
    replayedHeader: 'X-Replayed',
    onStoreError: 'failOpen',
    persistTimeout: 1500,
    retryAfter: 3000,
    wait: 2000,
    maxWait: 20000,
    maxWaiters: 7,
    fingerprintHeaders: ['x-account'],
    fingerprintSecret: Buffer.from('\0secret'),
    problemBase: 'https://errors.example.com/'
  }
  assert.deepEqual(Object.keys(given).sort(), Object.keys(defaults()).sort(), 'every option is tried')
  assert.deepEqual(idempotency(given).options(), { ...given, methods: ['PUT', 'POST'], fingerprintSecret: '<secret>' })
  assert.equal(idempotency({ onStoreError: 'fail_open' }).options().onStoreError, 'failOpen')
})

test('bad values are ConfigurationErrors naming the option, never a crash', () => {
  for (const [options, message] of [
    [{ ttl: 1e22 }, /ttl must be a number of milliseconds from 0 to 31622400000/],
    [{ leaseTtl: -1 }, /leaseTtl must be a number of milliseconds/],
    [{ leaseTtl: NaN }, /leaseTtl must be a number of milliseconds/],
    [{ maxRequestBody: 2 ** 60 }, /maxRequestBody must be a whole number/],
    [{ maxRequestBody: 1.5 }, /maxRequestBody must be a whole number/],
    [{ leaseTtl: 10000, maxLease: 5000 }, /maxLease must be at least leaseTtl/],
    [{ onStoreError: 'sometimes' }, /onStoreError must be "fail_closed" or "fail_open"/],
    [{ header: 'bad header' }, /header/],
    [{ methods: 'POST' }, /methods must be a list of strings/],
    [{ methods: ['PO ST'] }, /methods/],
    [{ required: 'yes' }, /required must be true or false/],
    [{ leaseTTL: 5 }, /unknown engine option "leaseTTL" \(did you mean leaseTtl\?\)/],
    [{ colour: 'blue' }, /the engine options are methods, header/],
    [{ store: 'redis://x' }, /store/],
    [{ scope: 'tenant' }, /scope/],
    [{ storeStatus: 500 }, /storeStatus/]
  ]) {
    assert.throws(() => idempotency(options), (err) => {
      assert.ok(err instanceof ConfigurationError, `${JSON.stringify(options)}: ${err}`)
      assert.equal(err.code, 'IDEMPO_CONFIG')
      assert.match(err.message, message)
      return true
    })
  }
  assert.throws(() => new MemoryStore({ maxEntries: -1 }), /maxEntries must be a whole number/)
  assert.throws(() => new MemoryStore({ prefix: 'x' }), /prefix is not an option of a memory store/)
})

test('a Redis key prefix with braces is refused before connecting (it would put every key in one cluster slot)', async () => {
  const { RedisStore } = require('..')
  for (const connect of [(o) => RedisStore.connect('redis://127.0.0.1:1', o), (o) => RedisStore.cluster(['redis://127.0.0.1:1'], o)]) {
    await assert.rejects(connect({ prefix: 'app{tenant}:' }), (err) => err instanceof ConfigurationError && /one slot/.test(err.message))
  }
})

test('stats() counts what the core lists, and the .d.ts names the same counters', () => {
  assert.deepEqual(Object.keys(idempotency().stats()), COUNTERS)
  assert.deepEqual(COUNTERS.slice(0, 3), ['bypassed', 'executed', 'replayed'])
  const dts = fs.readFileSync(path.join(__dirname, '..', 'index.d.ts'), 'utf8')
  const block = dts.match(/export interface IdempotencyStats \{([^}]*)\}/)
  assert.ok(block, 'index.d.ts declares IdempotencyStats')
  const declared = [...block[1].matchAll(/^\s*(\w+): number/gm)].map(m => m[1])
  assert.deepEqual(declared, COUNTERS, 'the .d.ts lists the core counters, in order')
})

test('the .d.ts EngineOptions names exactly the core options', () => {
  const dts = fs.readFileSync(path.join(__dirname, '..', 'index.d.ts'), 'utf8')
  const block = dts.match(/export interface EngineOptions \{([\s\S]*?)\n\}/)
  assert.ok(block, 'index.d.ts declares EngineOptions')
  const declared = [...block[1].matchAll(/^\s*(\w+)\?:/gm)].map(m => m[1]).filter(n => n !== 'storeStatus')
  assert.deepEqual(declared.sort(), Object.keys(defaults()).sort())
})
