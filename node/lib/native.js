'use strict'
// Loads the compiled addon: idempo.node, built by scripts/build-native.js at install time
// (or `npm run build:debug` in a checkout).
const path = require('node:path')

let native
try {
  native = require(path.join(__dirname, '..', 'idempo.node'))
} catch (err) {
  throw new Error(
    'idempo: the native addon (idempo.node) is missing or cannot load. It is built when the ' +
    'package is installed, which needs Rust (cargo): install it from https://rustup.rs and ' +
    `run \`npm rebuild idempo\`. Cause: ${err.message}`, { cause: err })
}

module.exports = native
