#!/usr/bin/env bash
# The loopback ceiling two ways, against the same receiver (one nginx worker, `return 200`):
#   1. wrk -t2 -c64, a C client, POSTing a ~300-byte body for 10 s;
#   2. `sanhook loadtest --ceiling-only --target`, the engine's own HTTP client settings.
# The second should reach the first within 10 %: it is what every deliveries/s is divided by.
#
# Usage: benches/loadtest/ceiling.sh [SANHOOK_BINARY]   (default target/release/sanhook, or
# $CARGO_TARGET_DIR/release/sanhook). Loopback only; bounded in time; removes its nginx.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
bin=${1:-${CARGO_TARGET_DIR:-$here/../../target}/release/sanhook}
seconds=${SECONDS_WRK:-10}
port=${PORT:-18931}

for tool in nginx wrk; do
  command -v "$tool" >/dev/null || { echo "ceiling.sh: $tool is not installed (apt-get install wrk nginx-light)" >&2; exit 2; }
done
[ -x "$bin" ] || { echo "ceiling.sh: no sanhook binary at $bin (cargo build --release)" >&2; exit 2; }

dir=$(mktemp -d)
mkdir -p "$dir/tmp"
sed "s/PORT/$port/" "$here/nginx.conf" > "$dir/nginx.conf"
nginx -p "$dir" -c "$dir/nginx.conf" -e stderr &
nginx_pid=$!
cleanup() {
  kill "$nginx_pid" 2>/dev/null || true
  wait "$nginx_pid" 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT

for _ in $(seq 50); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.1
done

url="http://127.0.0.1:$port/"
echo "== wrk -t2 -c64 -d${seconds}s -s post.lua $url"
timeout $((seconds + 20)) wrk -t2 -c64 -d"${seconds}s" -s "$here/post.lua" "$url"
echo
echo "== $bin loadtest --ceiling-only --concurrency 64 --target $url"
timeout 60 "$bin" loadtest --ceiling-only --concurrency 64 --target "$url"
