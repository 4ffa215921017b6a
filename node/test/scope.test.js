'use strict'
// B5 as only the Node integrations can get it wrong: a scope function that throws or
// returns something other than a string is an error (500, nothing claimed), never a shared
// namespace such as "undefined". The default scope (the caller's Authorization) and
// GLOBAL_SCOPE are tested through the scenario files.
const { test } = require('node:test')
const assert = require('node:assert/strict')
const { MemoryStore, GLOBAL_SCOPE, ConfigurationError } = require('..')
const { FRAMEWORKS, key, serve, post } = require('./helpers')

const BAD = {
  'returns undefined': () => undefined,
  'returns a number': () => 42,
  throws: () => { throw new Error('no authenticated user') }
}

for (const framework of FRAMEWORKS) {
  for (const [what, scope] of Object.entries(BAD)) {
    test(`B5: a scope function that ${what} is a 500 and claims nothing [${framework}]`, async () => {
      const store = new MemoryStore()
      const k = key('bad-scope')
      const bad = await serve(framework, store, { scope })
      try {
        const r = await post(bad.base, '/echo', k, 'x')
        assert.equal(r.status, 500, r.text)
        assert.equal(bad.counter.get(), 0, 'the handler ran')
      } finally {
        await bad.close()
      }
      // Nothing was claimed: the same key in the global namespace runs.
      const good = await serve(framework, store, { scope: GLOBAL_SCOPE })
      try {
        const r = await post(good.base, '/echo', k, 'x')
        assert.deepEqual([r.status, r.replayed, good.counter.get()], [201, false, 1])
      } finally {
        await good.close()
      }
    })
  }
}

test('B5: scope must be a function or GLOBAL_SCOPE', () => {
  const { idempotency } = require('../express')
  assert.throws(() => idempotency({ scope: 'tenant' }), (err) => err instanceof ConfigurationError && /GLOBAL_SCOPE/.test(err.message))
})
