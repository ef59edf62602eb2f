#!/bin/sh
# Connect latency p50/p99 over a loopback hyperdht testnet: C client vs JS client, same run;
# then memory per idle connection, C vs JS.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
export NODE_PATH="$here/../../tests/interop/node_modules"
node "$here/run.js" "$HSP_BUILD/bench/dht/dht_connect_bench"
node "$here/idle_run.js" "$HSP_BUILD/bench/dht/dht_idle_bench"
