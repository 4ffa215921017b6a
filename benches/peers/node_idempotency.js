'use strict'
// What the Express and Fastify peer apps share: loading the peer libraries installed by
// benches/peers/install.sh, and @node-idempotency/core over its memory or Redis adapter,
// with the HTTP status each of its errors gets.
const path = require('node:path')

const peers = path.join(process.env.IDEMPO_PEERS_DIR || '/var/tmp/idempo-peers', 'node')

/** A peer library from the scratch directory install.sh fills. */
const peer = (name) => require(require.resolve(name, { paths: [peers] }))

/** `{ idem, IdempotencyError, statusOf }` for `store` ('memory' or a redis:// URL). */
async function nodeIdempotency (store) {
  const { Idempotency, IdempotencyError, IdempotencyErrorCodes } = peer('@node-idempotency/core')
  let adapter
  if (store === 'memory') {
    adapter = new (peer('@node-idempotency/storage-adapter-memory').MemoryStorageAdapter)()
  } else {
    adapter = new (peer('@node-idempotency/storage-adapter-redis').RedisStorageAdapter)({ url: store })
    await adapter.connect()
  }
  const statusOf = (err) => ({
    [IdempotencyErrorCodes.REQUEST_IN_PROGRESS]: 409,
    [IdempotencyErrorCodes.IDEMPOTENCY_FINGERPRINT_MISSMATCH]: 422
  })[err.code] || 400
  return { idem: new Idempotency(adapter, {}), IdempotencyError, statusOf }
}

module.exports = { peer, nodeIdempotency }
