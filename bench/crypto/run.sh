#!/bin/sh
# Encrypted stream throughput over loopback TCP: C<->C (hsp_bench_ss_peer) against JS<->JS
# (tests/interop/crypto_peer.js on @hyperswarm/secret-stream) in the same run. Each side is its
# own process; the initiator sends BENCH_MB MiB in 64 KiB messages, the responder measures from
# its first to its last received byte. Best of BENCH_RUNS runs each, interleaved.
set -eu
cd "$(dirname "$0")/../.."
C_PEER="$HSP_BUILD/bench/crypto/hsp_bench_ss_peer"
JS_PEER="tests/interop/crypto_peer.js"
MB=${BENCH_MB:-512}
RUNS=${BENCH_RUNS:-3}
BYTES=$((MB * 1024 * 1024))
CHUNK=65536
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# run_pair <server command...> -- <client command...>: prints the server's rx_mbps
run_pair() {
  server_out="$tmp/server.out"
  : > "$server_out"
  server=""
  while [ "$1" != "--" ]; do server="$server $1"; shift; done
  shift
  $server --listen 0 --mode xx --expect "$BYTES" --chunk "$CHUNK" --checksum 0 > "$server_out" &
  pid=$!
  port=""
  for _ in $(seq 1 100); do
    port=$(sed -n 's/^port //p' "$server_out")
    [ -n "$port" ] && break
    sleep 0.05
  done
  "$@" --connect "$port" --mode xx --send "$BYTES" --chunk "$CHUNK" --checksum 0 > "$tmp/client.out"
  wait "$pid"
  sed -n 's/^rx_mbps //p' "$server_out"
}

best() { sort -g | tail -1; }

: > "$tmp/c"
: > "$tmp/js"
for _ in $(seq 1 "$RUNS"); do
  run_pair "$C_PEER" -- "$C_PEER" >> "$tmp/c"
  run_pair node "$JS_PEER" -- node "$JS_PEER" >> "$tmp/js"
done
c=$(best < "$tmp/c")
js=$(best < "$tmp/js")
echo "# secret-stream over loopback TCP, ${MB} MiB, 64 KiB messages, best of $RUNS: C $c MB/s, JS $js MB/s" >&2
awk -v c="$c" -v js="$js" 'BEGIN { printf "bench secretstream_throughput_c %.1f vs_js=%.2f\n", c, c / js }'
