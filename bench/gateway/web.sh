#!/bin/sh
# The gateway as deployed: `hyperseaport web` on a loopback HyperDHT in front of a registered
# service, wrk (keep-alive) through it vs straight to the backend, same run. Prints:
#   bench gateway_web_rps <req/s through `web`> vs_direct=<ratio>
# usage: web.sh [HYPERSEAPORT BACKEND] (default: from $HSP_BUILD)
set -eu
B=${HSP_BUILD:-}
BIN=${1:-$B/hyperseaport}
BACKEND=${2:-$B/bench/gateway/gateway_bench_backend}
DUR=${GATEWAY_BENCH_SECONDS:-4}
CONNS=${GATEWAY_BENCH_CONNECTIONS:-32}
command -v wrk >/dev/null || { echo "bench/gateway: wrk not installed (scripts/setup)" >&2; exit 1; }
T=$(mktemp -d)
pids=""
cleanup() {
  for p in $pids; do kill -9 "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$T"
}
trap cleanup EXIT INT TERM
export HOME="$T/home"
mkdir -p "$HOME"
start() { name=$1; shift; "$@" >"$T/$name.out" 2>"$T/$name.err" & last=$!; pids="$pids $last"; }
wait_for() {
  n=0
  until grep -q -- "$2" "$1" 2>/dev/null; do
    n=$((n + 1)); [ $n -le 600 ] || { echo "bench/gateway: no '$2' in $1" >&2; exit 1; }
    sleep 0.1
  done
}
free_port() { node -e "const s = require('net').createServer().listen(0, '127.0.0.1', () => {
  console.log(s.address().port); s.close() })"; }

start node0 "$BIN" dht-node --host 127.0.0.1 --bootstrap ""
wait_for "$T/node0.out" listening
BOOT=$(sed -n 's/^listening \([0-9.]*:[0-9]*\).*/\1/p' "$T/node0.out" | head -n 1)
for k in 1 2 3; do start node$k "$BIN" dht-node --host 127.0.0.1 --bootstrap "$BOOT"; done
for k in 1 2 3; do wait_for "$T/node$k.out" ready; done
NET="--bootstrap $BOOT --bind 127.0.0.1"
start registry "$BIN" registry --registrySeed "$(printf '%064d' 0 | tr 0 7)" --storage "$T/store" $NET
wait_for "$T/registry.out" "^registryPublicKey="
KEY=$(sed -n 's/^registryPublicKey=//p' "$T/registry.out")
start backend "$BACKEND"
wait_for "$T/backend.out" listening
BPORT=$(sed -n 's/^listening //p' "$T/backend.out")
start svc "$BIN" service --port "$BPORT" --host 127.0.0.1 --role bench@1.0.0 --registryPublicKey "$KEY" $NET
wait_for "$T/svc.out" "^registered service"
W=$(free_port)
start web "$BIN" web --port "$W" --host 127.0.0.1 --registryPublicKey "$KEY" $NET --storage "$T/web"
wait_for "$T/web.out" "^connected to registry"
n=0
until [ "$(curl -s -m 5 "http://127.0.0.1:$W/role/bench@1/")" != "" ]; do
  n=$((n + 1)); [ $n -le 100 ] || { echo "bench/gateway: web never answered" >&2; exit 1; }
  sleep 0.2
done

rps() { sed -n 's/^Requests\/sec: *\([0-9.]*\).*/\1/p' "$1"; }
best() { awk 'BEGIN { m = 0 } { if ($1 > m) m = $1 } END { print m }'; }
: >"$T/d.rps"
: >"$T/g.rps"
for round in 1 2; do
  wrk -t1 -c"$CONNS" -d"${DUR}s" "http://127.0.0.1:$BPORT/" >"$T/d$round.txt"
  rps "$T/d$round.txt" >>"$T/d.rps"
  wrk -t1 -c"$CONNS" -d"${DUR}s" "http://127.0.0.1:$W/role/bench@1/" >"$T/g$round.txt"
  rps "$T/g$round.txt" >>"$T/g.rps"
  if grep -q "Non-2xx" "$T/g$round.txt"; then
    echo "bench/gateway: errors through web:" >&2
    cat "$T/g$round.txt" >&2
    exit 1
  fi
done
d=$(best <"$T/d.rps")
g=$(best <"$T/g.rps")
printf 'bench gateway_web_rps %.0f vs_direct=%s\n' "$g" \
  "$(awk -v g="$g" -v d="$d" 'BEGIN { printf "%.2f", (d > 0 ? g / d : 0) }')"
