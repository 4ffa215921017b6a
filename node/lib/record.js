'use strict'
// Recording a response for a lease by wrapping the Node response object: writeHead,
// write and end (the way expressjs/compression does), so streaming keeps working: every
// chunk goes out as it is written, while the lease keeps a copy. Used by the Express
// middleware and the Fastify plugin alike. A handler that never ends its response keeps
// the key until maxLease (the lease's finalizer leaves it to the core's renewal).
const { errorMonitor } = require('node:events')
const { flatHeaders, toBuffer } = require('./engine')

/** Record `res` in `lease`; `verdict(status)` is what the user's storeStatus says. */
function record (res, lease, verdict) {
  const { writeHead, write, end } = res
  let started = false
  const start = (status, headers) => {
    if (!started) {
      started = true
      lease.start(status, headers, verdict(status))
    }
  }

  res.writeHead = function (statusCode, reason, headers) {
    if (lease.active && !started) {
      // writeHead's own headers win over setHeader's; a name it repeats keeps every value.
      const extra = typeof reason === 'string' ? headers : reason
      const merged = { ...this.getHeaders() }
      const own = new Set()
      const add = (name, value) => {
        const k = String(name).toLowerCase()
        merged[k] = own.has(k) ? [].concat(merged[k], value) : value
        own.add(k)
      }
      if (Array.isArray(extra)) {
        const flat = Array.isArray(extra[0]) ? extra.flat() : extra
        for (let i = 0; i + 1 < flat.length; i += 2) add(flat[i], flat[i + 1])
      } else if (extra) {
        for (const k of Object.keys(extra)) add(k, extra[k])
      }
      start(statusCode, flatHeaders(merged))
    }
    return writeHead.apply(this, arguments)
  }

  res.write = function (chunk, encoding, cb) {
    if (lease.active) {
      start(this.statusCode, flatHeaders(this.getHeaders()))
      const buf = toBuffer(chunk, encoding)
      if (buf) lease.push(buf)
    }
    return write.apply(this, arguments)
  }

  res.end = function (chunk, encoding, cb) {
    if (!lease.active) return end.apply(this, arguments)
    start(this.statusCode, flatHeaders(this.getHeaders()))
    const buf = typeof chunk === 'function' ? null : toBuffer(chunk, encoding)
    if (buf) lease.push(buf)
    const args = arguments
    const stored = lease.complete()
    if (stored instanceof Promise) {
      // The final chunk waits for the store, so an immediate retry sees the replay.
      stored.then(() => end.apply(this, args), () => end.apply(this, args))
      return this
    }
    return end.apply(this, args)
  }

  // The client went away (B11). That never gives the key back: the handler's work stands.
  // Node does not stop it, so what it still writes is recorded and its res.end() stores
  // the response, which a retry then replays.
  let gone = false
  res.on('close', () => { gone = lease.active })
  // A stream piped into the response (Fastify's reply.send(stream), pipe, pipeline) is
  // destroyed or unpiped once the client left, and can no longer end the response: it is
  // stored without its body (B12). An error of that stream with the client still there is
  // an error of the body: released, so a retry runs again.
  const cut = () => { if (gone && lease.active) lease.complete(true) }
  res.on('pipe', (src) => {
    // errorMonitor: seen before the app's own handlers, and an error nobody handles still throws.
    src.once(errorMonitor, () => { if (lease.active) gone ? lease.complete(true) : lease.release() })
    src.once('close', cut)
  })
  res.on('unpipe', cut)
}

module.exports = { record }
