'use strict'
// B21 through the Node store options: the memory store's bounds are the core's, set in
// camelCase, and one scope at its share evicts its own records, never another scope's.
const { test } = require('node:test')
const assert = require('node:assert/strict')
const util = require('node:util')
const { MemoryStore, ConfigurationError } = require('..')
const { FRAMEWORKS, key, serve, post } = require('./helpers')

test('B21: the bounds are set by option and shown', () => {
  assert.equal(util.inspect(new MemoryStore()), 'MemoryStore(max_entries=100000, max_entries_per_scope=10000, max_bytes=67108864)')
  const store = new MemoryStore({ maxEntries: 50, maxEntriesPerScope: 50, maxBytes: 1 << 20 })
  assert.equal(String(store), 'MemoryStore(max_entries=50, max_entries_per_scope=50, max_bytes=1048576)')
  assert.throws(() => new MemoryStore({ maxBytes: -1 }), (err) => err instanceof ConfigurationError && /maxBytes/.test(err.message))
})

for (const framework of FRAMEWORKS) {
  test(`B21: a scope at its share evicts its own records, never another's [${framework}]`, async () => {
    const app = await serve(framework, new MemoryStore({ maxEntriesPerScope: 2 }), { scope: (req) => req.headers['x-tenant'] })
    try {
      const send = async (tenant, k) => {
        const r = await post(app.base, '/echo', k, 'x', { 'X-Tenant': tenant })
        return [r.status, r.replayed]
      }
      const victim = key('victim')
      assert.deepEqual(await send('victim', victim), [201, false])
      const attacker = [key('attacker'), key('attacker'), key('attacker')]
      for (const k of attacker) await send('attacker', k)
      assert.equal(app.counter.get(), 4)
      // The victim's record stays; the attacker's third key evicted its own first.
      assert.deepEqual(await send('victim', victim), [201, true])
      assert.deepEqual(await send('attacker', attacker[2]), [201, true])
      assert.deepEqual(await send('attacker', attacker[0]), [201, false])
      assert.equal(app.counter.get(), 5)
    } finally {
      await app.close()
    }
  })
}
