// Run in a new project by scripts/dist-node-smoke.sh: the ESM entry points load.
import assert from 'node:assert/strict'
import { MemoryStore, ConfigurationError } from 'idempo'
import { idempotency } from 'idempo/express'
import plugin from 'idempo/fastify'

const mw = idempotency({ store: new MemoryStore() })
const kinds = [typeof mw, typeof mw.stats, typeof plugin, typeof ConfigurationError]
console.log(JSON.stringify(kinds))
assert.deepEqual(kinds, ['function', 'function', 'function', 'function'])
