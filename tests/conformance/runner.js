'use strict'
// The scenario runner in JavaScript: the same reading of the files in scenarios/ as
// runner.py (which documents the format), for the Node suite's in-process runs
// (node/test/scenarios.test.js). Requests go out on node:http, or a plain socket for the
// "raw" ones, one connection each, as separate retrying clients would.
const fs = require('node:fs')
const http = require('node:http')
const net = require('node:net')
const path = require('node:path')
const crypto = require('node:crypto')

const SCENARIOS = path.join(__dirname, 'scenarios')

class Failure extends Error {}
class NotApplicable extends Error {}

function loadScenarios () {
  const found = {}
  for (const file of fs.readdirSync(SCENARIOS).filter(f => f.endsWith('.json')).sort()) {
    found[file.slice(0, -5)] = JSON.parse(fs.readFileSync(path.join(SCENARIOS, file), 'utf8'))
  }
  return found
}

function substitute (value, keys) {
  if (typeof value === 'string') {
    for (const [name, key] of Object.entries(keys)) value = value.split(name).join(key)
    return value
  }
  if (Array.isArray(value)) return value.map(v => substitute(v, keys))
  if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, substitute(v, keys)]))
  return value
}

/** A response as the checks read it: every header line kept, in order. */
function reply (status, rawHeaders, body) {
  const lines = []
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) lines.push([rawHeaders[i].toLowerCase(), rawHeaders[i + 1]])
  const list = (name) => lines.filter(([n]) => n === name).map(([, v]) => v)
  return {
    status,
    body,
    text: body.toString('utf8'),
    list,
    get: (name) => (list(name).length ? list(name).join(', ') : null),
    has: (name) => list(name).length > 0
  }
}

function viaHttp (base, method, target, headers, body, chunked) {
  return new Promise((resolve, reject) => {
    const h = { ...headers, connection: 'close' }
    if (!chunked) h['content-length'] = String(body.length)
    const req = http.request(base + target, { method, headers: h, agent: false }, (res) => {
      const chunks = []
      res.on('data', c => chunks.push(c))
      res.on('end', () => resolve(reply(res.statusCode, res.rawHeaders, Buffer.concat(chunks))))
      res.on('error', reject)
    })
    req.on('error', reject)
    if (chunked) for (let i = 0; i < body.length; i += 65536) req.write(body.subarray(i, i + 65536))
    req.end(chunked ? undefined : body)
  })
}

/** A request on a plain socket, exactly as given; the answer read to the end. */
function viaSocket (base, method, target, headers, body) {
  const { hostname, port } = new URL(base)
  const lines = [`${method} ${target} HTTP/1.1`, `Host: ${hostname}:${port}`, 'Connection: close']
  for (const [name, value] of Object.entries(headers)) lines.push(`${name}: ${value}`)
  if (!Object.keys(headers).some(n => n.toLowerCase() === 'content-length')) lines.push(`Content-Length: ${body.length}`)
  return new Promise((resolve, reject) => {
    const chunks = []
    const socket = net.connect(Number(port), hostname, () => {
      // Not end(): a client that half-closes first is one that left, to some servers.
      socket.write(Buffer.concat([Buffer.from(lines.join('\r\n') + '\r\n\r\n', 'latin1'), body]))
    })
    socket.on('data', c => chunks.push(c))
    socket.on('error', reject)
    socket.on('close', () => {
      try {
        resolve(parse(Buffer.concat(chunks)))
      } catch (err) {
        reject(err)
      }
    })
  })
}

