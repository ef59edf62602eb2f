#!/bin/sh
# Registry benchmarks (no JS reference exists for these: the original tool had no durable
# store, no replica and no semver index, so the lines carry absolute numbers only).
set -eu
"$HSP_BUILD/bench/registry/registry_bench" "${TMPDIR:-/tmp}"
