'use strict'
// B22: a store's secrets (the URL's password, its password and sslpassword parameters)
// never appear in a description, an inspection or an error.
const { test } = require('node:test')
const assert = require('node:assert/strict')
const util = require('node:util')
const net = require('node:net')
const { PostgresStore, StoreUnavailableError } = require('..')

const SECRETS = ['s3cret-pw', 'k3y-pw']
const freePort = () => new Promise(resolve => { const s = net.createServer().listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => resolve(p)) }) })

test('B22: descriptions hide password parameters', async () => {
  assert.ok(process.env.DATABASE_URL, 'DATABASE_URL must be set (make test starts PostgreSQL)')
  const store = await PostgresStore.connect(`${process.env.DATABASE_URL}?password=s3cret-pw&sslpassword=k3y-pw`)
  for (const shown of [String(store), util.inspect(store)]) {
    assert.match(shown, /password=\*\*\*&sslpassword=\*\*\*/)
    for (const s of SECRETS) assert.ok(!shown.includes(s), shown)
  }
})

test('B22: errors hide the secrets', async () => {
  const url = `postgres://app:s3cret-pw@127.0.0.1:${await freePort()}/x?sslpassword=k3y-pw`
  await assert.rejects(PostgresStore.connect(url), (err) => {
    assert.ok(err instanceof StoreUnavailableError)
    const text = `${err.message} ${util.inspect(err)}`
    for (const s of SECRETS) assert.ok(!text.includes(s), text)
    return true
  })
})
