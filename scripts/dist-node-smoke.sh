#!/usr/bin/env bash
# The npm packages in DIST as a user installs them: a new project, on a PATH without cargo
# or rustc, installs the main package and this platform's prebuilt package (express,
# fastify, typescript and @types/node from the registry). Nothing may be built; then an
# Express and a Fastify app each serve a keyed request and its replay through `require`
# (node/test/prebuilt/serve.js), the ESM entry points load, and the types check with
# `tsc --strict`. Run by node/test/prebuilt.test.js (make test) and the release workflow.
#
#   scripts/dist-node-smoke.sh DIST
set -euo pipefail
dist=$(cd "$1" && pwd)
repo=$(cd "$(dirname "$0")/.." && pwd)
platform=$(cd "$repo/node" && node -p "require('./lib/platform').platformPackage().name")
shopt -s nullglob
mains=("$dist"/idempo-[0-9]*.tgz) addons=("$dist/$platform"-[0-9]*.tgz)
[ ${#mains[@]} -eq 1 ] && [ ${#addons[@]} -eq 1 ] || {
  echo "dist-node-smoke: $dist needs one idempo-<version>.tgz and one $platform-<version>.tgz (make dist)" >&2
  exit 1
}
project=$(mktemp -d)
trap 'rm -rf "$project"' EXIT
source "$repo/scripts/without-rust.sh"
unset IDEMPO_NATIVE_PROFILE # the repository's Makefile sets it: it would ask for a build

cd "$project"
echo '{"name":"consumer","version":"1.0.0","private":true}' >package.json
npm install --no-audit --no-fund --foreground-scripts --loglevel=error \
  "${mains[0]}" "${addons[0]}" express@5 fastify@5 typescript@5 @types/node@20 | tee install.log
grep -q "using the prebuilt addon of $platform" install.log || { echo "dist-node-smoke: the install did not use $platform" >&2; exit 1; }
[ ! -e node_modules/idempo/idempo.node ] || { echo "dist-node-smoke: the install built an addon" >&2; exit 1; }
cp "$repo"/node/test/prebuilt/{serve.js,import.mjs,check.ts} .
node serve.js "$platform"
node import.mjs
node_modules/.bin/tsc --noEmit --strict --module node16 --moduleResolution node16 --target ES2022 --types node check.ts
echo "dist-node-smoke: $platform serves Express and Fastify, require, import and types"
