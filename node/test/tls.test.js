'use strict'
// B22: Redis over rediss:// and PostgreSQL with sslmode, against the TLS servers make test
// starts: the right CA file serves and replays a keyed request, the wrong one is refused.
const { test } = require('node:test')
const assert = require('node:assert/strict')
const { RedisStore, PostgresStore, StoreUnavailableError } = require('..')
const { FRAMEWORKS, serve, post, key } = require('./helpers')

function env (name) {
  assert.ok(process.env[name], `${name} must be set (make test starts the TLS servers)`)
  return process.env[name]
}

async function servedAndReplayed (framework, store) {
  const app = await serve(framework, store)
  try {
    const k = key('tls')
    const first = await post(app.base, '/echo', k, 'over tls')
    const again = await post(app.base, '/echo', k, 'over tls')
    assert.deepEqual([first.status, first.replayed, again.status, again.replayed, again.text], [201, false, 201, true, 'over tls'])
    assert.equal(app.counter.get(), 1)
  } finally {
    await app.close()
  }
}

const refused = (err) => err instanceof StoreUnavailableError

for (const framework of FRAMEWORKS) {
  test(`B22: rediss:// with the right CA and the wrong one [${framework}]`, async () => {
    const url = env('REDIS_TLS_URL')
    await servedAndReplayed(framework, await RedisStore.connect(url, { caFile: env('IDEMPO_TLS_CA') }))
    await assert.rejects(RedisStore.connect(url, { caFile: env('IDEMPO_TLS_WRONG_CA') }), refused)
  })

  test(`B22: PostgreSQL sslmode=verify-full with the right CA and the wrong one [${framework}]`, async () => {
    const url = `${env('DATABASE_TLS_URL')}?sslmode=verify-full`
    await servedAndReplayed(framework, await PostgresStore.connect(url, { caFile: env('IDEMPO_TLS_CA') }))
    await assert.rejects(PostgresStore.connect(url, { caFile: env('IDEMPO_TLS_WRONG_CA') }), refused)
  })
}
