'use strict'
// Which prebuilt addon package serves this machine: `idempo-<platform>-<arch>[-<abi>]`,
// the napi-rs naming (`idempo-linux-x64-gnu`, `idempo-darwin-arm64`, …), and the file
// inside it. Shared by the loader (lib/native.js), the install script and `make dist`.
const fs = require('node:fs')

/**
 * Whether this Linux runs musl rather than glibc: what `ldd` is (a glibc script, or musl's
 * loader), else Node's own report of the libc it runs on (slower: it gathers the whole
 * report).
 */
function isMusl () {
  if (process.platform !== 'linux') return false
  try {
    return fs.readFileSync('/usr/bin/ldd', 'latin1').includes('musl')
  } catch {}
  const report = typeof process.report?.getReport === 'function' ? process.report.getReport() : null
  return !(report && report.header && report.header.glibcVersionRuntime)
}

/** The platform triple of this process, as npm's `os`/`cpu`/`libc` fields and napi-rs name it. */
function triple () {
  const abi = process.platform === 'linux' ? (isMusl() ? '-musl' : '-gnu') : process.platform === 'win32' ? '-msvc' : ''
  return `${process.platform}-${process.arch}${abi}`
}

/** The package holding this machine's prebuilt addon, and the addon's file name in it. */
function platformPackage () {
  const t = triple()
  return { name: `idempo-${t}`, file: `idempo.${t}.node` }
}

module.exports = { platformPackage, triple }
