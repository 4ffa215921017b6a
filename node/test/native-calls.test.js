'use strict'
// The calls every keyed request makes (`check`, `look`, `claim`) are Node-API callbacks
// written by hand (bindings/node/src/hot.rs), reading strings into a buffer of their own.
// What they read must be the whole value, however long and whatever its characters, and
// what is not theirs to read must be an error, never a crash.
const { test } = require('node:test')
const assert = require('node:assert/strict')
const native = require('../lib/native')
const { MemoryStore } = require('..')
const { NATIVE } = require('../lib/stores')
const { FRAMEWORKS, key, serve, post } = require('./helpers')

// Longer than the part of the buffer a string is first read into, with Latin-1 characters
// (two bytes each in UTF-8) around the end of that part, and a difference only at the end.
const long = (tail) => 'é'.repeat(130) + 'x'.repeat(400) + tail

for (const framework of FRAMEWORKS) {
  test(`long header values are read whole: Authorization decides the namespace (B5) [${framework}]`, async () => {
    const app = await serve(framework, new MemoryStore(), { scope: undefined }) // the core's default scope
    try {
      const k = key('long-auth')
      const first = await post(app.base, '/echo', k, 'x', { authorization: long('1') })
      const other = await post(app.base, '/echo', k, 'x', { authorization: long('2') })
      const again = await post(app.base, '/echo', k, 'x', { authorization: long('1') })
      assert.deepEqual([first.status, first.replayed], [201, false])
      assert.deepEqual([other.status, other.replayed], [201, false], 'another caller shared the first one\'s namespace')
      assert.deepEqual([again.status, again.replayed], [201, true])
      assert.equal(app.counter.get(), 2)
    } finally {
      await app.close()
    }
  })

  test(`a long scope is read whole: the scope function's answer decides the namespace (B5) [${framework}]`, async () => {
    const app = await serve(framework, new MemoryStore()) // scope: the X-Tenant header
    try {
      const k = key('long-scope')
      const first = await post(app.base, '/echo', k, 'x', { 'x-tenant': long('1') })
      const other = await post(app.base, '/echo', k, 'x', { 'x-tenant': long('2') })
      const again = await post(app.base, '/echo', k, 'x', { 'x-tenant': long('1') })
      assert.deepEqual([first.replayed, other.replayed, again.replayed], [false, false, true])
      assert.equal(app.counter.get(), 2)
    } finally {
      await app.close()
    }
  })

  test(`a long target is read whole: a query differing at its end is another request (B6, B8) [${framework}]`, async () => {
    const app = await serve(framework, new MemoryStore(), { scope: () => 't' })
    try {
      const k = key('long-url')
      const q = (tail) => '/echo?q=' + 'a'.repeat(700) + tail
      const first = await post(app.base, q('1'), k, 'x')
      const same = await post(app.base, q('1'), k, 'x')
      const other = await post(app.base, q('2'), k, 'x')
      assert.deepEqual([first.status, same.status, same.replayed], [201, 201, true])
      assert.equal(other.status, 422, other.text)
      assert.equal(app.counter.get(), 1)
    } finally {
      await app.close()
    }
  })
}

test('the hand-written calls refuse arguments that are not theirs, and the process goes on', () => {
  const engine = new native.Engine(new MemoryStore()[NATIVE])
  const handle = engine.handle
  const body = Buffer.from('{}')
  const values = [key('bad-args')]
  for (const [what, call] of Object.entries({
    'an engine that is not one': () => native.look({}, 'POST', values),
    'the Engine instead of its handle': () => native.look(engine, 'POST', values),
    'a method that is not a string': () => native.look(handle, 42, values),
    'header values that are not an array': () => native.check(handle, 'POST', '/', 'idempotency-key'),
    'a header value that is a number': () => native.look(handle, 'POST', [7]),
    'too few arguments': () => native.claim(handle, 'POST', '/'),
    'a body that is not a Buffer': () => native.claim(handle, 'POST', '/', values, false, undefined, 'body')
  })) {
    assert.throws(call, Error, what)
  }
  // Still working, through the same engine.
  const lease = native.claim(handle, 'POST', '/', values, false, undefined, body)
  assert.ok(lease instanceof native.Lease)
  lease.end(201, ['content-type', 'text/plain'], undefined, Buffer.from('ok'))
  const replay = native.claim(handle, 'POST', '/', values, false, undefined, body)
  assert.equal(typeof replay, 'string', 'a small reply is one string')
})
