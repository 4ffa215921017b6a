'use strict'
// The napi-rs layout (scripts/dist.js): the main package and this platform's prebuilt addon
// package install into a new project on a PATH without cargo or rustc, the prebuilt addon
// is what loads (nothing is built), and Express and Fastify apps serve a keyed request and
// replay it, through `require` and `import`, with the TypeScript types resolving.
const { test } = require('node:test')
const assert = require('node:assert/strict')
const { execFileSync } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { platformPackage } = require('../lib/platform')

const pkg = path.join(__dirname, '..')

/** PATH without the directories that hold cargo or rustc. */
function pathWithoutRust () {
  const dirs = process.env.PATH.split(path.delimiter)
  return dirs.filter(d => !['cargo', 'rustc'].some(tool => fs.existsSync(path.join(d, tool)))).join(path.delimiter)
}

const SERVE = `
  const http = require('node:http')
  const express = require('express')
  const Fastify = require('fastify')
  const { MemoryStore } = require('idempo')
  const { idempotency } = require('idempo/express')
  async function twice (url) {
    const post = () => fetch(url, { method: 'POST', headers: { 'idempotency-key': 'k1', 'content-type': 'text/plain' }, body: 'hello' })
    const a = await post()
    const b = await post()
    return [a.status, await a.text(), b.status, b.headers.get('idempotency-replayed'), await b.text()]
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
    const addons = Object.keys(require.cache).filter(f => f.endsWith('.node')).map(f => require('node:path').relative(process.cwd(), f))
    console.log(JSON.stringify({ viaExpress, expressRuns, viaFastify, fastifyRuns, addons }))
  }
  main()`

const IMPORT = `
  import { MemoryStore, ConfigurationError } from 'idempo'
  import { idempotency } from 'idempo/express'
  import plugin from 'idempo/fastify'
  const mw = idempotency({ store: new MemoryStore() })
  console.log(JSON.stringify([typeof mw, typeof mw.stats, typeof plugin, typeof ConfigurationError]))`

const TYPES = `
import { MemoryStore, type IdempotencyStats } from 'idempo'
import { idempotency } from 'idempo/express'
import idempotencyPlugin from 'idempo/fastify'
import Fastify from 'fastify'
const mw = idempotency({ store: new MemoryStore(), ttl: 60_000 })
const stats: IdempotencyStats = mw.stats()
const fastify = Fastify()
fastify.register(idempotencyPlugin, { store: new MemoryStore() })
export { stats }
`

test('the main and prebuilt tarballs install without cargo and serve through Express and Fastify', { timeout: 10 * 60 * 1000 }, () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'idempo-prebuilt-'))
  try {
    const addon = path.join(pkg, 'idempo.node')
    const made = execFileSync(process.execPath, [path.join(pkg, 'scripts', 'dist.js'), dir, '--addon', addon], { encoding: 'utf8' })
    const [main, platform] = made.trim().split('\n')
    assert.match(path.basename(main), /^idempo-\d+\.\d+\.\d+\.tgz$/)
    assert.equal(path.basename(platform).replace(/-\d+\.\d+\.\d+\.tgz$/, ''), platformPackage().name)

    const project = path.join(dir, 'project')
    fs.mkdirSync(project)
    fs.writeFileSync(path.join(project, 'package.json'), '{"name":"consumer","version":"1.0.0","private":true}')
    const env = { ...process.env, PATH: pathWithoutRust() }
    delete env.IDEMPO_NATIVE_PROFILE // set by the repository's Makefile: it would ask for a build
    assert.throws(() => execFileSync('cargo', ['--version'], { env, stdio: 'ignore' }), 'cargo is not on this PATH')
    const installed = execFileSync('npm', ['install', '--no-audit', '--no-fund', '--foreground-scripts', '--loglevel=error',
      main, platform, 'express@5', 'fastify@5', '@types/node@20'], { cwd: project, env, encoding: 'utf8' })
    assert.match(installed, new RegExp(`using the prebuilt addon of ${platformPackage().name}`))
    assert.ok(!fs.existsSync(path.join(project, 'node_modules', 'idempo', 'idempo.node')), 'nothing was built')

    const served = JSON.parse(execFileSync(process.execPath, ['-e', SERVE], { cwd: project, env, encoding: 'utf8' }))
    assert.deepEqual(served.viaExpress, [201, 'made 1', 201, 'true', 'made 1'])
    assert.deepEqual(served.viaFastify, [201, 'made 1', 201, 'true', 'made 1'])
    assert.equal(served.expressRuns, 1)
    assert.equal(served.fastifyRuns, 1)
    const { name, file } = platformPackage()
    assert.deepEqual(served.addons, [path.join('node_modules', name, file)])

    const imported = execFileSync(process.execPath, ['--input-type=module', '-e', IMPORT], { cwd: project, env, encoding: 'utf8' })
    assert.deepEqual(JSON.parse(imported), ['function', 'function', 'function', 'function'])

    fs.writeFileSync(path.join(project, 'check.ts'), TYPES)
    const tsc = path.join(pkg, 'node_modules', 'typescript', 'bin', 'tsc')
    execFileSync(process.execPath, [tsc, '--noEmit', '--strict', '--module', 'node16', '--moduleResolution', 'node16',
      '--target', 'ES2022', '--types', 'node', 'check.ts'], { cwd: project, env, encoding: 'utf8' })
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
})

test('with neither a prebuilt package nor a build, loading says what to install', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'idempo-noaddon-'))
  try {
    fs.mkdirSync(path.join(dir, 'lib'))
    for (const f of ['native.js', 'platform.js']) fs.copyFileSync(path.join(pkg, 'lib', f), path.join(dir, 'lib', f))
    const { name } = platformPackage()
    assert.throws(() => require(path.join(dir, 'lib', 'native.js')), (err) => {
      assert.match(err.message, new RegExp(`npm install ${name}`))
      assert.match(err.message, /https:\/\/rustup\.rs/)
      assert.match(err.message, new RegExp(`${name}: not installed`))
      return true
    })
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
})
