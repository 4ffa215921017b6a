'use strict'
// Where idempo's own log lines go: the core's events (a store error under
// onStoreError 'failOpen', a completion that could not be stored, a lost lease, the
// one-time scope warning). By default the console, warnings and errors only; any logger
// with error/warn/info/debug methods (pino, fastify.log, winston) can take them.
const native = require('./native')
const { ConfigurationError } = require('./errors')

const LEVELS = { error: 40, warn: 30, info: 20, debug: 10 }

function methodFor (n) {
  return n >= 40 ? 'error' : n >= 30 ? 'warn' : n >= 20 ? 'info' : 'debug'
}

/**
 * Send idempo's log lines at `level` and above to `logger`; `null` silences them.
 * @param {{error: Function, warn: Function, info?: Function, debug?: Function} | null} logger
 * @param {{level?: 'error' | 'warn' | 'info' | 'debug'}} [options]
 */
function setLogger (logger, { level = 'warn' } = {}) {
  if (logger === null) return native.setLogSink(0, null)
  if (!Object.hasOwn(LEVELS, level)) {
    throw new ConfigurationError(`level must be 'error', 'warn', 'info' or 'debug', not ${JSON.stringify(level)}`)
  }
  const needed = Object.keys(LEVELS).filter(name => LEVELS[name] >= LEVELS[level])
  const missing = needed.filter(name => typeof logger?.[name] !== 'function')
  if (missing.length) {
    throw new ConfigurationError(`the logger needs a ${missing.join(', ')} method for level '${level}'`)
  }
  native.setLogSink(LEVELS[level], (n, message) => {
    // A logger that throws must not take the process down from a runtime callback.
    try {
      logger[methodFor(n)](`idempo: ${message}`)
    } catch {}
  })
}

setLogger(console)

module.exports = { setLogger }
