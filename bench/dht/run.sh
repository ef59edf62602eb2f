#!/bin/sh
# Connect latency p50/p99 over a loopback hyperdht testnet: C client vs JS client, same run.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
NODE_PATH="$here/../../tests/interop/node_modules" exec node "$here/run.js" "$HSP_BUILD/bench/dht/dht_connect_bench"
