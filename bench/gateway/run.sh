#!/bin/sh
# Gateway benchmark: wrk (keep-alive, 32 connections) against a small C HTTP service, once
# directly and once through the gateway (/role/bench@1/ over the static TCP upstream), in the
# same run, alternating, best of two rounds each. Prints:
#   bench gateway_rps <req/s through the gateway> vs_direct=<ratio>
#   bench gateway_p99_ms <p99 latency through the gateway, ms>
#   bench gateway_web_rps <req/s through `hyperseaport web`> vs_direct=<ratio> (web.sh)
set -eu
[ -n "${GATEWAY_BENCH_DEBUG:-}" ] && set -x
B=${HSP_BUILD:?HSP_BUILD must name a release build}
DUR=${GATEWAY_BENCH_SECONDS:-4}
CONNS=${GATEWAY_BENCH_CONNECTIONS:-32}
command -v wrk >/dev/null || { echo "bench/gateway: wrk not installed (scripts/setup)" >&2; exit 1; }
tmp=$(mktemp -d)
bpid=""
gpid=""
cleanup() {
  [ -n "${GATEWAY_BENCH_DEBUG:-}" ] && cat "$tmp"/*.txt >&2
  exec 3>&- 2>/dev/null || true
  [ -n "$gpid" ] && kill "$gpid" 2>/dev/null || true
  [ -n "$bpid" ] && kill "$bpid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

wait_port() { # file -> port from its "listening N" line
  i=0
  while [ $i -lt 100 ]; do
    p=$(sed -n 's/^listening \([0-9]*\)$/\1/p' "$1" | head -n 1)
    [ -n "$p" ] && { echo "$p"; return 0; }
    sleep 0.1
    i=$((i + 1))
  done
  echo "bench/gateway: no listening line in $1" >&2
  return 1
}

"$B/bench/gateway/gateway_bench_backend" >"$tmp/backend.out" &
bpid=$!
bport=$(wait_port "$tmp/backend.out")
mkfifo "$tmp/in"
"$B/tests/agent/gateway_tool" <"$tmp/in" >"$tmp/gw.out" &
gpid=$!
exec 3>"$tmp/in"
gport=$(wait_port "$tmp/gw.out")
echo "add 00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff bench 1.0.0 $bport" >&3
sleep 0.2

rps() { sed -n 's/^Requests\/sec: *\([0-9.]*\).*/\1/p' "$1"; }
p99_ms() { # wrk --latency: "     99%    1.23ms" (us, ms or s)
  sed -n 's/^ *99% *\([0-9.]*\)\([a-z]*\).*/\1 \2/p' "$1" |
    awk '{ v = $1; if ($2 == "us") v /= 1000; else if ($2 == "s") v *= 1000; printf "%.3f\n", v }'
}
best() { awk 'BEGIN { m = 0 } { if ($1 > m) m = $1 } END { print m }'; }
low() { awk 'BEGIN { m = -1 } { if (m < 0 || $1 < m) m = $1 } END { print m }'; }

: >"$tmp/direct.rps"
: >"$tmp/gw.rps"
: >"$tmp/gw.p99"
for round in 1 2; do
  wrk -t1 -c"$CONNS" -d"${DUR}s" --latency "http://127.0.0.1:$bport/" >"$tmp/d$round.txt"
  rps "$tmp/d$round.txt" >>"$tmp/direct.rps"
  wrk -t1 -c"$CONNS" -d"${DUR}s" --latency "http://127.0.0.1:$gport/role/bench@1/" >"$tmp/g$round.txt"
  rps "$tmp/g$round.txt" >>"$tmp/gw.rps"
  p99_ms "$tmp/g$round.txt" >>"$tmp/gw.p99"
  if grep -q "Non-2xx" "$tmp/g$round.txt"; then
    echo "bench/gateway: errors through the gateway:" >&2
    cat "$tmp/g$round.txt" >&2
    exit 1
  fi
done
direct=$(best <"$tmp/direct.rps")
gw=$(best <"$tmp/gw.rps")
p99=$(low <"$tmp/gw.p99")
ratio=$(awk -v g="$gw" -v d="$direct" 'BEGIN { printf "%.2f", (d > 0 ? g / d : 0) }')
printf 'bench gateway_rps %.0f vs_direct=%s\n' "$gw" "$ratio"
printf 'bench gateway_p99_ms %s\n' "$p99"
echo "quit" >&3
# The same through the real `web` gateway over HyperDHT (sessions and channels).
sh "$(dirname "$0")/web.sh"
