'use strict'
// The rules of DESIGN.md §3 through Express and Fastify over real HTTP, on the memory,
// Redis and PostgreSQL stores.
const { test } = require('node:test')
const assert = require('node:assert/strict')
const { key, post, request, problem, eachApp } = require('./helpers')

eachApp(test, 'B1: only covered methods are touched', async ({ base, counter }) => {
  const k = key('b1')
  for (let i = 0; i < 2; i++) {
    const r = await request(base, 'GET', '/counter', { key: k })
    assert.equal(r.status, 200)
    assert.equal(r.replayed, false)
  }
  assert.equal((await post(base, '/echo', k, 'x')).replayed, false)
  assert.equal((await post(base, '/echo', k, 'x')).replayed, true)
  assert.equal(counter.get(), 1)
})

eachApp(test, 'B2: quoted and bare keys, any header case', async ({ base, counter }) => {
  const k = key('b2')
  const first = await post(base, '/echo', `"${k}"`, 'x')
  assert.equal(first.status, 201)
  assert.equal(first.replayed, false, 'a first response carries no replay header (B14)')
  assert.equal((await post(base, '/echo', k, 'x')).replayed, true)
  assert.equal((await request(base, 'POST', '/echo', { body: 'x', headers: { 'IDEMPOTENCY-KEY': k } })).replayed, true)
  assert.equal(counter.get(), 1)
})

eachApp(test, 'B3: invalid keys are rejected before the handler', async ({ base, counter }) => {
  for (const bad of ['""', '"a", "b"', 'a,b', '"unterminated', '"bad\\escape"', 'k'.repeat(17)]) {
    problem(await post(base, '/echo', bad, 'x'), 400, 'invalid-key')
  }
  assert.equal(counter.get(), 0)
  assert.equal((await post(base, '/echo', 'k'.repeat(16), 'x')).status, 201)
}, { options: { maxKeyLength: 16 } })

eachApp(test, 'B4: a missing key is refused when required', async ({ base, counter }) => {
  const doc = problem(await post(base, '/echo', undefined, 'x'), 400, 'missing-key')
  assert.equal(doc.title, 'Idempotency-Key is missing')
  assert.equal(counter.get(), 0)
  assert.equal((await request(base, 'GET', '/counter')).status, 200)
}, { options: { required: true } })

eachApp(test, 'B4: a missing key passes through when optional', async ({ base, counter }) => {
  await post(base, '/echo', undefined, 'x')
  assert.equal((await post(base, '/echo', undefined, 'x')).replayed, false)
  assert.equal(counter.get(), 2)
})

eachApp(test, 'B5: the scope separates tenants', async ({ base, counter }) => {
  const k = key('b5')
  assert.equal((await post(base, '/echo', k, 'a', { 'x-tenant': 'a' })).replayed, false)
  assert.equal((await post(base, '/echo', k, 'a', { 'x-tenant': 'b' })).replayed, false)
  assert.equal((await post(base, '/echo', k, 'a', { 'x-tenant': 'a' })).replayed, true)
  assert.equal(counter.get(), 2)
})

eachApp(test, 'B6: a different request with the same key is 422, the record kept', async ({ base, counter }) => {
  const k = key('b6')
  const first = await post(base, '/echo?a=1', k, 'original')
  const doc = problem(await post(base, '/echo?a=1', k, 'changed'), 422, 'fingerprint-mismatch')
  assert.equal(doc.title, 'Idempotency-Key is already used')
  problem(await post(base, '/echo?a=2', k, 'original'), 422, 'fingerprint-mismatch')
  const retry = await post(base, '/echo?a=1', k, 'original')
  assert.equal(retry.replayed, true)
  assert.deepEqual(retry.body, first.body)
  assert.equal(counter.get(), 1)
})

eachApp(test, 'B7: the body limit, and the body reaches the handler unchanged', async ({ base, counter }) => {
  const k = key('b7')
  problem(await post(base, '/echo', k, Buffer.alloc(1025, 'x')), 413, 'body-too-large')
  assert.equal(counter.get(), 0)
  const body = Buffer.from(Array.from({ length: 1024 }, (_, i) => i % 256))
  const r = await post(base, '/echo', k, body, { 'content-type': 'application/octet-stream' })
  assert.equal(r.status, 201)
  assert.deepEqual(r.body, body)
  // Chunked, without a length: refused once past the limit.
  const stream = new ReadableStream({ start (c) { for (let i = 0; i < 4; i++) c.enqueue(Buffer.alloc(400, 'y')); c.close() } })
  const chunked = await fetch(base + '/echo', { method: 'POST', body: stream, duplex: 'half', headers: { 'idempotency-key': key() } })
  assert.equal(chunked.status, 413)
  assert.equal((await chunked.json()).code, 'body-too-large')
}, { options: { maxRequestBody: 1024 } })

