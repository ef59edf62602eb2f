#!/bin/sh
# The HTTP gateway end to end with the real binary on a private loopback HyperDHT:
# `hyperseaport --web` (inside the registry) and two `hyperseaport web` gateways for the same
# registry, in front of a keep-alive HTTP service registered with `hyperseaport service`.
# usage: gateway_e2e.sh HYPERSEAPORT BACKEND
set -u
BIN=$1 BACKEND=$2
T=$(mktemp -d)
pids=""
passed=0
fail() {
  echo "FAIL: $*" >&2
  for f in "$T"/*.out "$T"/*.err; do [ -s "$f" ] && { echo "--- $f" >&2; tail -n 20 "$f" >&2; }; done
  exit 1
}
ok() { passed=$((passed + 1)); echo "ok: $*"; }
cleanup() {
  for p in $pids; do kill -9 "$p" 2>/dev/null; done
  wait 2>/dev/null
  rm -rf "$T"
}
trap cleanup EXIT INT TERM
export HOME="$T/home" XDG_CONFIG_HOME="" XDG_DATA_HOME=""
mkdir -p "$HOME"

wait_for() { # FILE PATTERN [SECONDS]
  i=0 limit=$(( ${3:-30} * 10 ))
  until grep -q -- "$2" "$1" 2>/dev/null; do
    i=$((i + 1)); [ $i -le $limit ] || fail "timed out waiting for '$2' in $1"
    sleep 0.1
  done
}
start() { # NAME CMD...
  name=$1; shift
  "$@" >"$T/$name.out" 2>"$T/$name.err" &
  last=$!
  pids="$pids $last"
}
stop() { # PID: SIGTERM, exit 0 within 10 s
  kill -TERM "$1" 2>/dev/null
  i=0
  while kill -0 "$1" 2>/dev/null; do
    i=$((i + 1)); [ $i -le 100 ] || fail "pid $1 did not exit within 10 s of SIGTERM"
    sleep 0.1
  done
  wait "$1"; rc=$?
  [ $rc -eq 0 ] || fail "pid $1 exited with status $rc after SIGTERM"
}
free_port() { # a port the kernel just handed out and released (node is there for the tests)
  node -e "const s = require('net').createServer().listen(0, '127.0.0.1', () => {
    console.log(s.address().port); s.close() })"
}
# until_ok SECONDS CMD...: retries CMD (registry changes take a moment to reach a replica)
until_ok() {
  n=$(( $1 * 5 )); shift
  while [ $n -gt 0 ]; do "$@" && return 0; n=$((n - 1)); sleep 0.2; done
  return 1
}
body_is() { [ "$(curl -s -m 10 "$1")" = "$2" ]; }
status_is() { [ "$(curl -s -o /dev/null -w '%{http_code}' -m 10 "$1")" = "$2" ]; }
has() { curl -s -m 10 "$1" | grep -q -- "$2"; }

start node0 "$BIN" dht-node --host 127.0.0.1 --bootstrap ""
wait_for "$T/node0.out" listening
BOOT=$(sed -n 's/^listening \([0-9.]*:[0-9]*\).*/\1/p' "$T/node0.out" | head -n 1)
for i in 1 2 3; do start node$i "$BIN" dht-node --host 127.0.0.1 --bootstrap "$BOOT"; done
for i in 1 2 3; do wait_for "$T/node$i.out" ready; done
NET="--bootstrap $BOOT --bind 127.0.0.1"

SEED=$(printf '%064d' 0 | tr 0 5)
RW=$(free_port)
start registry "$BIN" registry --registrySeed "$SEED" --storage "$T/store" $NET --web "$RW" --host 127.0.0.1
REG=$last
wait_for "$T/registry.out" "^registryPublicKey=" 60
KEY=$(sed -n 's/^registryPublicKey=//p' "$T/registry.out")
wait_for "$T/registry.out" "^HTTP gateway on http://127.0.0.1:$RW/"
ok "registry --web listens"

start backend "$BACKEND"
wait_for "$T/backend.out" listening
BPORT=$(sed -n 's/^listening //p' "$T/backend.out")
start svc "$BIN" service --port "$BPORT" --host 127.0.0.1 --role web@1.4.0 --registryPublicKey "$KEY" $NET
SVC=$last
wait_for "$T/svc.out" "^registered service" 60
SKEY=$(sed -n 's/^started p2p service on //p' "$T/svc.out")

W1=$(free_port)
start web1 "$BIN" web --port "$W1" --host 127.0.0.1 --registryPublicKey "$KEY" $NET --storage "$T/web1"
WEB1=$last
W2=$(free_port)
start web2 "$BIN" web --port "$W2" --host 127.0.0.1 --registryPublicKey "$KEY" $NET --storage "$T/web1"
WEB2=$last
wait_for "$T/web1.out" "^HTTP gateway on http://127.0.0.1:$W1/" 60
wait_for "$T/web2.out" "^HTTP gateway on http://127.0.0.1:$W2/" 60
wait_for "$T/web1.out" "^connected to registry" 60
ok "two web gateways for one registry (sharing a storage directory)"

for P in "$RW" "$W1" "$W2"; do
  until_ok 30 body_is "http://127.0.0.1:$P/role/web@1.x/anything?q=1" "hello from the backend" ||
    fail "GET /role/web@1.x through the gateway on $P"
  ok "GET /role/web@1.x through the gateway on $P (HyperDHT to the service)"
  has "http://127.0.0.1:$P/list/web@%5E1.0.0" "\"id\":\"$SKEY\",\"role\":\"web\",\"version\":\"1.4.0\"" ||
    fail "/list on $P"
  ok "/list/web@^1.0.0 on $P"
  body_is "http://127.0.0.1:$P/instance/$SKEY/" "hello from the backend" || fail "/instance on $P"
  ok "/instance/KEY on $P"
  status_is "http://127.0.0.1:$P/role/web@2/" 404 || fail "404 on $P"
  status_is "http://127.0.0.1:$P/role/web@%3E%3E1/" 400 || fail "400 on $P"
  has "http://127.0.0.1:$P/metrics" 'hsp_gateway_requests_total{role="web"} [1-9]' || fail "metrics on $P"
  has "http://127.0.0.1:$P/" "hyperseaport gateway" || fail "dashboard on $P"
  ok "errors, /metrics and the dashboard on $P"
done
# keep-alive: several requests on one connection (curl reuses it for URLs given together)
n=$(curl -s -m 20 "http://127.0.0.1:$W1/role/web@1/a" "http://127.0.0.1:$W1/role/web@1/b" \
  "http://127.0.0.1:$W1/role/web@1/c" | grep -c "hello from the backend")
[ "$n" = 3 ] || fail "three requests on one connection: $n"
ok "keep-alive through the standalone gateway"

# The service leaves: every gateway sees it go.
stop "$SVC"
for P in "$RW" "$W1" "$W2"; do
  until_ok 30 body_is "http://127.0.0.1:$P/list/web" "[]" || fail "deregistration on $P"
  status_is "http://127.0.0.1:$P/role/web/" 404 || fail "404 after deregistration on $P"
  ok "deregistration reaches the gateway on $P"
done

stop "$WEB1"
stop "$WEB2"
stop "$REG"
ok "clean exits"
echo "gateway_e2e: $passed passed, 0 failed"
