#!/usr/bin/env bash
# Fuzzes the REST API against its own OpenAPI document with schemathesis:
#
#   clients/openapi/schemathesis.sh [extra `schemathesis run` args...]
#
# 1. schemathesis (pinned in PYTHON_TOOLS, buildtools/lib/common.sh) from
#    the project's venv.
# 2. The real `deis-workflow up` (DEIS_WORKFLOW_BIN, else built with cargo)
#    on free loopback ports in a throwaway data directory, registration
#    open, as tests/support/up.rs starts it.
# 3. Over REST: registers and logs in `fuzzer` (the first user, so an
#    administrator) and registers `bystander`; creates apps, a domain, a
#    drain, a config value, a collaborator, an SSH key and a certificate,
#    so that path parameters can name things that exist (schemathesis
#    draws them from dictionaries, see below).
# 4. `schemathesis run clients/openapi/deis.v2.json` against it with a
#    fixed seed, one worker and a bounded number of examples per operation
#    (CHECKS below: no 5xx, every answer as the document says), then
#    checks that the run kept the fuzzer's token, admin rights and apps.
# 5. Ctrl-C (SIGINT) to `up`, which must exit cleanly.
# Exits non-zero when schemathesis reports a failure or any step fails.
# Each failure is printed with a curl command that reproduces it (against
# a server started the same way).
#
# Environment: SCHEMATHESIS_MAX_EXAMPLES (default 25), SCHEMATHESIS_SEED
# (default 20260101), SCHEMATHESIS_WORKERS (default 1), SCHEMATHESIS_KEEP
# (a directory to keep the server's stderr and the JUnit report in).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../../buildtools/lib/common.sh
source "$here/../../buildtools/lib/common.sh"

MAX_EXAMPLES="${SCHEMATHESIS_MAX_EXAMPLES:-25}"
SEED="${SCHEMATHESIS_SEED:-20260101}"
# One worker: calls run in the seed's order, so a run repeats itself.
WORKERS="${SCHEMATHESIS_WORKERS:-1}"
# No 5xx; status, content type and body as the document says; and no
# operation the document says needs the token answers without it.
CHECKS=not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,ignored_auth

# Operations left out, and why. Everything else in the document is run.
EXCLUDED=(
  # Cancels the logged-in account: every later call would be 401.
  AuthService_CancelAccount
  # Replaces the token the run authenticates with: every later call 401.
  AuthService_RegenerateToken
  # A server stream that ends only when the client goes away: each example
  # would wait for the request timeout.
  AppsService_FollowLogs
)

step "schemathesis (pip, into the project venv)"
ensure_python_tools
command -v ssh-keygen >/dev/null || apt_install openssh-client
command -v openssl >/dev/null || apt_install openssl
command -v curl >/dev/null || apt_install curl
SCHEMATHESIS="$(dirname "$DEIS_PYTHON")/schemathesis"
note "$("$SCHEMATHESIS" --version)"

if [ -z "${DEIS_WORKFLOW_BIN:-}" ]; then
  step "building deis-workflow (cargo)"
  (cd "$REPO_ROOT" && cargo build -q -p deis-workflow)
  DEIS_WORKFLOW_BIN="$CARGO_TARGET_DIR/debug/deis-workflow"
fi