/** An HTTP/1.1 response read until the server closed the connection. */
function parse (data) {
  const end = data.indexOf('\r\n\r\n')
  if (end < 0) throw new Failure(`no complete response: ${JSON.stringify(data.toString('latin1').slice(0, 80))}`)
  const [statusLine, ...lines] = data.subarray(0, end).toString('latin1').split('\r\n')
  const rawHeaders = lines.flatMap(line => { const colon = line.indexOf(':'); return [line.slice(0, colon), line.slice(colon + 1).trim()] })
  let body = data.subarray(end + 4)
  const r = reply(Number(statusLine.split(' ')[1]), rawHeaders, body)
  if ((r.get('transfer-encoding') || '').toLowerCase() === 'chunked') {
    const parts = []
    for (let at = 0; ;) {
      const eol = body.indexOf('\r\n', at)
      const size = parseInt(body.subarray(at, eol).toString('latin1'), 16)
      if (!(size > 0)) break
      parts.push(body.subarray(eol + 2, eol + 2 + size))
      at = eol + 2 + size + 2
    }
    body = Buffer.concat(parts)
  }
  return reply(r.status, rawHeaders, body)
}

async function send (base, request) {
  const headers = { ...(request.headers || {}) }
  if ('key' in request) headers['Idempotency-Key'] = request.key
  if ('key_len' in request) headers['Idempotency-Key'] = crypto.randomUUID().replace(/-/g, '').padEnd(request.key_len, 'k')
  let body = Buffer.from(request.body || '')
  if ('body_bytes' in request) body = Buffer.alloc(request.body_bytes, 'x')
  const method = request.method || 'POST'
  const started = Date.now()
  const response = request.raw
    ? await viaSocket(base, method, request.path.split('$origin').join(base), headers, body)
    : await viaHttp(base, method, request.path, headers, body, request.chunked)
  if (request.server_may_refuse && !response.has('x-pid')) {
    throw new NotApplicable(`the server refused ${method} ${request.path} itself (${response.status})`)
  }
  response.elapsedMs = Date.now() - started
  return response
}

function splitList (line) {
  const items = []
  let depth = 0; let quoted = false; let start = 0
  for (let i = 0; i < line.length; i++) {
    const c = line[i]
    if (c === '"') quoted = !quoted
    else if (!quoted && (c === '<' || c === '>')) depth += c === '<' ? 1 : -1
    else if (c === ',' && !quoted && depth === 0) { items.push(line.slice(start, i)); start = i + 1 }
  }
  items.push(line.slice(start))
  return items
}

function check (step, r, expect, seen) {
  const fail = (why) => { throw new Failure(`step ${step}: ${why} (got ${r.status}: ${JSON.stringify(r.text.slice(0, 160))})`) }
  if ('status' in expect && r.status !== expect.status) fail(`status ${r.status}, expected ${expect.status}`)
  if ('status_below' in expect && r.status >= expect.status_below) fail(`status ${r.status}, expected below ${expect.status_below}`)
  if ('replayed' in expect && (r.get('idempotency-replayed') === 'true') !== expect.replayed) {
    fail(`Idempotency-Replayed is ${r.get('idempotency-replayed')}, expected replayed=${expect.replayed}`)
  }
  if ('body' in expect && r.text !== expect.body) fail(`body ${JSON.stringify(r.text.slice(0, 60))}, expected ${JSON.stringify(expect.body.slice(0, 60))}`)
  if ('body_len' in expect && r.body.length !== expect.body_len) fail(`body length ${r.body.length}, expected ${expect.body_len}`)
  if ('same_body_as' in expect && !r.body.equals(seen[expect.same_body_as].body)) fail(`body differs from step ${expect.same_body_as}'s`)
  if ('problem' in expect) {
    if (r.get('content-type') !== 'application/problem+json') fail('not application/problem+json')
    if (r.get('cache-control') !== 'no-store') fail('problem without Cache-Control: no-store')
    const doc = JSON.parse(r.text)
    if (doc.code !== expect.problem || doc.status !== r.status) fail(`problem code ${doc.code}, expected ${expect.problem}`)
    if (Object.keys(doc).sort().join() !== 'code,detail,status,title,type') fail(`problem members ${Object.keys(doc)}`)
  }
  for (const [name, value] of Object.entries(expect.headers || {})) {
    const got = r.get(name)
    if (got === null || !got.startsWith(value)) fail(`header ${name} is ${got}, expected ${value}`)
  }
  for (const [name, values] of Object.entries(expect.header_list || {})) {
    const got = r.list(name).flatMap(splitList).map(v => v.trim())
    if (JSON.stringify(got) !== JSON.stringify(values)) fail(`header ${name} is ${JSON.stringify(got)}, expected ${JSON.stringify(values)}`)
  }
  for (const name of expect.header_absent || []) {
    if (r.has(name)) fail(`header ${name} should be absent (it is ${r.get(name)})`)
  }
  if ('retry_after_min' in expect && Number(r.get('retry-after') || 0) < expect.retry_after_min) fail(`Retry-After ${r.get('retry-after')}`)
  if ('elapsed_min_ms' in expect && r.elapsedMs < expect.elapsed_min_ms) fail(`answered after ${r.elapsedMs} ms, expected at least ${expect.elapsed_min_ms}`)
}

