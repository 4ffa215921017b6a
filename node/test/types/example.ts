// Compiled with `tsc --noEmit --strict` by test/types.test.js: every entry point, typed.
import express from 'express'
import Fastify from 'fastify'
import { MemoryStore, RedisStore, PostgresStore, StoreUnavailableError, ConfigurationError, setLogger, storeFromUrl, defaults, COUNTERS, type Store, type EncryptionKeys } from 'idempo'
import { idempotency, verify } from 'idempo/express'
import idempotencyPlugin from 'idempo/fastify'

async function main (): Promise<void> {
  setLogger(console, { level: 'info' })
  setLogger(null)
  let store: Store = new MemoryStore({ maxEntries: 10_000 })
  try {
    store = await RedisStore.connect('redis://127.0.0.1:6379', { prefix: 'app:' })
  } catch (err) {
    if (err instanceof StoreUnavailableError) console.warn(err.code, err.message)
  }
  const pg: PostgresStore = await PostgresStore.connect('postgres://127.0.0.1/app', { table: 'keys', encryptionKeys: process.env.IDEMPO_ENCRYPTION_KEYS ?? '' })
  const keys: EncryptionKeys = [['k2', Buffer.alloc(32)], ['k1', new Uint8Array(32)]]
  await RedisStore.cluster(['redis://127.0.0.1:7000'], { encryptionKeys: keys, caFile: 'ca.pem' })
  const removed: number = await pg.sweep(500)

  const fromUrl: Store = await storeFromUrl('memory', { maxEntries: 100 })
  const leaseTtl: number = defaults().leaseTtl
  const first: string = COUNTERS[0]

  const app = express()
  app.use(express.json({ verify }))
  const mw = idempotency({
    store,
    required: true,
    leaseTtl: 30_000,
    onStoreError: 'failClosed',
    storeStatus: (status) => status < 500,
    scope: (req) => String(req.headers['x-tenant'] ?? '')
  })
  app.use(mw)
  app.post('/charges', (req, res) => { res.status(201).json({ id: 'ch_1' }) })
  const executed: number = mw.stats().executed
  const ttl: number = mw.options().ttl

  const fastify = Fastify()
  await fastify.register(idempotencyPlugin, { store, scope: (request) => request.ip, replayHeaders: ['content-type'] })
  fastify.post('/orders', async () => ({ ok: true }))
  const replayed: number = fastify.idempotency.stats().replayed
  const e: ConfigurationError | undefined = undefined
  console.log(removed, executed, replayed, e, fromUrl, leaseTtl, first, ttl)
}

void main()
