#!/usr/bin/env bash
# schemathesis (PyPI) against the live server's /api/v1/openapi.json: no 5xx, and every answer
# conforms to the description (status code, content type, headers, schema).
#
# schemathesis invents webhook URLs and then calls endpoints that send (test, retry, flush), so
# the server and schemathesis run inside a network namespace that has nothing but loopback:
# nothing it invents can leave this machine. Needs root (ip netns), as CI is.
#
#   .ci/schemathesis.sh [path/to/sanhook]     (default: the debug build, built when missing)
#
# SANHOOK_ST_EXAMPLES sets the cases per operation (default 60), SANHOOK_ST_SEED the seed
# (default 1, so that CI runs are repeatable); the report (NDJSON and JUnit)
# goes to target/schemathesis/.
set -euo pipefail
cd "$(dirname "$0")/.."

target=${CARGO_TARGET_DIR:-target}
bin=${1:-$target/debug/sanhook}
if [ ! -x "$bin" ]; then cargo build --bin sanhook; fi
bin=$(realpath "$bin")

# schemathesis in a virtualenv of its own, pinned (the version this was written against).
venv=${SANHOOK_ST_VENV:-$HOME/.cache/sanhook-schemathesis}
version=4.32.5
if [ ! -x "$venv/bin/st" ] || ! "$venv/bin/st" --version 2>/dev/null | grep -q "$version"; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet "schemathesis==$version"
fi

ns="sanhook-st-$$"
work=$(mktemp -d)
mkdir -p "$target/schemathesis"
report=$(realpath "$target/schemathesis")
server=""
cleanup() {
  if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
  ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
  ip netns del "$ns" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

ip netns add "$ns"
ip netns exec "$ns" ip link set lo up

token="schemathesis-token"
cat >"$work/config.toml" <<EOF
[server]
listen = "127.0.0.1:8930"
token = "$token"
[storage]
path = "$work/sanhook.redb"
[delivery]
timeout = "2s"
retry_schedule = ["1s", "2s"]
EOF

ip netns exec "$ns" env SANHOOK_LOG=warn NO_COLOR=1 "$bin" serve --config "$work/config.toml" \
  >"$work/server.log" 2>&1 &
server=$!
for _ in $(seq 1 100); do
  if ip netns exec "$ns" python3 -c \
    'import urllib.request,sys; urllib.request.urlopen("http://127.0.0.1:8930/healthz", timeout=1)' \
    2>/dev/null; then
    break
  fi
  if ! kill -0 "$server" 2>/dev/null; then cat "$work/server.log"; echo "sanhook did not start"; exit 1; fi
  sleep 0.1
done

status=0
# From the scratch dir: schemathesis writes a cache of its findings (.schemathesis/) where it runs.
root=$PWD
(cd "$work" && ip netns exec "$ns" env SCHEMATHESIS_HOOKS=schemathesis_hooks PYTHONPATH="$root/.ci" \
  "$venv/bin/st" run "http://127.0.0.1:8930/api/v1/openapi.json" \
  --header "Authorization: Bearer $token" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance \
  --max-examples "${SANHOOK_ST_EXAMPLES:-60}" \
  --seed "${SANHOOK_ST_SEED:-1}" \
  --request-timeout 10 \
  --generation-database none \
  --report junit,ndjson --report-dir "$report") \
  || status=$?

if grep -n "panicked" "$work/server.log"; then
  echo "== the server panicked during the run (above)"
  status=1
fi
if [ "$status" -ne 0 ]; then
  echo "== server log (last 60 lines)"; tail -n 60 "$work/server.log"
  echo "== schemathesis failed; reports in $report"
fi
exit "$status"
