// Checked with `tsc --strict` in a new project by scripts/dist-node-smoke.sh: the
// package's types resolve through its `exports`.
import { MemoryStore, type IdempotencyStats } from 'idempo'
import { idempotency } from 'idempo/express'
import idempotencyPlugin from 'idempo/fastify'
import Fastify from 'fastify'

const mw = idempotency({ store: new MemoryStore(), ttl: 60_000 })
const stats: IdempotencyStats = mw.stats()
const fastify = Fastify()
fastify.register(idempotencyPlugin, { store: new MemoryStore() })
export { stats }
