'use strict'
// `make dist` for npm: the main package and this platform's prebuilt addon package, as
// the napi-rs layout has them.
//
//   node scripts/dist.js OUT_DIR --addon PATH_TO_BUILT_ADDON [--all-targets]
//
// - OUT_DIR/idempo-linux-x64-gnu-<version>.tgz (for this machine's triple): the addon
//   alone, with `os`/`cpu`/`libc` so npm installs it only where it runs.
// - OUT_DIR/idempo-<version>.tgz: `npm pack` of the package (its Rust sources included, for
//   a build from source where no prebuilt package fits), with the platform packages added
//   to `optionalDependencies` at the same version, as napi-rs's `prepublish` does: the
//   repository's package.json names no package that is not published yet. Only this
//   machine's, unless `--all-targets` (the release workflow, which builds and publishes
//   one for every Rust target in package.json's `napi.targets`).
// Prints the two tarballs' paths, main first.
const { execFileSync } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { platformPackage, triple } = require('../lib/platform')

const pkg = path.join(__dirname, '..')

/** napi-rs's platform names of the Rust targets a release is built for. */
const PLATFORMS = {
  'x86_64-unknown-linux-gnu': 'linux-x64-gnu',
  'aarch64-unknown-linux-gnu': 'linux-arm64-gnu',
  'x86_64-unknown-linux-musl': 'linux-x64-musl',
  'aarch64-unknown-linux-musl': 'linux-arm64-musl',
  'x86_64-apple-darwin': 'darwin-x64',
  'aarch64-apple-darwin': 'darwin-arm64',
  'x86_64-pc-windows-msvc': 'win32-x64-msvc'
}

/** The platform package of every target in `napi.targets`. */
function releasedPackages (manifest) {
  return manifest.napi.targets.map(target => {
    if (!PLATFORMS[target]) throw new Error(`napi.targets: no platform package name for ${target}`)
    return `idempo-${PLATFORMS[target]}`
  })
}

function main () {
  const args = process.argv.slice(2)
  const at = args.indexOf('--addon')
  const addon = at >= 0 && args[at + 1] ? path.resolve(args[at + 1]) : null
  const given = args.find((a, i) => !a.startsWith('--') && i !== at + 1)
  const out = given && path.resolve(given)
  if (!out || !addon || !fs.existsSync(addon)) {
    console.error('usage: node scripts/dist.js OUT_DIR --addon PATH_TO_BUILT_ADDON [--all-targets] (the addon an existing file)')
    process.exit(2)
  }
  fs.mkdirSync(out, { recursive: true })
  const manifest = JSON.parse(fs.readFileSync(path.join(pkg, 'package.json'), 'utf8'))
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'idempo-dist-'))
  try {
    const platform = packPlatform(manifest, addon, scratch, out)
    const listed = args.includes('--all-targets') ? releasedPackages(manifest) : [platform.name]
    if (!listed.includes(platform.name)) throw new Error(`${platform.name} is not in package.json's napi.targets`)
    const main = packMain(manifest, listed, scratch, out)
    console.log(main)
    console.log(platform.tarball)
  } finally {
    fs.rmSync(scratch, { recursive: true, force: true })
  }
}

function npmPack (dir, out, scripts = false) {
  const args = ['pack', '--silent', '--pack-destination', out, ...(scripts ? [] : ['--ignore-scripts'])]
  // npm is a .cmd on Windows, which Node runs only through a shell.
  const name = execFileSync('npm', args, { cwd: dir, encoding: 'utf8', shell: process.platform === 'win32' })
  return path.join(out, name.trim().split('\n').pop())
}

/** The platform package: package.json, the addon, the license. */
function packPlatform (manifest, addon, scratch, out) {
  const { name, file } = platformPackage()
  const [os_, cpu, abi] = triple().split('-')
  const dir = path.join(scratch, name)
  fs.mkdirSync(dir)
  const platformManifest = {
    name,
    version: manifest.version,
    description: `The prebuilt native addon of idempo for ${triple()}.`,
    license: manifest.license,
    main: file,
    files: [file, 'LICENSE'],
    os: [os_],
    cpu: [cpu],
    ...(abi === 'gnu' ? { libc: ['glibc'] } : abi === 'musl' ? { libc: ['musl'] } : {}),
    engines: manifest.engines
  }
  fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify(platformManifest, null, 2) + '\n')
  fs.copyFileSync(addon, path.join(dir, file))
  fs.copyFileSync(path.join(pkg, 'LICENSE'), path.join(dir, 'LICENSE'))
  return { name, tarball: npmPack(dir, out) }
}

/** `npm pack` of the package, repacked with the platform package as an optional dependency. */
function packMain (manifest, platformNames, scratch, out) {
  const packed = npmPack(pkg, scratch, true) // prepack vendors the Rust sources
  const dir = path.join(scratch, 'main')
  fs.mkdirSync(dir)
  // Relative names: Git for Windows' tar reads `C:\…` as a remote host.
  execFileSync('tar', ['xzf', path.relative(scratch, packed), '-C', 'main'], { cwd: scratch })
  const file = path.join(dir, 'package', 'package.json')
  const json = JSON.parse(fs.readFileSync(file, 'utf8'))
  const platforms = Object.fromEntries(platformNames.map(name => [name, manifest.version]))
  json.optionalDependencies = { ...json.optionalDependencies, ...platforms }
  fs.writeFileSync(file, JSON.stringify(json, null, 2) + '\n')
  return npmPack(path.join(dir, 'package'), out)
}

if (require.main === module) main()

module.exports = { releasedPackages }
