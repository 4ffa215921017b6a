'use strict'
// Loads the compiled addon: first the prebuilt one of this platform's package
// (`idempo-linux-x64-gnu`, …, an optional dependency of the published package; see
// lib/platform.js), then ./idempo.node, built from the Rust sources by
// scripts/build-native.js at install time (or `npm run build:debug` in a checkout).
const path = require('node:path')
const { platformPackage, triple } = require('./platform')

function load () {
  const { name } = platformPackage()
  const tried = []
  try {
    return require(name)
  } catch (err) {
    // Not installed is the usual case of a source build; anything else is worth saying.
    const missing = err.code === 'MODULE_NOT_FOUND' && String(err.message).includes(`'${name}'`)
    tried.push(missing ? `${name}: not installed` : `${name}: ${err.message}`)
  }
  try {
    return require(path.join(__dirname, '..', 'idempo.node'))
  } catch (err) {
    tried.push(`idempo.node (a build from source): ${err.message}`)
  }
  throw new Error(
    `idempo: no native addon loads on this machine (${triple()}). Install the prebuilt one ` +
    `(npm install ${name}), or build it from source, which needs Rust (cargo): install it from ` +
    `https://rustup.rs and run \`npm rebuild idempo\`. Tried: ${tried.join('; ')}`)
}

module.exports = load()
