#!/bin/sh
# The data plane through the real binary (registry, service, proxy on a loopback DHT): new
# connection latency over the proxy's warm session vs a fresh HyperDHT connect per
# connection, and throughput through the proxy vs straight to the backend, same run.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
export NODE_PATH="$here/../../tests/interop/node_modules"
node "$here/run.js" "$HSP_BUILD/hyperseaport" "$HSP_BUILD/bench/agent/agent_conn_bench"