eachApp(test, 'B9: a duplicate in flight gets 409 with Retry-After', async ({ base, counter }) => {
  const k = key('b9')
  const first = post(base, '/slow?ms=600', k)
  await new Promise(resolve => setTimeout(resolve, 200))
  const dup = await post(base, '/slow?ms=600', k)
  const doc = problem(dup, 409, 'key-in-use')
  assert.equal(doc.title, 'A request is outstanding for this Idempotency-Key')
  const after = Number(dup.headers.get('retry-after'))
  assert.ok(after >= 1 && after <= 5, `Retry-After ${after}`)
  assert.equal((await first).status, 200)
  assert.equal((await post(base, '/slow?ms=600', k)).replayed, true)
  assert.equal(counter.get(), 1)
}, { options: { leaseTtl: 5000 } })

eachApp(test, 'B10: renewal keeps a long handler exclusive', async ({ base, counter }) => {
  const k = key('b10')
  const first = post(base, '/slow?ms=900', k)
  for (let i = 0; i < 3; i++) {
    await new Promise(resolve => setTimeout(resolve, 250))
    problem(await post(base, '/slow?ms=900', k), 409, 'key-in-use')
  }
  assert.equal((await first).status, 200)
  assert.equal((await post(base, '/slow?ms=900', k)).replayed, true)
  assert.equal(counter.get(), 1)
}, { options: { leaseTtl: 300 } })

eachApp(test, 'B11: 4xx stored, 5xx and thrown errors release the key', async ({ base, counter }) => {
  const k4 = key('b11-4')
  assert.equal((await post(base, '/status/404', k4)).status, 404)
  const replay = await post(base, '/status/404', k4)
  assert.equal(replay.replayed, true)
  assert.equal(replay.text, 'status:404')
  const k5 = key('b11-5')
  for (let i = 0; i < 2; i++) assert.equal((await post(base, '/status/503', k5)).replayed, false)
  const kr = key('b11-raise')
  for (let i = 0; i < 2; i++) assert.equal((await post(base, '/raise', kr)).status, 500)
  assert.equal(counter.get(), 5, 'the 5xx and the thrown error ran again on retry')
})

eachApp(test, 'B12: a large response is stored without its body', async ({ base, counter, stats }) => {
  const k = key('b12')
  const first = await post(base, '/large?bytes=200000', k)
  assert.equal(first.body.length, 200000)
  const replay = await post(base, '/large?bytes=200000', k)
  assert.equal(replay.status, 200)
  assert.equal(replay.replayed, true)
  assert.equal(replay.body.length, 0)
  assert.equal(replay.headers.get('idempotency-replay'), 'omitted')
  assert.equal(replay.headers.get('content-type'), 'application/octet-stream')
  assert.equal(counter.get(), 1)
  assert.equal(stats().omitted, 1)
}, { options: { maxResponseBody: 65536 } })

eachApp(test, 'B13: a streamed body is replayed byte for byte', async ({ base, counter }) => {
  const k = key('b13')
  const first = await post(base, '/stream', k)
  assert.equal(first.text.match(/data: event/g).length, 5)
  const replay = await post(base, '/stream', k)
  assert.equal(replay.replayed, true)
  assert.deepEqual(replay.body, first.body)
  assert.match(replay.headers.get('content-type'), /^text\/event-stream/)
  assert.equal(counter.get(), 1)
})

eachApp(test, 'B14: replayed headers', async ({ base }) => {
  const k = key('b14')
  const first = await post(base, '/echo', k, '{}', { 'content-type': 'application/json' })
  const replay = await post(base, '/echo', k, '{}', { 'content-type': 'application/json' })
  assert.equal(replay.status, 201)
  assert.equal(replay.headers.get('content-type'), first.headers.get('content-type'))
  assert.equal(replay.headers.get('content-length'), '2')
  assert.equal(first.headers.get('idempotency-replayed'), null)
})

eachApp(test, 'B15: problem documents carry a stable type URI', async ({ base }) => {
  const doc = problem(await post(base, '/echo'), 400, 'missing-key')
  assert.equal(doc.type, 'https://errors.example.com/missing-key')
}, { options: { required: true, problemBase: 'https://errors.example.com/' } })

eachApp(test, 'B19: stats count every outcome', async ({ base, stats }) => {
  const k = key('b19')
  await post(base, '/echo', undefined, 'x')
  await post(base, '/echo', k, 'x')
  await post(base, '/echo', k, 'x')
  await post(base, '/echo', k, 'y')
  await post(base, '/echo', '"bad', 'x')
  await post(base, '/echo', key(), '0123456789')
  const s = stats()
  assert.deepEqual(
    { bypassed: s.bypassed, executed: s.executed, replayed: s.replayed, mismatches: s.mismatches, invalid: s.invalid, tooLarge: s.tooLarge },
    { bypassed: 1, executed: 1, replayed: 1, mismatches: 1, invalid: 1, tooLarge: 1 })
  assert.deepEqual(Object.keys(s).sort(), ['bypassed', 'conflicts', 'executed', 'invalid', 'leaseLost', 'mismatches', 'omitted', 'replayed', 'storeErrors', 'tooLarge'])
}, { options: { maxRequestBody: 8 } })