const sleep = (ms) => new Promise(resolve => setTimeout(resolve, ms))

async function counter (base) {
  const r = await viaHttp(base, 'GET', '/counter', {}, Buffer.alloc(0))
  return JSON.parse(r.text).count
}

/** Run one scenario against the app at `base`. Throws Failure, or NotApplicable. */
async function runScenario (base, scenario) {
  const keys = { $key2: `k2-${crypto.randomUUID()}`, $key: `k-${crypto.randomUUID()}` }
  if ((await viaHttp(base, 'POST', '/reset', {}, Buffer.alloc(0))).status !== 204) throw new Failure('POST /reset did not answer 204')
  const seen = []
  const running = {}
  for (const [i, raw] of scenario.steps.entries()) {
    const step = substitute(raw, keys)
    if ('send' in step && !('concurrent' in step)) {
      const r = await send(base, step.send)
      check(i, r, step.expect || {}, seen)
      seen.push(r)
      continue
    }
    seen.push(seen[seen.length - 1])
    if ('background' in step) {
      running[step.as] = send(base, step.background)
      running[step.as].catch(() => {}) // awaited (and checked) by its "await" step
    } else if ('await' in step) {
      const r = await running[step.await]
      check(i, r, step.expect || {}, seen)
      seen[seen.length - 1] = r
    } else if ('sleep' in step) {
      await sleep(step.sleep)
    } else if ('count' in step) {
      const count = await counter(base)
      if (count !== step.count) throw new Failure(`step ${i}: the handler ran ${count} times, expected ${step.count}`)
    } else if ('concurrent' in step) {
      await runConcurrent(base, i, step.concurrent, step.send, step.no_conflicts)
    } else {
      throw new Failure(`step ${i}: unknown step ${Object.keys(step)}`)
    }
  }
}

async function runConcurrent (base, i, n, request, noConflicts) {
  const responses = await Promise.all(Array.from({ length: n }, () => send(base, request)))
  const replayed = (r) => r.get('idempotency-replayed') === 'true'
  const originals = responses.filter(r => r.status < 300 && !replayed(r))
  const replays = responses.filter(replayed)
  const conflicts = responses.filter(r => r.status === 409 && JSON.parse(r.text).code === 'key-in-use')
  const statuses = [...new Set(responses.map(r => r.status))].sort()
  if (originals.length !== 1) throw new Failure(`step ${i}: ${originals.length} of ${n} concurrent requests executed (statuses ${statuses})`)
  if (originals.length + replays.length + conflicts.length !== n) throw new Failure(`step ${i}: unexpected answers ${statuses}`)
  if (noConflicts && conflicts.length) throw new Failure(`step ${i}: ${conflicts.length} of ${n} duplicates got 409 instead of waiting for the original`)
  if (replays.some(r => !r.body.equals(originals[0].body))) throw new Failure(`step ${i}: a replay differs from the original`)
}

module.exports = { loadScenarios, runScenario, Failure, NotApplicable }
