'use strict'
// The rule scenarios of tests/conformance/scenarios, run against the Express and Fastify
// fixture apps served in this process, on every store. The same files (one statement of
// each HTTP-visible rule) are run against every integration's app by the conformance
// driver and by the Python suite; this is the JavaScript runner's in-process use. One test
// per scenario; its six cells (framework × store) run side by side, each against an app
// of its own.
const { test } = require('node:test')
const assert = require('node:assert/strict')
const path = require('node:path')
const { FRAMEWORKS, STORES, makeStore, serve, FIXTURES } = require('./helpers')
const { loadScenarios, runScenario, NotApplicable } = require(path.join(__dirname, '..', '..', 'tests', 'conformance', 'runner.js'))
const { optionsFromEnv } = require(path.join(FIXTURES, 'common.js'))

// The fixture variables the conformance matrix starts every app with.
const MATRIX_SETTINGS = { IDEMPO_REQUIRED: '0', IDEMPO_TTL_MS: '5000' }
const SCENARIOS = loadScenarios()

async function outcome (name, framework, kind) {
  const scenario = SCENARIOS[name]
  const app = await serve(framework, await makeStore(kind), optionsFromEnv({ ...MATRIX_SETTINGS, ...scenario.settings }))
  try {
    await runScenario(app.base, scenario)
  } catch (err) {
    if (err instanceof NotApplicable) {
      // Only a refusal by the server itself (no X-Pid: the app never saw the request).
      console.log(`${name} on ${framework}/${kind}: n/a, ${err.message}`)
      return null
    }
    return `${framework}/${kind}: ${err.message}`
  } finally {
    await app.close()
  }
  return null
}

for (const name of Object.keys(SCENARIOS)) {
  test(`${name} (${SCENARIOS[name].rules})`, async () => {
    const cells = FRAMEWORKS.flatMap(framework => STORES.map(kind => outcome(name, framework, kind)))
    const failures = (await Promise.all(cells)).filter(Boolean)
    assert.deepEqual(failures, [], failures.join('\n'))
  })
}
