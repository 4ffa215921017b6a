'use strict'
// Recording a response for a lease by wrapping the Node response object's write and end
// (the way expressjs/compression does), so streaming keeps working: every chunk goes out
// as it is written, while the lease keeps a copy; the head is read, not wrapped
// (sentHead). Used by the Express middleware and the Fastify plugin alike. A handler that
// never ends its response keeps the key until maxLease (the lease's finalizer leaves it to
// the core's renewal).
const { errorMonitor } = require('node:events')
const { flatHeaders, toBuffer } = require('./engine')

/** Record `res` in `lease`; `verdict(status)` is what the user's storeStatus says. */
function record (res, lease, verdict) {
  const { write, end } = res
  // Whether the lease is still held, kept here: only this function ends it, and each
  // question to the native lease would be a call into native code.
  let active = true
  // The head, once known: given to the lease by the first write, or with the body by end
  // (one native call for a response written whole).
  let head = null
  let started = false
  const start = () => {
    if (!started) {
      started = true
      lease.start(head.status, head.headers, verdict(head.status))
    }
  }
  // The head, once the response has one to give: what went into the response's serialized
  // head if `writeHead` (explicit, or Node's implicit one) already ran, else what it will
  // send (Express's `send` lets `end` write the head implicitly).
  const headOf = () => {
    if (head === null) head = sentHead(res) || headerState(res)
  }
  const finish = (omitted) => {
    if (head === null) head = sentHead(res)
    if (head !== null) start() // a head known but not given yet is stored (B12)
    active = false
    return lease.complete(omitted)
  }
  const release = () => {
    active = false
    const released = lease.release()
    if (released instanceof Promise) released.catch(() => {})
  }

  res.write = function (chunk, encoding, cb) {
    if (active) {
      headOf()
      start()
      const buf = toBuffer(chunk, encoding)
      if (buf) lease.push(buf)
    }
    return write.apply(this, arguments)
  }

  res.end = function (chunk, encoding, cb) {
    if (!active) return end.apply(this, arguments)
    headOf()
    const buf = typeof chunk === 'function' ? null : toBuffer(chunk, encoding)
    let stored
    active = false
    if (started) {
      if (buf) lease.push(buf)
      stored = lease.complete()
    } else {
      started = true
      stored = lease.end(head.status, head.headers, verdict(head.status), buf || undefined)
    }
    const args = arguments
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
  res.on('close', () => { gone = active })
  // A stream piped into the response (Fastify's reply.send(stream), pipe, pipeline) is
  // destroyed or unpiped once the client left, and can no longer end the response: it is
  // stored without its body (B12). An error of that stream with the client still there is
  // an error of the body: released, so a retry runs again.
  const cut = () => { if (gone && active) finish(true) }
  res.on('pipe', (src) => {
    // errorMonitor: seen before the app's own handlers, and an error nobody handles still throws.
    src.once(errorMonitor, () => { if (active) gone ? finish(true) : release() })
    src.once('close', cut)
  })
  res.on('unpipe', cut)
}

/**
 * The head `writeHead` serialized, as `{ status, headers: [name, value, …] }`, or null if
 * there is none yet. Read from the head Node keeps to send (`_header`: every header as it
 * goes out, `writeHead`'s own and repeated ones included) rather than by wrapping
 * `writeHead`: on Express every property added to a response costs a V8 map of its own
 * (docs/DECISIONS.md, "Recording a Node response").
 */
function sentHead (res) {
  if (!res.headersSent) return null
  const raw = res._header
  if (typeof raw !== 'string') return headerState(res)
  const headers = []
  let at = raw.indexOf('\r\n') + 2 // after the status line
  for (let end = raw.indexOf('\r\n', at); end > at; at = end + 2, end = raw.indexOf('\r\n', at)) {
    const colon = raw.indexOf(':', at)
    if (colon < 0 || colon > end) continue
    headers.push(raw.slice(at, colon), raw.slice(colon + 1, end).trim())
  }
  return { status: res.statusCode, headers }
}

/** The head as the response's state has it: what an implicit `writeHead` sends. */
function headerState (res) {
  return { status: res.statusCode, headers: flatHeaders(res.getHeaders()) }
}

module.exports = { record }
