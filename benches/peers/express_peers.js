'use strict'
// The Node peer apps for `make bench`: the fixture's /echo, /counter and /reset endpoints
// on idempo's own Express, behind a peer library installed by benches/peers/install.sh.
//
//   PEER=node-idempotency|express-idempotency|idempo IDEMPO_STORE=memory|redis://… PORT=… node express_peers.js
//
// Both peers need the parsed JSON body (their fingerprints hash it), so /echo parses it
// with express.json() and answers it back; IDEMPO_BARE=1 is the same app without the peer.
// PEER=idempo puts idempo's own middleware on this same app (after the parser, with its
// `verify` hook), so idempo's ratio to bare and the peer's are to one bare app.
const path = require('node:path')
const root = path.join(__dirname, '..', '..')
const express = require(require.resolve('express', { paths: [path.join(root, 'node')] }))
const { peer, nodeIdempotency } = require('./node_idempotency')

// @node-idempotency/core, wired into Express as its README describes (onRequest before
// the handler, onResponse with the handler's answer before it is sent).
async function nodeIdempotencyMiddleware (store) {
  const { idem, IdempotencyError, statusOf } = await nodeIdempotency(store)
  return async (req, res, next) => {
    const params = { method: req.method, headers: req.headers, path: req.path, body: req.body }
    let cached
    try {
      cached = await idem.onRequest(params)
    } catch (err) {
      if (err instanceof IdempotencyError) return res.status(statusOf(err)).json({ message: err.message })
      return next(err)
    }
    if (cached) return res.status(cached.additional.status).json(cached.body)
    const json = res.json.bind(res)
    res.json = (body) => {
      idem.onResponse(params, { body, additional: { status: res.statusCode } }).then(() => json(body), next)
      return res
    }
    next()
  }
}

// express-idempotency (memory only): the handler asks whether the middleware answered.
function expressIdempotency (store) {
  if (store !== 'memory') throw new Error('express-idempotency has a memory store only')
  const lib = peer('express-idempotency')
  const mw = lib.idempotency()
  const service = lib.getSharedIdempotencyService()
  return { mw, isHit: (req) => service.isHit(req) }
}

async function main () {
  const store = process.env.IDEMPO_STORE || 'memory'
  const bare = process.env.IDEMPO_BARE === '1'
  let counter = 0
  let isHit = () => false
  const app = express()
  // As the fixture app does, so the two bare apps do the same work.
  app.use((req, res, next) => { res.setHeader('X-Pid', String(process.pid)); next() })
  app.get('/counter', (req, res) => res.json({ count: counter }))
  app.post('/reset', (req, res) => { counter = 0; res.status(204).end() })
  const chain = [express.json()]
  if (!bare && process.env.PEER === 'node-idempotency') chain.push(await nodeIdempotencyMiddleware(store))
  else if (!bare && process.env.PEER === 'express-idempotency') {
    const peerMw = expressIdempotency(store)
    chain.push(peerMw.mw)
    isHit = peerMw.isHit
  } else if (!bare && process.env.PEER === 'idempo') {
    const { storeFromUrl } = require(path.join(root, 'node'))
    const { idempotency, verify } = require(path.join(root, 'node', 'express'))
    chain[0] = express.json({ verify })
    chain.push(idempotency({ store: await storeFromUrl(store) }))
  } else if (!bare) throw new Error(`PEER=${process.env.PEER}: expected node-idempotency, express-idempotency or idempo`)
  app.post('/echo', ...chain, (req, res) => {
    if (isHit(req)) return
    counter++
    res.status(201).json(req.body)
  })
  app.use((err, req, res, next) => { res.status(500).type('text/plain').send(`error: ${err.message}`) })
  const server = app.listen(Number(process.env.PORT || 8080), '127.0.0.1')
  server.on('error', (err) => { console.error(err.message); process.exit(1) })
}

main().catch(err => { console.error(err.message); process.exit(1) })
