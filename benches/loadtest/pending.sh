#!/usr/bin/env bash
# A large outbox with the receiver down: memory while N deliveries wait, then `kill -9`, a
# restart with the receiver back, the time to the first send and to the last.
#
#   1. `sanhook serve` on a temp store, one `default` webhook pointing at a closed port;
#   2. N events (default 1,000,000; 5,000 objects) posted as NDJSON batches of 1,000;
#   3. resident memory (VmRSS, VmHWM) once intake is done and the first attempts failed;
#   4. kill -9, nginx starts on that port (one worker, `return 200`, access log on), sanhook
#      starts again: seconds to the first request nginx logs, and to the Nth.
#
# Usage: benches/loadtest/pending.sh [SANHOOK_BINARY] (default target/release/sanhook).
# Loopback only; bounded in time; cleans up its processes and files. Needs nginx and python3.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
bin=${1:-${CARGO_TARGET_DIR:-$here/../../target}/release/sanhook}
events=${EVENTS:-1000000}
api_port=${API_PORT:-18940}
sink_port=${SINK_PORT:-18941}

command -v nginx >/dev/null || { echo "pending.sh: nginx is not installed (apt-get install nginx-light)" >&2; exit 2; }
[ -x "$bin" ] || { echo "pending.sh: no sanhook binary at $bin (cargo build --release)" >&2; exit 2; }

dir=$(mktemp -d)
mkdir -p "$dir/tmp" "$dir/data"
sanhook_pid=""
nginx_pid=""
cleanup() {
  [ -n "$sanhook_pid" ] && kill -9 "$sanhook_pid" 2>/dev/null || true
  [ -n "$nginx_pid" ] && kill "$nginx_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT

cat > "$dir/config.toml" <<EOF
[server]
listen = "127.0.0.1:$api_port"
[storage]
path = "$dir/data/sanhook.redb"
[delivery]
# Retries every second, so the restart measures resuming, not the wait of a long schedule.
retry_schedule = [$(python3 -c 'print(", ".join(["\"1s\""] * 40))')]
EOF

wait_port() {
  for _ in $(seq 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "pending.sh: nothing listens on port $1" >&2
  exit 1
}

start_sanhook() {
  SANHOOK_LOG=warn "$bin" serve --config "$dir/config.toml" 2>>"$dir/sanhook.log" &
  sanhook_pid=$!
}

start_sanhook
wait_port "$api_port"
curl -sf -X POST "http://127.0.0.1:$api_port/api/v1/webhooks" -H 'content-type: application/json' \
  -d "{\"name\":\"pending\",\"url\":\"http://127.0.0.1:$sink_port/hook\"}" >/dev/null

echo "== posting $events events (receiver down)"
t0=$(date +%s.%N)
python3 - "$api_port" "$events" <<'PY'
import http.client, json, sys
port, total = int(sys.argv[1]), int(sys.argv[2])
conn = http.client.HTTPConnection("127.0.0.1", port)
n = 0
while n < total:
    lines = []
    for i in range(n, min(n + 1000, total)):
        lines.append(json.dumps({
            "id": i + 1, "objectType": "bug", "objectID": i % 5000 + 1, "product": ",1,",
            "execution": 5, "actor": "alice", "actorName": "Alice Wang", "action": "edited",
            "date": "2026-11-20 09:00:35", "objectName": "Login fails on Safari after the session expires",
            "comment": "Checked on 17.1: the cookie is dropped when the tab sleeps. seq=%d" % i}))
    conn.request("POST", "/api/v1/events", "\n".join(lines), {"content-type": "application/x-ndjson"})
    r = conn.getresponse(); r.read()
    if r.status != 202:
        sys.exit("intake answered %d" % r.status)
    n += len(lines)
PY
t1=$(date +%s.%N)
echo "intake: $(python3 -c "print(round($events/($t1-$t0)))") events/s"
sleep 8
echo "== memory with $events deliveries pending: $(grep -E 'VmRSS|VmHWM' /proc/$sanhook_pid/status | tr -s ' ' | tr '\n' ' ')"

kill -9 "$sanhook_pid"; wait "$sanhook_pid" 2>/dev/null || true; sanhook_pid=""
sed -e "s/PORT/$sink_port/" -e "s|access_log off;|access_log $dir/access.log;|" "$here/nginx.conf" > "$dir/nginx.conf"
nginx -p "$dir" -c "$dir/nginx.conf" -e stderr &
nginx_pid=$!
wait_port "$sink_port"
: > "$dir/access.log"

echo "== restart (after kill -9) with the receiver up"
t0=$(date +%s.%N)
start_sanhook
first=""
deadline=$(( $(date +%s) + 900 ))
while :; do
  n=$(wc -l < "$dir/access.log")
  now=$(date +%s.%N)
  if [ -z "$first" ] && [ "$n" -gt 0 ]; then
    first=$(python3 -c "print(round($now-$t0, 2))")
    echo "first send: ${first} s after the restart"
  fi
  [ "$n" -ge "$events" ] && break
  [ -n "${WATCH:-}" ] && top -H -b -n 1 -p "$sanhook_pid" | sed -n 7,12p
  [ "$(date +%s)" -lt "$deadline" ] || { echo "pending.sh: only $n of $events arrived in 15 minutes" >&2; exit 1; }
  sleep 0.2
done
echo "all $events delivered $(python3 -c "print(round($now-$t0, 1))") s after the restart ($(wc -l < "$dir/access.log") requests logged)"
echo "peak memory of the restarted engine: $(grep -E 'VmHWM' /proc/$sanhook_pid/status | tr -s ' ')"
