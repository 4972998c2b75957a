#!/usr/bin/env bash
# Tests the Python client as a user gets it:
#
#   clients/python/test.sh [unittest args...]
#
# 1. generate.sh --check: the generated code matches proto/.
# 2. A cached venv ($CACHE_DIR/python-client-venv, rebuilt when
#    pyproject.toml or constraints.txt change) holds the package's
#    dependencies, resolved by pip from its pyproject.toml and pinned by
#    constraints.txt; the package itself is not kept there.
# 3. pip builds and installs this tree's package (a copy, so the tree stays
#    clean) into a throwaway directory; the tests import that copy.
# 4. The tests (unittest) start the real `deis-workflow up` from
#    DEIS_WORKFLOW_BIN, built with cargo when unset.
# Exits non-zero when any step or test fails.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../../buildtools/lib/common.sh
source "$here/../../buildtools/lib/common.sh"

step "checking the generated Python code"
"$here/generate.sh" --check

venv="$CACHE_DIR/python-client-venv"
stamp="$venv/.installed-$(cat "$here/pyproject.toml" "$here/constraints.txt" | md5sum | cut -c1-12)"
tmp="$(mktemp -d /tmp/deis-pyclient-test.XXXXXX)"
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/pkg"
cp -R "$here/pyproject.toml" "$here/README.md" "$here/src" "$tmp/pkg/"
find "$tmp/pkg" -name __pycache__ -prune -exec rm -rf {} +

if [ ! -e "$stamp" ]; then
  python3 -c 'import ensurepip' 2>/dev/null || apt_install python3-venv
  step "creating $venv (the client's dependencies, pip)"
  rm -rf "$venv"
  python3 -m venv "$venv"
  pip=("$venv/bin/pip" --quiet --disable-pip-version-check)
  "${pip[@]}" install -c "$here/constraints.txt" setuptools "$tmp/pkg"
  "${pip[@]}" uninstall --yes deis-workflow
  touch "$stamp"
fi

step "installing deis-workflow (pip) into $tmp/site"
"$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps --no-build-isolation \
  --no-index --target "$tmp/site" "$tmp/pkg"
"$venv/bin/pip" check --disable-pip-version-check >/dev/null

if [ -z "${DEIS_WORKFLOW_BIN:-}" ]; then
  step "building deis-workflow (cargo)"
  (cd "$REPO_ROOT" && cargo build -q -p deis-workflow)
  export DEIS_WORKFLOW_BIN="$CARGO_TARGET_DIR/debug/deis-workflow"
fi

step "running the Python client's tests"
cd "$here/tests"
PYTHONPATH="$tmp/site" PYTHONDONTWRITEBYTECODE=1 "$venv/bin/python" -c \
  'import deis_workflow, sys; sys.stderr.write(f"    deis_workflow {deis_workflow.__version__} from {deis_workflow.__file__}\n")'
PYTHONPATH="$tmp/site" PYTHONDONTWRITEBYTECODE=1 "$venv/bin/python" -m unittest -v "$@"
