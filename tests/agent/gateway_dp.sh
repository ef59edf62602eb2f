#!/bin/sh
# The HTTP gateway on the data plane, with the real binary on a private loopback HyperDHT:
# three instances of a role behind `hyperseaport web`. Streams are channels on one session per
# instance (concurrent requests open no further HyperDHT connection), and a `kill -9` of one
# instance ejects it: requests keep succeeding on the others, and it is shown as failed.
# usage: gateway_dp.sh HYPERSEAPORT BACKEND
set -u
BIN=$1 BACKEND=$2
. "$(dirname "$0")/gateway_lib.sh"

SEED=$(printf '%064d' 0 | tr 0 6)
start registry "$BIN" registry --registrySeed "$SEED" --storage "$T/store" $NET
wait_for "$T/registry.out" "^registryPublicKey=" 60
KEY=$(sed -n 's/^registryPublicKey=//p' "$T/registry.out")

for k in 1 2 3; do # (wait_for uses i)
  start backend$k "$BACKEND"
  wait_for "$T/backend$k.out" listening
  BPORT=$(sed -n 's/^listening //p' "$T/backend$k.out")
  start svc$k "$BIN" service --port "$BPORT" --host 127.0.0.1 --role web@1.0.0 --registryPublicKey "$KEY" $NET
  eval SVC$k=\$last
  wait_for "$T/svc$k.out" "^registered service" 60
done
SKEY1=$(sed -n 's/^started p2p service on //p' "$T/svc1.out")
SKEY2=$(sed -n 's/^started p2p service on //p' "$T/svc2.out")
SKEY3=$(sed -n 's/^started p2p service on //p' "$T/svc3.out")

W=$(free_port)
start web "$BIN" web --port "$W" --host 127.0.0.1 --registryPublicKey "$KEY" $NET --storage "$T/web" --balance p2c
WEB=$last
wait_for "$T/web.out" "^HTTP gateway on http://127.0.0.1:$W/" 60
wait_for "$T/web.out" "^connected to registry" 60
U="http://127.0.0.1:$W"
until_ok 30 has "$U/list/web@1" "$SKEY3" || fail "the instances in the gateway's replica"
until_ok 30 body_is "$U/role/web@1/" "hello from the backend" || fail "GET /role/web@1/"
ok "GET /role/web@1/ over the data plane"
body_is "$U/instance/$SKEY1/" "hello from the backend" || fail "/instance/KEY1"
body_is "$U/instance/$SKEY2/" "hello from the backend" || fail "/instance/KEY2"
body_is "$U/instance/$SKEY3/" "hello from the backend" || fail "/instance/KEY3"
ok "/instance/KEY reaches each instance"

sessions() { curl -s -m 10 "$U/metrics" | sed -n 's/^hsp_gateway_instance_sessions \([0-9]*\)$/\1/p'; }
S=$(sessions)
[ "$S" = 3 ] || fail "one session per instance after warming them: got '$S'"
ok "one data plane session per instance ($S)"
# 16 concurrent requests need up to 16 streams: they are channels on the three warm sessions.
i=0; : >"$T/conc"
while [ $i -lt 16 ]; do
  curl -s -m 20 -o /dev/null -w '%{http_code}\n' "$U/role/web@1/c$i" >>"$T/conc" &
  i=$((i + 1))
done
wait_curls() { n=0; while [ "$(grep -c . "$T/conc")" -lt 16 ] && [ $n -lt 300 ]; do n=$((n + 1)); sleep 0.1; done; }
wait_curls
[ "$(grep -c '^200$' "$T/conc")" = 16 ] || fail "16 concurrent requests: $(sort "$T/conc" | uniq -c | tr '\n' ' ')"
S=$(sessions)
[ "$S" = 3 ] || fail "concurrent requests opened HyperDHT connections: sessions '$S'"
ok "16 concurrent requests, still 3 sessions (streams are mux channels)"
up=$(curl -s -m 10 "$U/metrics" | sed -n 's/^hsp_gateway_upstream_streams \([0-9]*\)$/\1/p')
[ "${up:-0}" -ge 2 ] || fail "upstream streams pooled: '$up'"
ok "$up upstream streams on 3 sessions"

# kill -9 one instance: its sessions die within a second (liveness), the balancer ejects it.
kill -9 "$SVC1"
sleep 2
bad=0 i=0
while [ $i -lt 30 ]; do
  c=$(curl -s -o /dev/null -w '%{http_code}' -m 10 "$U/role/web@1/k$i")
  [ "$c" = 200 ] || bad=$((bad + 1))
  i=$((i + 1))
done
[ $bad = 0 ] || fail "$bad of 30 requests failed after the kill was detected"
ok "30 requests after kill -9 of one instance: all 200"
health() { # KEY: the instance's health in /list
  curl -s -m 10 "$U/list/web@1" | node -e "let s = ''; process.stdin.on('data', d => s += d)
    .on('end', () => { const i = JSON.parse(s).find(x => x.id === '$1'); console.log(i ? i.health : 'absent') })"
}
# (absent if the registry already dropped it: its lease ended with its registry session)
h=$(health "$SKEY1")
[ "$h" = failed ] || [ "$h" = absent ] || fail "killed instance $h: $(curl -s "$U/list/web@1")"
[ "$(health "$SKEY2")" = healthy ] || fail "surviving instance not healthy: $(curl -s "$U/list/web@1")"
[ "$(health "$SKEY3")" = healthy ] || fail "surviving instance not healthy: $(curl -s "$U/list/web@1")"
ok "the killed instance is ejected ($h), the others healthy"
S=$(sessions)
# (the survivors', and possibly a probe connecting to the killed one)
[ "$S" -le 3 ] || fail "sessions after the kill: '$S'"
ok "no further sessions after the kill ($S, probes included)"

# SIGTERM drains an instance (GOAWAY): the gateway's pooled channels must not hold it open,
# and requests go on to the last one.
i=0
while [ $i -lt 8 ]; do curl -s -o /dev/null -m 10 "$U/role/web@1/w$i"; i=$((i + 1)); done
stop "$SVC2"
ok "a draining instance exits within 10 s (drain allows 30) despite the gateway's pooled channels"
bad=0 i=0
while [ $i -lt 20 ]; do
  c=$(curl -s -o /dev/null -w '%{http_code}' -m 10 "$U/role/web@1/d$i")
  [ "$c" = 200 ] || bad=$((bad + 1))
  i=$((i + 1))
done
[ $bad = 0 ] || fail "$bad of 20 requests failed after the drain"
ok "20 requests after the drain: all 200"

stop "$WEB"
ok "clean exit"
echo "gateway_dp: $passed passed, 0 failed"
