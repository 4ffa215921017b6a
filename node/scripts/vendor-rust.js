'use strict'
// `npm pack` (prepack): copy the Rust sources the addon needs into ./native, as a small
// Cargo workspace of its own, so a tarball install can build it. Workspace inheritance
// (`x.workspace = true`) is resolved against the repository's root Cargo.toml, since the
// copied crates no longer sit in that workspace. `--clean` (postpack) removes ./native.
const fs = require('node:fs')
const path = require('node:path')

const pkg = path.join(__dirname, '..')
const repo = path.join(pkg, '..')
const out = path.join(pkg, 'native')

if (process.argv.includes('--clean')) {
  fs.rmSync(out, { recursive: true, force: true })
  process.exit(0)
}

/** `[section]` → { name: raw value } for the single-line entries of a TOML section. */
function section (toml, name) {
  const entries = {}
  let inside = false
  for (const line of toml.split('\n')) {
    const header = line.match(/^\[(.+)\]\s*$/)
    if (header) { inside = header[1] === name; continue }
    const entry = inside && line.match(/^([A-Za-z0-9_-]+)\s*=\s*(.+)$/)
    if (entry) entries[entry[1]] = entry[2].trim()
  }
  return entries
}

/** `{ a = 1, b = [..] }` → [['a', '1'], ['b', '[..]']] (no nested tables in our manifests). */
function inlineTable (value) {
  const body = value.trim().replace(/^\{/, '').replace(/\}$/, '')
  const parts = []
  let depth = 0
  let current = ''
  for (const ch of body) {
    if (ch === '[') depth++
    if (ch === ']') depth--
    if (ch === ',' && depth === 0) { parts.push(current); current = ''; continue }
    current += ch
  }
  if (current.trim()) parts.push(current)
  return parts.map(p => { const i = p.indexOf('='); return [p.slice(0, i).trim(), p.slice(i + 1).trim()] })
}

const root = fs.readFileSync(path.join(repo, 'Cargo.toml'), 'utf8')
const wsPackage = section(root, 'workspace.package')
const wsDeps = section(root, 'workspace.dependencies')

/** Rewrite one member manifest: resolve inheritance, fix path dependencies, drop dev sections. */
function rewrite (manifest, memberDir, newDir) {
  const lines = []
  let skip = false
  for (const line of manifest.split('\n')) {
    const header = line.match(/^\[\[?(.+?)\]?\]\s*$/)
    if (header) {
      // Tests, examples and dev-dependencies are not shipped.
      skip = ['dev-dependencies', 'example', 'bench', 'workspace'].includes(header[1])
      if (skip) continue
    }
    if (skip) continue
    const inherited = line.match(/^([A-Za-z0-9_-]+)\.workspace\s*=\s*true\s*$/)
    if (inherited) {
      const name = inherited[1]
      const value = wsPackage[name] ?? wsDeps[name]
      if (value === undefined) throw new Error(`no workspace value for ${name}`)
      lines.push(`${name} = ${dependency(name, value, [], memberDir, newDir)}`)
      continue
    }
    const table = line.match(/^([A-Za-z0-9_-]+)\s*=\s*(\{.*workspace\s*=\s*true.*\})\s*$/)
    if (table) {
      const extra = inlineTable(table[2]).filter(([k]) => k !== 'workspace')
      lines.push(`${table[1]} = ${dependency(table[1], wsDeps[table[1]], extra, memberDir, newDir)}`)
      continue
    }
    lines.push(line)
  }
  return lines.join('\n')
}

function dependency (name, value, extra, memberDir, newDir) {
  if (!value.startsWith('{')) {
    if (!extra.length) return value
    return `{ version = ${value}, ${extra.map(([k, v]) => `${k} = ${v}`).join(', ')} }`
  }
  const fields = new Map(inlineTable(value))
  for (const [k, v] of extra) {
    if (k === 'features' && fields.has('features')) {
      const merged = new Set([...JSON.parse(fields.get('features')), ...JSON.parse(v)])
      fields.set('features', JSON.stringify([...merged]))
    } else {
      fields.set(k, v)
    }
  }
  if (fields.has('path')) {
    // Workspace paths are relative to the repository root; the copy's to its own crate.
    const target = path.join(repo, JSON.parse(fields.get('path')))
    const copied = target === path.join(repo, 'core') ? path.join(out, 'core') : target
    fields.set('path', JSON.stringify(path.relative(newDir, copied) || '.'))
  }
  return `{ ${[...fields].map(([k, v]) => `${k} = ${v}`).join(', ')} }`
}

function copyDir (from, to) {
  fs.mkdirSync(to, { recursive: true })
  for (const entry of fs.readdirSync(from, { withFileTypes: true })) {
    const src = path.join(from, entry.name)
    const dst = path.join(to, entry.name)
    if (entry.isDirectory()) copyDir(src, dst)
    else fs.copyFileSync(src, dst)
  }
}

fs.rmSync(out, { recursive: true, force: true })
for (const [member, dir] of [['core', 'core'], ['bindings/node', 'binding']]) {
  const from = path.join(repo, member)
  const to = path.join(out, dir)
  copyDir(path.join(from, 'src'), path.join(to, 'src'))
  if (fs.existsSync(path.join(from, 'build.rs'))) fs.copyFileSync(path.join(from, 'build.rs'), path.join(to, 'build.rs'))
  const manifest = fs.readFileSync(path.join(from, 'Cargo.toml'), 'utf8')
  fs.writeFileSync(path.join(to, 'Cargo.toml'), rewrite(manifest, from, to))
}
fs.writeFileSync(path.join(out, 'Cargo.toml'), `[workspace]
resolver = "3"
members = ["core", "binding"]

[profile.release]
debug = false
`)
fs.copyFileSync(path.join(repo, 'Cargo.lock'), path.join(out, 'Cargo.lock'))