tmp="$(mktemp -d /tmp/deis-schemathesis.XXXXXX)"
up_pid=""
stop_up() {
  [ -n "$up_pid" ] || return 0
  local pid="$up_pid" status=0
  up_pid=""
  kill -INT "$pid" 2>/dev/null || return 0
  for _ in $(seq 1 600); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    echo "deis-workflow up did not stop on SIGINT; killing it" >&2
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    return 1
  fi
  wait "$pid" || status=$?
  if [ "$status" != 0 ]; then
    echo "deis-workflow up exited with $status on SIGINT:" >&2
    tail -n 40 "$tmp/up.stderr" >&2 || true
    return 1
  fi
}
cleanup() {
  stop_up || true
  if [ -n "${SCHEMATHESIS_KEEP:-}" ]; then
    mkdir -p "$SCHEMATHESIS_KEEP"
    cp -R "$tmp/up.stderr" "$tmp/report" "$SCHEMATHESIS_KEEP/" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

step "starting deis-workflow up (data in $tmp/data)"
RUST_LOG=warn NO_COLOR=1 "$DEIS_WORKFLOW_BIN" up \
  --controller-addr 127.0.0.1:0 \
  --builder-addr 127.0.0.1:0 \
  --xds-addr 127.0.0.1:0 \
  --metrics-addr 127.0.0.1:0 \
  --registry-addr 127.0.0.1:0 \
  --logger-addr 127.0.0.1:0 \
  --forward-addr 127.0.0.1:0 \
  --router-port "$(free_port)" \
  --router-https-port "$(free_port)" \
  --registration-mode enabled \
  --data-dir "$tmp/data" \
  </dev/null >"$tmp/up.stdout" 2>"$tmp/up.stderr" &
up_pid=$!
for _ in $(seq 1 600); do
  grep -q 'Ctrl-C' "$tmp/up.stdout" 2>/dev/null && break
  if ! kill -0 "$up_pid" 2>/dev/null; then break; fi
  sleep 0.1
done
url="$(sed -n 's/^ *Controller *\(http[^ ]*\).*/\1/p' "$tmp/up.stdout" | head -n1)"
if [ -z "$url" ] || ! grep -q 'Ctrl-C' "$tmp/up.stdout"; then
  echo "deis-workflow up: no ready banner with a controller URL:" >&2
  cat "$tmp/up.stdout" >&2
  tail -n 40 "$tmp/up.stderr" >&2
  exit 1
fi
url="${url%/}"
note "controller at $url"

# One REST call; prints the body, fails unless the status is $1.
rest() {
  local want="$1" method="$2" path="$3" body="${4:-}" out status
  local args=(-sS -o "$tmp/rest.body" -w '%{http_code}' -X "$method" -H 'Content-Type: application/json')
  [ -n "${token:-}" ] && args+=(-H "Authorization: token $token")
  [ -n "$body" ] && args+=(--data "$body")
  status="$(curl "${args[@]}" "$url$path")"
  out="$(cat "$tmp/rest.body")"
  if [ "$status" != "$want" ]; then
    echo "$method $path: want $want, got $status: $out" >&2
    return 1
  fi
  printf '%s' "$out"
}
json_field() { "$DEIS_PYTHON" -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }

step "setting up: users, apps, a domain, a drain, config, a key, a certificate"
token=""
rest 201 POST /v2/auth/register/ '{"username":"fuzzer","password":"s3cret-pw","email":"fuzzer@example.com"}' >/dev/null
token="$(rest 200 POST /v2/auth/login/ '{"username":"fuzzer","password":"s3cret-pw"}' | json_field token)"
saved="$token" token=""
rest 201 POST /v2/auth/register/ '{"username":"bystander","password":"s3cret-pw","email":"bystander@example.com"}' >/dev/null
token="$saved"
for app in fuzz-one fuzz-two fuzz-deleted fuzz-given; do
  rest 201 POST /v2/apps/ "{\"id\":\"$app\"}" >/dev/null
done
rest 201 POST /v2/apps/fuzz-one/domains/ '{"domain":"fuzz.example.com"}' >/dev/null
rest 201 POST /v2/apps/fuzz-one/drains/ '{"url":"syslog://127.0.0.1:5514"}' >/dev/null
rest 201 POST /v2/apps/fuzz-one/config/ '{"values":{"GREETING":"hello"}}' >/dev/null
rest 201 POST /v2/apps/fuzz-one/perms/ '{"username":"bystander"}' >/dev/null
ssh-keygen -q -t ed25519 -N '' -C fuzzer@example.com -f "$tmp/key" >/dev/null
rest 201 POST /v2/keys/ "{\"id\":\"fuzzer@example.com\",\"public\":\"$(cat "$tmp/key.pub")\"}" >/dev/null
openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj /CN=fuzz.example.com \
  -keyout "$tmp/tls.key" -out "$tmp/tls.crt" 2>/dev/null
cert="$("$DEIS_PYTHON" -c 'import json,sys; print(json.dumps({"name": "fuzz-cert",
  "certificate": open(sys.argv[1]).read(), "key": open(sys.argv[2]).read()}))' "$tmp/tls.crt" "$tmp/tls.key")"
rest 201 POST /v2/certs/ "$cert" >/dev/null
rest 201 POST /v2/certs/fuzz-cert/domain/ '{"domain":"fuzz.example.com"}' >/dev/null

