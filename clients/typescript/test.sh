#!/usr/bin/env bash
# Compiles the client and its tests with tsc and runs them with node:test
# against a live `deis-workflow up` (started by the tests on loopback ports).
# Uses $DEIS_WORKFLOW_BIN when set, else builds `cargo build -p deis-workflow`.
set -euo pipefail
source "$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/buildtools/lib/common.sh"
HERE="$REPO_ROOT/clients/typescript"

ensure_node_tools
# The cached node tools serve as this package's node_modules (tsc and Node's
# ESM resolution both look there); a real `npm install` is left alone.
if [ ! -e "$HERE/node_modules" ] || [ -L "$HERE/node_modules" ]; then
  ln -sfn "$DEIS_NODE_PATH" "$HERE/node_modules"
fi

if [ -z "${DEIS_WORKFLOW_BIN:-}" ]; then
  step "building deis-workflow"
  (cd "$REPO_ROOT" && cargo build -q -p deis-workflow)
  export DEIS_WORKFLOW_BIN="$CARGO_TARGET_DIR/debug/deis-workflow"
fi

step "compiling (tsc)"
cd "$HERE"
rm -rf dist
"$HERE/node_modules/.bin/tsc" -p .

step "testing (node --test, $(node --version))"
node --test --test-reporter=spec dist/test/*.test.js
