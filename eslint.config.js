'use strict'
// `make lint` runs ESLint (installed in node/node_modules) over every JavaScript file of
// the repository: the npm package, its tests, the Node fixture apps, the conformance
// runner and the Node benchmarks.
const js = require('./node/node_modules/@eslint/js')
const globals = require('./node/node_modules/globals')

module.exports = [
  { ignores: ['**/node_modules/**', 'node/native/**', 'target/**', '.venv/**', '.venv-bench/**', 'dist/**'] },
  js.configs.recommended,
  {
    files: ['**/*.js'],
    languageOptions: { ecmaVersion: 2023, sourceType: 'commonjs', globals: { ...globals.node } }
  },
  {
    files: ['**/*.mjs'],
    languageOptions: { ecmaVersion: 2023, sourceType: 'module', globals: { ...globals.node } }
  },
  {
    rules: {
      // An unused `next` or `res` keeps a handler's signature readable.
      'no-unused-vars': ['error', { args: 'none', caughtErrors: 'none' }],
      'no-empty': ['error', { allowEmptyCatch: true }]
    }
  }
]
