#!/bin/sh
# The HTTP gateway end to end with the real binary on a private loopback HyperDHT:
# `hyperseaport --web` (inside the registry) and two `hyperseaport web` gateways for the same
# registry, in front of a keep-alive HTTP service registered with `hyperseaport service`.
# usage: gateway_e2e.sh HYPERSEAPORT BACKEND
set -u
BIN=$1 BACKEND=$2
. "$(dirname "$0")/gateway_lib.sh"

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
