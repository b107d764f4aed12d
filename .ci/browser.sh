#!/usr/bin/env bash
# Browser tests of the web admin: .ci/browser.sh [path/to/sanhook]
#
# Headless Debian chromium (driven by playwright-core, tests/browser/) against the real binary and
# local fakes, all inside a network namespace of its own with only `lo` up: nothing can reach any
# address but loopback. The namespace and every process started in it are removed at the end,
# whatever happens. Needs root (ip netns). Exit status: the test's.
#
# The binary defaults to target/debug/sanhook (CARGO_TARGET_DIR respected), built when missing.
# Screenshots go to target/browser-shots/ (SHOTS_DIR to change it); the test prints their names.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

if [ "$(id -u)" != 0 ]; then
  echo "browser.sh: needs root (it creates a network namespace); run it with sudo" >&2
  exit 2
fi

# The binary.
target_dir=${CARGO_TARGET_DIR:-target}
case "$target_dir" in /*) ;; *) target_dir="$repo/$target_dir" ;; esac
bin=${1:-$target_dir/debug/sanhook}
if [ ! -x "$bin" ]; then
  if [ $# -gt 0 ]; then echo "browser.sh: no executable at $bin" >&2; exit 2; fi
  echo "== browser: building $bin"
  cargo build --bin sanhook
fi
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")

# Chromium, and a Chinese font (without one the 简体中文 pages are boxes in the screenshots).
pkgs=()
[ -x /usr/bin/chromium ] || pkgs+=(chromium chromium-driver)
fc-list :lang=zh 2>/dev/null | grep -q . || pkgs+=(fonts-wqy-microhei)
if [ ${#pkgs[@]} -gt 0 ]; then
  echo "== browser: installing ${pkgs[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${pkgs[@]}" >/dev/null
fi
if ! command -v node >/dev/null 2>&1; then
  echo "browser.sh: node is missing (node 18 or later runs tests/browser)" >&2
  exit 2
fi
if [ ! -d tests/browser/node_modules/playwright-core ]; then
  echo "== browser: npm ci"
  (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)
fi

# A namespace of our own: only loopback.
ns="sanhook-browser-$$-$RANDOM"
pgid=""
cleanup() {
  local rc=$?
  if [ -n "$pgid" ]; then
    kill -TERM -- "-$pgid" 2>/dev/null || true
    for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 -- "-$pgid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL -- "-$pgid" 2>/dev/null || true
  fi
  # Anything still inside the namespace (a process that left the group) goes too.
  for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null || true; done
  ip netns del "$ns" 2>/dev/null || true
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
ip netns add "$ns"
ip netns exec "$ns" ip link set lo up
links=$(ip -n "$ns" -o link show | awk -F': ' '{print $2}' | tr '\n' ' ')
if [ "$links" != "lo " ]; then echo "browser.sh: the namespace has more than lo: $links" >&2; exit 2; fi
if [ -n "$(ip -n "$ns" route show; ip -n "$ns" -6 route show | grep -v '^::1 \|^local ')" ]; then
  echo "browser.sh: the namespace has routes beyond loopback" >&2; ip -n "$ns" route show >&2; exit 2
fi

echo "== browser: $bin in network namespace $ns (lo only), chromium $(/usr/bin/chromium --version 2>/dev/null | awk '{print $2}')"
start=$(date +%s)
# setsid: the test, sanhook, chromium and its children form one process group, killed above
# (and, whatever group they end up in, every process inside the namespace). --wait: the exit
# status is the test's even if setsid had to fork.
setsid --wait ip netns exec "$ns" env SANHOOK_BIN="$bin" node tests/browser/admin.test.js &
pgid=$!
set +e
wait "$pgid"
rc=$?
set -e
echo "== browser: exit $rc after $(( $(date +%s) - start )) s"
exit "$rc"
