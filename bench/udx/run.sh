#!/bin/sh
# Single-stream loopback throughput, C (hsp_udx) vs JS (udx-native 1.21.3), same run.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
exec node "$here/run.js" "$HSP_BUILD/bench/udx/udx_bench_peer"
