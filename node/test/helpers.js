'use strict'
// Shared by the tests: the stores (memory, and real Redis and PostgreSQL from REDIS_URL
// and DATABASE_URL, which `make test` starts), the fixture apps served on loopback, and a
// small HTTP client.
const assert = require('node:assert/strict')
const crypto = require('node:crypto')
const path = require('node:path')
const { MemoryStore, RedisStore, PostgresStore } = require('..')

const FIXTURES = path.join(__dirname, '..', '..', 'tests', 'fixtures', 'node')
const { createApp: createExpress } = require(path.join(FIXTURES, 'express-app.js'))
const { createApp: createFastify } = require(path.join(FIXTURES, 'fastify-app.js'))
const { Counter } = require(path.join(FIXTURES, 'common.js'))

const FRAMEWORKS = ['express', 'fastify']
const STORES = ['memory', 'redis', 'postgres']

function env (name, what) {
  const value = process.env[name]
  if (!value) throw new Error(`${name} is not set: run \`make test\` (it starts a throwaway ${what}) or set ${name}`)
  return value
}

async function makeStore (kind) {
  if (kind === 'memory') return new MemoryStore()
  if (kind === 'redis') return RedisStore.connect(env('REDIS_URL', 'Redis'))
  return PostgresStore.connect(env('DATABASE_URL', 'PostgreSQL'))
}

const key = (name = 'k') => `${name}-${crypto.randomUUID()}`

/** Serve a fixture app on a loopback port. */
async function serve (framework, store, options = {}) {
  const counter = new Counter(null)
  if (framework === 'express') {
    const app = createExpress(store, counter, options)
    const server = await new Promise((resolve) => { const s = app.listen(0, '127.0.0.1', () => resolve(s)) })
    return {
      base: `http://127.0.0.1:${server.address().port}`,
      counter,
      stats: () => app.idempotency.stats(),
      close: () => new Promise(resolve => { server.closeAllConnections(); server.close(resolve) })
    }
  }
  const app = await createFastify(store, counter, options)
  await app.listen({ port: 0, host: '127.0.0.1' })
  return { base: `http://127.0.0.1:${app.server.address().port}`, counter, stats: () => app.idempotencyStats(), close: () => app.close() }
}

/** One request over real HTTP; the body read in full. */
async function request (base, method, url, { key: k, body, headers = {} } = {}) {
  const h = { ...headers }
  if (k !== undefined) h['idempotency-key'] = k
  const res = await fetch(base + url, { method, headers: h, body })
  const buf = Buffer.from(await res.arrayBuffer())
  return {
    status: res.status,
    headers: res.headers,
    body: buf,
    text: buf.toString(),
    replayed: res.headers.get('idempotency-replayed') === 'true'
  }
}

const post = (base, url, k, body, headers) => request(base, 'POST', url, { key: k, body, headers })

function problem (r, status, code) {
  assert.equal(r.status, status, r.text)
  assert.equal(r.headers.get('content-type'), 'application/problem+json')
  assert.equal(r.headers.get('cache-control'), 'no-store')
  const doc = JSON.parse(r.text)
  assert.equal(doc.code, code)
  assert.equal(doc.status, status)
  assert.deepEqual(Object.keys(doc).sort(), ['code', 'detail', 'status', 'title', 'type'])
  assert.equal(r.replayed, false)
  return doc
}

/** Run `fn(app)` for every framework × store, each against a fresh app. */
function eachApp (test, name, fn, { options = {}, frameworks = FRAMEWORKS, stores = STORES } = {}) {
  for (const framework of frameworks) {
    for (const kind of stores) {
      test(`${name} [${framework}, ${kind}]`, async () => {
        const app = await serve(framework, await makeStore(kind), options)
        try {
          await fn(app, { framework, kind })
        } finally {
          await app.close()
        }
      })
    }
  }
}

module.exports = { FRAMEWORKS, STORES, env, makeStore, key, serve, request, post, problem, eachApp, FIXTURES }
