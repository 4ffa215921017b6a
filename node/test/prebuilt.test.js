'use strict'
// The napi-rs layout, from `make dist`'s tarballs (dist/, which `make test` makes first):
// the main package and this platform's prebuilt addon package install into a new project
// on a PATH without cargo or rustc, nothing is built, and Express and Fastify apps serve a
// keyed request and replay it through `require` and `import`, with the TypeScript types
// resolving (scripts/dist-node-smoke.sh, which the release workflow runs on every platform).
const { test } = require('node:test')
const assert = require('node:assert/strict')
const { execFileSync } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { platformPackage } = require('../lib/platform')
const { releasedPackages } = require('../scripts/dist')

const pkg = path.join(__dirname, '..')
const repo = path.join(pkg, '..')
const dist = process.env.IDEMPO_DIST ? path.resolve(process.env.IDEMPO_DIST) : path.join(repo, 'dist')

/** The one tarball in dist/ whose name matches. */
function made (pattern) {
  const found = fs.existsSync(dist) ? fs.readdirSync(dist).filter(f => pattern.test(f)) : []
  assert.equal(found.length, 1, `${dist} holds ${JSON.stringify(found)} for ${pattern}: run \`make dist\` first`)
  return path.join(dist, found[0])
}

/** A file's bytes from inside a tarball. */
function fromTarball (tarball, file) {
  return execFileSync('tar', ['xzOf', tarball, file], { maxBuffer: 64 << 20 })
}

test('the main and prebuilt tarballs install without cargo and serve through Express and Fastify', { timeout: 10 * 60 * 1000 }, () => {
  const out = execFileSync(path.join(repo, 'scripts', 'dist-node-smoke.sh'), [dist], { encoding: 'utf8', maxBuffer: 16 << 20 })
  assert.match(out, /"expressRuns":1/)
  assert.match(out, /"fastifyRuns":1/)
  assert.match(out, new RegExp(`dist-node-smoke: ${platformPackage().name} serves`))
})

test('the platform package holds a stripped addon for glibc 2.17 and says where it runs', () => {
  const { name, file } = platformPackage()
  const tarball = made(new RegExp(`^${name}-\\d+\\.\\d+\\.\\d+\\.tgz$`))
  const manifest = JSON.parse(fromTarball(tarball, 'package/package.json'))
  assert.deepEqual([manifest.os, manifest.cpu, manifest.libc], [['linux'], ['x64'], ['glibc']])
  assert.equal(manifest.main, file)
  const addon = fromTarball(tarball, `package/${file}`)
  const glibc = [...new Set(addon.toString('latin1').match(/GLIBC_[0-9.]+(?=\0)/g))]
    .map(v => v.slice(6).split('.').map(Number))
    .sort((a, b) => a[0] - b[0] || a[1] - b[1])
  assert.ok(glibc.length > 0)
  const [major, minor] = glibc.at(-1)
  assert.ok(major < 2 || (major === 2 && minor <= 17), `the newest glibc symbol it needs: ${major}.${minor}`)
  assert.equal(addon.indexOf('.symtab'), -1, 'the addon is not stripped')
})

test('the main package lists this platform\'s package; a release lists every target\'s', () => {
  const main = made(/^idempo-\d+\.\d+\.\d+\.tgz$/)
  const manifest = JSON.parse(fromTarball(main, 'package/package.json'))
  assert.deepEqual(manifest.optionalDependencies, { [platformPackage().name]: manifest.version })
  const released = releasedPackages(JSON.parse(fs.readFileSync(path.join(pkg, 'package.json'), 'utf8')))
  assert.ok(released.includes(platformPackage().name))
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'idempo-release-'))
  try {
    execFileSync(process.execPath, [path.join(pkg, 'scripts', 'dist.js'), scratch, '--addon', path.join(pkg, 'idempo.node'), '--all-targets'])
    const releaseManifest = JSON.parse(fromTarball(path.join(scratch, `idempo-${manifest.version}.tgz`), 'package/package.json'))
    assert.deepEqual(releaseManifest.optionalDependencies, Object.fromEntries(released.map(name => [name, manifest.version])))
  } finally {
    fs.rmSync(scratch, { recursive: true, force: true })
  }
  // The release workflow builds a platform package for each of napi.targets.
  const workflow = fs.readFileSync(path.join(repo, '.github', 'workflows', 'release.yml'), 'utf8')
  const built = [...workflow.matchAll(/^\s+- \{ target: ([\w-]+), runner:/gm)].map(m => m[1])
  assert.deepEqual(built, JSON.parse(fs.readFileSync(path.join(pkg, 'package.json'), 'utf8')).napi.targets)
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
