'use strict'
// The Express fixture app run as WORKERS node:cluster workers sharing one port.
const cluster = require('node:cluster')
const path = require('node:path')

if (cluster.isPrimary) {
  const workers = Number(process.env.WORKERS || 2)
  for (let i = 0; i < workers; i++) cluster.fork()
  process.on('SIGTERM', () => { for (const w of Object.values(cluster.workers)) w.kill(); process.exit(0) })
} else {
  require(path.join(__dirname, '..', '..', 'tests', 'fixtures', 'node', 'express-app.js')).main()
}
