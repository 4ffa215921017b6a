'use strict'
// `npm pack` makes a tarball that installs into another project, building the addon with
// cargo from the Rust sources it carries; every entry point then works there.
const { test } = require('node:test')
const assert = require('node:assert/strict')
const { execFileSync } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')

test('the npm pack tarball installs and works in another project', { timeout: 20 * 60 * 1000 }, () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'idempo-pack-'))
  try {
    const pkg = path.join(__dirname, '..')
    const npm = (args, cwd) => execFileSync('npm', args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
    const tarball = npm(['pack', '--silent', '--pack-destination', dir], pkg).trim().split('\n').pop()
    assert.ok(!fs.existsSync(path.join(pkg, 'native')), 'postpack removed the vendored sources')
    const listing = execFileSync('tar', ['tzf', path.join(dir, tarball)], { encoding: 'utf8' })
    assert.match(listing, /package\/native\/core\/src\/engine\.rs/)
    assert.doesNotMatch(listing, /package\/test\/|idempo\.node/)
    const project = path.join(dir, 'project')
    fs.mkdirSync(project)
    fs.writeFileSync(path.join(project, 'package.json'), '{"name":"consumer","version":"1.0.0","private":true}')
    npm(['install', '--no-audit', '--no-fund', '--loglevel=error', path.join(dir, tarball)], project)
    const probe = `
      const http = require('node:http')
      const { MemoryStore, ConfigurationError } = require('idempo')
      const { idempotency } = require('idempo/express')
      require('idempo/fastify')
      const mw = idempotency({ store: new MemoryStore(), required: true })
      let runs = 0
      const server = http.createServer((req, res) => mw(req, res, () => { runs++; res.statusCode = 201; res.end('made') }))
      server.listen(0, '127.0.0.1', async () => {
        const url = 'http://127.0.0.1:' + server.address().port + '/x'
        const a = await fetch(url, { method: 'POST', headers: { 'idempotency-key': 'k' } })
        const b = await fetch(url, { method: 'POST', headers: { 'idempotency-key': 'k' } })
        const c = await fetch(url, { method: 'POST' })
        console.log(JSON.stringify([a.status, b.headers.get('idempotency-replayed'), (await c.json()).code, runs, typeof ConfigurationError]))
        server.close()
      })`
    const out = execFileSync(process.execPath, ['-e', probe], { cwd: project, encoding: 'utf8' })
    assert.deepEqual(JSON.parse(out), [201, 'true', 'missing-key', 1, 'function'])
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
})
