'use strict'
// B24: encryption at rest as an Express or Fastify user configures it: keys as [id, Buffer]
// pairs or as text, an inspection that shows the ids and never a key, typed configuration
// errors, and an encrypted store serving and replaying while Redis and PostgreSQL hold no
// plain body (read straight from the servers).
const { test } = require('node:test')
const assert = require('node:assert/strict')
const crypto = require('node:crypto')
const util = require('node:util')
const { execFileSync } = require('node:child_process')
const { RedisStore, PostgresStore, MemoryStore, storeFromUrl, ConfigurationError } = require('..')
const { FRAMEWORKS, env, serve, post, key } = require('./helpers')

const K1 = crypto.randomBytes(32)
const K2 = crypto.randomBytes(32)

/** How many idempo records in Redis hold `marker`. */
function inRedis (marker) {
  const script = "local n = 0 for _, k in ipairs(redis.call('KEYS', 'idempo:*')) do " +
    "local r = redis.call('TYPE', k)['ok'] == 'hash' and redis.call('HGET', k, 'r') " +
    'if r and string.find(r, ARGV[1], 1, true) then n = n + 1 end end return n'
  return Number(execFileSync('redis-cli', ['-u', env('REDIS_URL', 'Redis'), 'EVAL', script, '0', marker]).toString().trim())
}

function inPostgres (marker) {
  const psql = execFileSync('bash', ['-c', 'command -v psql || ls /usr/lib/postgresql/*/bin/psql | tail -n 1']).toString().trim()
  const sql = `SELECT count(*) FROM idempo_records WHERE position(decode('${Buffer.from(marker).toString('hex')}', 'hex') in record) > 0`
  return Number(execFileSync(psql, [env('DATABASE_URL', 'PostgreSQL'), '-A', '-t', '-c', sql]).toString().trim())
}

async function roundTrip (framework, store, marker) {
  const app = await serve(framework, store)
  try {
    const k = key('enc')
    const first = await post(app.base, '/echo', k, marker)
    const again = await post(app.base, '/echo', k, marker)
    assert.deepEqual([first.status, again.status, again.replayed, again.text], [201, 201, true, marker])
    assert.equal(app.counter.get(), 1)
  } finally {
    await app.close()
  }
}

for (const framework of FRAMEWORKS) {
  test(`B24: Redis holds no plain body with encryptionKeys [${framework}]`, async () => {
    const plain = `plain-${crypto.randomUUID()}`
    await roundTrip(framework, await RedisStore.connect(env('REDIS_URL', 'Redis')), plain)
    assert.equal(inRedis(plain), 1, 'without encryption the body is in Redis (the test can tell)')
    const sealed = `sealed-${crypto.randomUUID()}`
    const store = await RedisStore.connect(env('REDIS_URL', 'Redis'), { encryptionKeys: [['k2', K2], ['k1', K1]] })
    await roundTrip(framework, store, sealed)
    assert.equal(inRedis(sealed), 0, 'the body is in Redis in plain text')
  })

  test(`B24: PostgreSQL holds no plain body, keys as text [${framework}]`, async () => {
    const text = `k1:${K1.toString('base64')}`
    const store = await PostgresStore.connect(env('DATABASE_URL', 'PostgreSQL'), { encryptionKeys: text })
    const sealed = `sealed-${crypto.randomUUID()}`
    await roundTrip(framework, store, sealed)
    assert.equal(inPostgres(sealed), 0, 'the body is in PostgreSQL in plain text')
  })
}

test('B24: an inspected store shows key ids, never keys', async () => {
  const store = await RedisStore.connect(env('REDIS_URL', 'Redis'), { encryptionKeys: [['k2', K2], ['k1', new Uint8Array(K1)]] })
  for (const shown of [String(store), util.inspect(store)]) {
    assert.ok(shown.endsWith(', encryption_keys=["k2", "k1"])'), shown)
    for (const k of [K1, K2]) {
      for (const form of [k.toString('hex'), k.toString('base64')]) assert.ok(!shown.includes(form))
    }
  }
})

test('B24: bad keys are ConfigurationErrors that name encryptionKeys and show no key', async () => {
  const url = env('REDIS_URL', 'Redis')
  const cases = [
    [[['k1', Buffer.alloc(5)]], 'encryptionKeys: key "k1" must be 32 bytes, got 5'],
    [[['k1', K1], ['k1', K2]], 'the key id "k1" is given twice'],
    [[['bad id', K1]], 'the key id "bad id" must be 1 to 64'],
    [[], 'encryptionKeys holds no key'],
    ['k1', 'entry 1 is not id:base64key'],
    [[['k1', 'text']], 'encryptionKeys must be a list of (id, key bytes) pairs'],
    [K1, 'encryptionKeys must be a list of (id, key bytes) pairs']
  ]
  for (const [keys, message] of cases) {
    await assert.rejects(RedisStore.connect(url, { encryptionKeys: keys }), (err) => {
      assert.ok(err instanceof ConfigurationError, `${message}: ${err}`)
      assert.ok(err.message.includes(message), err.message)
      assert.ok(!err.message.includes(K1.toString('base64')) && !err.message.includes(K1.toString('hex')))
      return true
    })
  }
  assert.throws(() => new MemoryStore({ encryptionKeys: [['k1', K1]] }), /encryptionKeys is not an option of a memory store/)
  await assert.rejects(storeFromUrl('memory', { encryptionKeys: `k1:${K1.toString('base64')}` }), ConfigurationError)
})
