'use strict'
// `tsc --noEmit --strict` passes on a TypeScript example using every entry point, and the
// ESM entry points load.
const { test } = require('node:test')
const assert = require('node:assert/strict')
const { execFileSync } = require('node:child_process')
const path = require('node:path')

test('tsc --strict accepts the example using every entry point', () => {
  const tsc = path.join(__dirname, '..', 'node_modules', 'typescript', 'bin', 'tsc')
  try {
    execFileSync(process.execPath, [tsc, '-p', path.join(__dirname, 'types', 'tsconfig.json')], { encoding: 'utf8' })
  } catch (err) {
    assert.fail(`tsc failed:\n${err.stdout}${err.stderr}`)
  }
})

test('ESM import works for every entry point', async () => {
  const root = await import('../index.mjs')
  const express = await import('../express.mjs')
  const fastify = await import('../fastify.mjs')
  assert.equal(typeof root.MemoryStore, 'function')
  assert.equal(typeof root.setLogger, 'function')
  assert.equal(typeof express.idempotency, 'function')
  assert.equal(typeof express.default, 'function')
  assert.equal(typeof fastify.default, 'function')
  const mw = express.idempotency({ store: new root.MemoryStore() })
  assert.equal(mw.stats().executed, 0)
})
