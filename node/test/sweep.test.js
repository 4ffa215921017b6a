'use strict'
// B23: expired PostgreSQL rows are deleted by a background sweep every `sweepInterval` ms;
// 0 turns it off. What is left to sweep by hand tells which happened.
const { test } = require('node:test')
const assert = require('node:assert/strict')
const crypto = require('node:crypto')
const { PostgresStore } = require('..')
const { serve, post, key } = require('./helpers')

const sleep = (ms) => new Promise(resolve => setTimeout(resolve, ms))

for (const [what, sweepInterval, leftOver] of [['every 300 ms', 300, 0], ['off', 0, 10]]) {
  test(`B23: the background sweep, ${what}`, async () => {
    assert.ok(process.env.DATABASE_URL, 'DATABASE_URL must be set (make test starts PostgreSQL)')
    const table = `sweep_${crypto.randomBytes(6).toString('hex')}`
    const store = await PostgresStore.connect(process.env.DATABASE_URL, { table, sweepInterval })
    assert.match(String(store), new RegExp(`sweep_interval=${sweepInterval / 1000}s`))
    const app = await serve('express', store, { ttl: 200 })
    try {
      for (let n = 0; n < 10; n++) assert.equal((await post(app.base, '/echo', key('sweep'), 'x')).status, 201)
      await sleep(1200)
      assert.equal(await store.sweep(), leftOver)
    } finally {
      await app.close()
    }
  })
}
