'use strict'
// Recording a response for a lease by wrapping the Node response object: writeHead,
// write and end (the way expressjs/compression does), so streaming keeps working: every
// chunk goes out as it is written, while the lease keeps a copy. Used by the Express
// middleware and the Fastify plugin alike.
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

  // The client went away. Before the response has started the handler is still at work
  // (Node does not stop it): its res.end() completes the key, so a retry replays what it
  // did rather than run it twice. A response already streaming can no longer complete
  // (a piped stream is destroyed with it): release, as every integration does when a
  // stream is cut. A handler that never ends its response leaves the lease to its
  // finalizer, which releases the key when the lease object is collected.
  res.on('close', () => {
    if (lease.active && started) lease.release()
  })
}

module.exports = { record }
