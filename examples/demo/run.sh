#!/usr/bin/env bash
# `npm run demo`: everything a fresh machine needs for the demo, then the demo.
# Installs missing Debian packages and moto (.ci/install-packages), the npm
# packages when node_modules is absent, builds, and runs the demo with the
# arguments given (npm run demo -- --help).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
if [[ $(id -u) -ne 0 ]]; then
  echo "demo: needs root (it creates network namespaces); run: sudo npm run demo" >&2
  exit 1
fi
bash .ci/install-packages
[[ -d node_modules ]] || npm ci
npm run build >/dev/null
exec node dist/examples/demo/demo.js "$@"
