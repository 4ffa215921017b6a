'use strict'
// Run in a new project by scripts/dist-node-smoke.sh: an Express app and a Fastify app,
// each behind idempo, each sent the same keyed POST twice. Prints what the client saw, how
// often each handler ran and which addon loaded, as JSON, and fails unless each answered
// 201 and then replayed it with one execution, from the prebuilt addon of the platform
// package named on the command line (`idempo-linux-x64-gnu` holds `idempo.linux-x64-gnu.node`).
const assert = require('node:assert/strict')
const http = require('node:http')
const path = require('node:path')
const express = require('express')
const Fastify = require('fastify')
const { MemoryStore } = require('idempo')
const { idempotency } = require('idempo/express')

async function twice (url) {
  const post = () => fetch(url, { method: 'POST', headers: { 'idempotency-key': 'k1', 'content-type': 'text/plain' }, body: 'hello' })
  const a = await post()
  const first = [a.status, a.headers.get('idempotency-replayed'), await a.text()]
  const b = await post()
  return [...first, b.status, b.headers.get('idempotency-replayed'), await b.text()]
}

async function main () {
  let expressRuns = 0
  const app = express()
  app.use(idempotency({ store: new MemoryStore() }))
  app.post('/made', (req, res) => { expressRuns++; res.status(201).send('made ' + expressRuns) })
  const server = http.createServer(app).listen(0, '127.0.0.1')
  await new Promise(resolve => server.once('listening', resolve))
  const viaExpress = await twice('http://127.0.0.1:' + server.address().port + '/made')
  server.close()

  let fastifyRuns = 0
  const fastify = Fastify()
  await fastify.register(require('idempo/fastify'), { store: new MemoryStore() })
  fastify.post('/made', async (request, reply) => { fastifyRuns++; reply.code(201); return 'made ' + fastifyRuns })
  const address = await fastify.listen({ port: 0, host: '127.0.0.1' })
  const viaFastify = await twice(address + '/made')
  await fastify.close()

  const addons = Object.keys(require.cache).filter(f => f.endsWith('.node')).map(f => path.relative(process.cwd(), f))
  const seen = { viaExpress, expressRuns, viaFastify, fastifyRuns, addons }
  console.log(JSON.stringify(seen))
  const name = process.argv[2]
  const file = name.replace(/^idempo-/, 'idempo.') + '.node'
  const once = [201, null, 'made 1', 201, 'true', 'made 1']
  assert.deepEqual(seen, { viaExpress: once, expressRuns: 1, viaFastify: once, fastifyRuns: 1, addons: [path.join('node_modules', name, file)] })
}

main().catch(err => { console.error(err); process.exitCode = 1 })
