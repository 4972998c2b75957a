#!/usr/bin/env bash
# Regenerates src/gen/ from proto/deis/v2/*.proto (and the google/api files
# they import) with protoc-gen-es, driven by buf. Idempotent and byte-for-byte
# reproducible: the plugin and buf are pinned in buildtools/lib/common.sh.
# CI runs this and fails on `git diff --exit-code clients/typescript`.
set -euo pipefail
source "$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/buildtools/lib/common.sh"

ensure_node_tools
ensure_buf

cd "$REPO_ROOT"
PATH="$DEIS_NODE_PATH/.bin:$PATH" "$BUF" generate --template clients/typescript/buf.gen.yaml
note "generated clients/typescript/src/gen ($(find clients/typescript/src/gen -name '*_pb.ts' | wc -l) files)"
