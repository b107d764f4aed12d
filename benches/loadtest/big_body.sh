#!/usr/bin/env bash
# Memory of one maximal request (issue 8): peak RSS of `sanhook serve` around a single POST of a
# body just under `server.max_body` (16 MiB) holding ~290k minimal events, as NDJSON and as a
# JSON array, measured by /usr/bin/time -v ("Maximum resident set size") over the server's life.
#
#   1. `sanhook serve` on a temp store, no webhooks (intake only: parse, route, commit);
#   2. one POST of the body (MAX_EVENTS sets server.max_events; the default 20,000 refuses it
#      with 413, a large value lets it through);
#   3. SIGTERM, then the peak RSS, the status and the time the request took.
#
# Usage: [EVENTS=N] MAX_EVENTS=20000 FORMAT=ndjson benches/loadtest/big_body.sh [SANHOOK_BINARY]
# (MAX_EVENTS= empty leaves the key out, for builds that predate it;
# default target/release/sanhook; FORMAT is ndjson, array or none — none: no request, the
# baseline). Loopback only; cleans up its process and files. Needs curl, python3, /usr/bin/time.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
bin=${1:-${CARGO_TARGET_DIR:-$here/../../target}/release/sanhook}
max_events=${MAX_EVENTS-20000}
format=${FORMAT:-ndjson}
port=${API_PORT:-18950}

[ -x "$bin" ] || { echo "big_body.sh: no sanhook binary at $bin (cargo build --release)" >&2; exit 2; }
[ -x /usr/bin/time ] || { echo "big_body.sh: /usr/bin/time is not installed (apt-get install time)" >&2; exit 2; }

dir=$(mktemp -d)
pid=""
server=""
cleanup() {
  [ -n "$server" ] && kill -9 "$server" 2>/dev/null || true
  [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT

cat > "$dir/config.toml" <<EOF
[server]
listen = "127.0.0.1:$port"
${max_events:+max_events = $max_events}
[storage]
path = "$dir/sanhook.redb"
EOF

# As many ~70-byte events as fit under 16 MiB; or EVENTS events, each with a comment that
# makes them fill the 16 MiB (the largest events a full request can hold).
python3 - "$dir" "${EVENTS:-}" <<'EOF'
import sys
d, want = sys.argv[1], sys.argv[2]
limit = 16 * 1024 * 1024 - 64
line = '{"id":%d,"objectType":"a","objectID":1,"actor":"a","action":"a","comment":"%s"}'
pad = "" if not want else "x" * (limit // int(want) - len(line) - 8)
with open(d + "/body.ndjson", "w") as f:
    n, size = 0, 0
    while not want or n < int(want):
        s = line % (n + 1, pad) + "\n"
        if size + len(s) + 2 > limit:
            break
        f.write(s); size += len(s); n += 1
with open(d + "/body.ndjson") as f, open(d + "/body.json", "w") as g:
    g.write("[" + ",".join(l.rstrip("\n") for l in f) + "]")
print(f"events: {n}", file=sys.stderr)
EOF

SANHOOK_LOG=warn /usr/bin/time -v -o "$dir/time.txt" "$bin" serve --config "$dir/config.toml" 2>"$dir/sanhook.log" &
pid=$!
# /usr/bin/time does not pass signals on: stop the server itself, by its own pid.
for _ in $(seq 100); do
  server=$(pgrep -P "$pid" || true)
  [ -n "$server" ] && break
  sleep 0.02
done
[ -n "$server" ] || { echo "big_body.sh: sanhook did not start" >&2; cat "$dir/sanhook.log" >&2; exit 1; }
for _ in $(seq 200); do
  curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
  sleep 0.05
done

case "$format" in
  ndjson) body="$dir/body.ndjson"; type="application/x-ndjson" ;;
  array) body="$dir/body.json"; type="application/json" ;;
  none) body="" ;;
  *) echo "big_body.sh: FORMAT is ndjson, array or none" >&2; exit 2 ;;
esac
if [ -n "$body" ]; then
  curl -s -o "$dir/answer" -w "status %{http_code} in %{time_total}s, body $(stat -c %s "$body") bytes\n" \
    -H "content-type: $type" --data-binary "@$body" "http://127.0.0.1:$port/api/v1/events"
  head -c 300 "$dir/answer"; echo
fi
kill -TERM "$server"
wait "$pid" || true
pid=""
server=""
grep -E "Maximum resident set size" "$dir/time.txt"
