'use strict'
// Builds the native addon with cargo and copies it to ./idempo.node.
// Run at install time (`npm install`), or with --debug in a checkout for tests.
const { execFileSync } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')

const pkg = path.join(__dirname, '..')
// A prebuilt addon for this platform (the published package's optional dependency) makes
// the build unnecessary: lib/native.js loads it first.
const prebuilt = require('../lib/platform').platformPackage().name
if (!process.env.IDEMPO_NATIVE_PROFILE && !process.argv.includes('--debug')) {
  try {
    require.resolve(`${prebuilt}/package.json`, { paths: [pkg] })
    console.log(`idempo: using the prebuilt addon of ${prebuilt}`)
    process.exit(0)
  } catch {}
}
// IDEMPO_NATIVE_PROFILE=debug (set by the repository's Makefile) builds a debug addon.
const debug = process.argv.includes('--debug') || process.env.IDEMPO_NATIVE_PROFILE === 'debug'
// Installed from a tarball, the Rust sources are in ./native (see vendor-rust.js); in
// the repository they are one level up.
const vendored = path.join(pkg, 'native', 'Cargo.toml')
const manifest = fs.existsSync(vendored) ? vendored : path.join(pkg, '..', 'bindings', 'node', 'Cargo.toml')
if (!fs.existsSync(manifest)) {
  console.error('idempo: cannot find the Rust sources to build the native addon')
  process.exit(1)
}
const args = ['build', '--manifest-path', manifest, '-p', 'idempo-node', '--message-format', 'json-render-diagnostics']
if (!debug) args.push('--release')
let out
try {
  out = execFileSync('cargo', args, { cwd: pkg, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 64 << 20 })
} catch (err) {
  console.error(err.code === 'ENOENT'
    ? 'idempo: building the native addon needs Rust (cargo): install it from https://rustup.rs, then `npm rebuild idempo`'
    : 'idempo: building the native addon failed (cargo output above)')
  process.exit(1)
}
let artifact
for (const line of out.split('\n')) {
  if (!line.startsWith('{')) continue
  const msg = JSON.parse(line)
  if (msg.reason === 'compiler-artifact' && msg.target && msg.target.name === 'idempo_node') {
    artifact = msg.filenames.find(f => /\.(so|dylib|dll)$/.test(f))
  }
}
if (!artifact) {
  console.error('idempo: cargo did not report the addon it built')
  process.exit(1)
}
fs.copyFileSync(artifact, path.join(pkg, 'idempo.node'))