# Path parameters come from these dictionaries half of the time (apps 80%)
# so that calls reach existing apps, users, domains, keys and certificates,
# from the schema (and values seen in responses) otherwise. Operations that would take away what the
# others use get only their own targets: DeleteApp deletes fuzz-deleted
# (or a name nothing has), TransferApp gives away fuzz-given, RevokeAdmin
# demotes bystander, never the fuzzer.
# No cache: a run must not replay what an earlier one found (the seed
# alone decides what is sent), nor write into the tree.
cat >"$tmp/schemathesis.toml" <<'EOF'
cache.enabled = false

[dictionaries]
apps = { values = ["fuzz-one", "fuzz-two"] }
deleted = { values = ["fuzz-deleted"] }
given = { values = ["fuzz-given"] }
users = { values = ["fuzzer", "bystander"] }
domains = { values = ["fuzz.example.com"] }
keys = { values = ["fuzzer@example.com"] }
types = { values = ["web", "cmd"] }
versions = { values = ["v1", "v2", "1"] }
drains = { values = ["syslog://127.0.0.1:5514"] }
certs = { values = ["fuzz-cert"] }

[parameters]
"path.app" = { dictionary = "apps", probability = 0.8 }
"path.username" = { dictionary = "users", probability = 0.5 }
"path.domain" = { dictionary = "domains", probability = 0.5 }
"path.type" = { dictionary = "types", probability = 0.5 }
"path.version" = { dictionary = "versions", probability = 0.5 }
"path.drain" = { dictionary = "drains", probability = 0.5 }

[[operations]]
include-operation-id = ["AppsService_GetApp"]
parameters = { "path.id" = { dictionary = "apps", probability = 0.5 } }

[[operations]]
include-operation-id = ["AppsService_DeleteApp"]
parameters = { "path.id" = { dictionary = "deleted", probability = 0.5 } }
phases.coverage.extra-data-sources.responses = false
phases.fuzzing.extra-data-sources.responses = false

[[operations]]
include-operation-id = ["AppsService_TransferApp"]
parameters = { "path.id" = { dictionary = "given", probability = 0.5 } }
phases.coverage.extra-data-sources.responses = false
phases.fuzzing.extra-data-sources.responses = false

[[operations]]
include-operation-id = ["UsersService_RevokeAdmin"]
parameters = { "path.username" = "bystander" }

[[operations]]
include-operation-id = ["CertsService_GetCert", "CertsService_DeleteCert", "CertsService_AttachCert", "CertsService_DetachCert"]
parameters = { "path.name" = { dictionary = "certs", probability = 0.5 } }

[[operations]]
include-operation-id = ["KeysService_GetKey", "KeysService_RemoveKey"]
parameters = { "path.id" = { dictionary = "keys", probability = 0.5 } }
EOF

excludes=()
for id in "${EXCLUDED[@]}"; do excludes+=(--exclude-operation-id "$id"); done
cmd=(
  "$SCHEMATHESIS" --config-file "$tmp/schemathesis.toml" run "$here/deis.v2.json"
  --url "$url"
  -H "Authorization: token $token"
  --checks "$CHECKS"
  --max-examples "$MAX_EXAMPLES"
  --seed "$SEED"
  --generation-database none
  --workers "$WORKERS"
  --request-timeout 10
  --report junit --report-dir "$tmp/report"
  --no-color
  "${excludes[@]}"
  "$@"
)
step "schemathesis run ($MAX_EXAMPLES examples per operation, seed $SEED)"
shown=("${cmd[@]//"$token"/<key>}")
note "${shown[*]}"
status=0
(cd "$tmp" && "${cmd[@]}") || status=$?

# The run only means something if the fuzzer kept its account, its admin
# rights and its apps to the end.
step "checking the run kept its state"
lost=()
whoami="$(rest 200 GET /v2/auth/whoami 2>&1)" || lost+=("the token: $whoami")
case "$whoami" in *'"is_superuser":true'*) ;; *) lost+=("admin rights: $whoami") ;; esac
for app in fuzz-one fuzz-two; do
  rest 200 GET "/v2/apps/$app" >/dev/null 2>&1 || lost+=("app $app")
done
if [ ${#lost[@]} -gt 0 ]; then
  printf 'the run lost %s\n' "${lost[@]}" >&2
  status=1
else
  note "fuzzer still logged in, an administrator, with fuzz-one and fuzz-two"
fi

step "stopping deis-workflow up (SIGINT)"
stop_up || status=1
exit "$status"
