#!/usr/bin/env bash
# NAT lab test (CTest labels dht + natlab): the C holepunch in network namespaces behind
# nftables masquerade NATs (tests/dht/natlab/natlab.sh; topology in the shared natlab.md):
#   pub  : the "internet" 203.0.113.0/24; five C `hyperseaport dht-node`s on .10-.14:49737
#   nat1 : 203.0.113.101, LAN 192.168.1.0/24 with host a (the server)
#   nat2 : 203.0.113.102, LAN 192.168.2.0/24 with host b (the client)
# Cases (each process fresh):
#   cc     consistent/consistent, C pipe <-> C pipe: connects, and both ends report a direct
#          path to the other NAT's WAN address (there is no relay), data both ways
#   rr     random/random: the client fails with the double-random-NAT error (no blind relay)
#   rc     server random (birthday sockets), client consistent (random ports): direct
#   samenat client a2 behind the same NAT as the server (no hairpin): the LAN shortcut
#   cc-js  C client -> JS hyperdht server (natlab-test.js): echo comes back over a direct path
#   js-cc  JS client -> C server: the JS client reports ok and path "direct"
#   rr-relay random/random, C client (dht_connect_tool) with relayThrough = a JS blind relay
#          node at 203.0.113.20 -> JS server: the echo comes back over the relay's address
#   rr-relay-js  JS client with relayThrough -> C server (which pairs through that relay)
# Exit 77 (SKIP) only without root or network namespaces. The lab is torn down on any exit.
# usage: natlab_test.sh HYPERSEAPORT NODE_MODULES_DIR DHT_CONNECT_TOOL
set -u
H=$(readlink -f "$1")
export NODE_PATH=$(readlink -f "$2")
TOOL=$(readlink -f "$3")
HERE=$(cd "$(dirname "$0")" && pwd)
LAB="$HERE/natlab/natlab.sh"
JS="$HERE/natlab/natlab-test.js"
export NATLAB_PREFIX="hspnl$$-"
export NATLAB_STATE="/tmp/${NATLAB_PREFIX}state"
W=$(mktemp -d /tmp/hsp-natlab.XXXXXX)
BOOT=203.0.113.10:49737
ns() { echo "${NATLAB_PREFIX}$1"; }

if [ "$(id -u)" != 0 ]; then echo "SKIP: needs root (network namespaces)"; exit 77; fi
if ! ip netns add "${NATLAB_PREFIX}probe" 2>/dev/null; then echo "SKIP: no network namespace support"; exit 77; fi
ip netns del "${NATLAB_PREFIX}probe"
for t in nft conntrack node; do
  command -v $t >/dev/null || { echo "FAIL: $t missing (scripts/setup installs nftables and conntrack)"; exit 1; }
done

cleanup() {
  bash "$LAB" teardown >/dev/null 2>&1
  [ -n "${NATLAB_KEEP:-}" ] || rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

fails=0
pass() { echo "PASS $*"; }
fail() { echo "FAIL $*"; fails=$((fails + 1)); }
now_ms() { echo $(($(date +%s%N) / 1000000)); }
# wait_for FILE PATTERN SECONDS
wait_for() {
  local i
  for i in $(seq 1 $(($3 * 10))); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
  return 1
}
show() { for f in "$@"; do echo "--- $f"; head -c 4000 "$f"; done; }
# Stop everything running on the hosts (a, b): the pipes exit on SIGTERM.
stop_hosts() {
  local n pids
  for n in a b; do
    pids=$(ip netns pids "$(ns $n)" 2>/dev/null)
    [ -n "$pids" ] && kill $pids 2>/dev/null
  done
  sleep 0.3
  for n in a b; do
    pids=$(ip netns pids "$(ns $n)" 2>/dev/null)
    [ -n "$pids" ] && kill -9 $pids 2>/dev/null
  done
}

bash "$LAB" setup consistent consistent >"$W/setup.log" 2>&1 || { show "$W/setup.log"; echo "FAIL: lab setup"; exit 1; }
# Replace the lab's JS testnet with C DHT nodes at the same addresses.
kill "$(cat "$NATLAB_STATE/testnet.pid")" 2>/dev/null
sleep 0.5
ip netns exec "$(ns pub)" "$H" dht-node --host 203.0.113.10 --port 49737 --bootstrap "" >"$W/node0.log" 2>&1 &
wait_for "$W/node0.log" ready 10 || { show "$W/node0.log"; echo "FAIL: first dht-node"; exit 1; }
for i in 11 12 13 14; do
  ip netns exec "$(ns pub)" "$H" dht-node --host 203.0.113.$i --port 49737 --bootstrap $BOOT >"$W/node$i.log" 2>&1 &
done
for i in 11 12 13 14; do
  wait_for "$W/node$i.log" "ready persistent" 20 || { show "$W/node$i.log"; echo "FAIL: dht-node .$i"; exit 1; }
done

seed_of() { printf '%s' "$1" | sha256sum | cut -c1-64; }

# c_case NAME MODE1 MODE2 EXPECT(direct|fail) TIMEOUT: C pipe --listen in a, C pipe KEY in b.
c_case() { # [CLIENT_NS, default b]
  local name=$1 want=$4 to=$5 cns=${6:-b} c0
  c0=$(now_ms)
  bash "$LAB" nat nat1 "$2" >/dev/null; bash "$LAB" nat nat2 "$3" >/dev/null
  (sleep "$to"; echo "from-server-$name") 2>/dev/null | timeout $((to + 5)) ip netns exec "$(ns a)" "$H" pipe --listen \
    --seed "$(seed_of "$name")" --bootstrap $BOOT >"$W/$name.srv.out" 2>"$W/$name.srv.err" &
  wait_for "$W/$name.srv.out" . 10 || { fail "$name: server printed no key"; return; }
  local key t0 rc ms
  key=$(head -1 "$W/$name.srv.out")
  sleep 1 # let the announce land
  t0=$(now_ms)
  (echo "from-client-$name"; sleep "$to") 2>/dev/null | timeout $((to + 5)) ip netns exec "$(ns $cns)" "$H" pipe "$key" \
    --bootstrap $BOOT >"$W/$name.cli.out" 2>"$W/$name.cli.err" &
  if [ "$want" != fail ]; then
    if wait_for "$W/$name.cli.err" "connected directly" "$to"; then ms=$(($(now_ms) - t0)); fi
    wait_for "$W/$name.srv.out" "from-client-$name" 10
  else
    wait_for "$W/$name.cli.err" "connect failed" "$to"; ms=$(($(now_ms) - t0))
  fi
  # The client's router must hold the punched flow to the server's NAT, answered (not UNREPLIED).
  ip netns exec "$(ns nat2)" conntrack -L -p udp 2>/dev/null | grep "dst=203.0.113.101 " >"$W/$name.ct"
  stop_hosts
  if [ "$want" = lan ]; then
    # Same NAT (no hairpin): only the LAN shortcut works, to the server's private address.
    if grep -q "connected directly to 192.168.1.2:" "$W/$name.cli.err" &&
       grep -q "connected directly to 192.168.1.3:" "$W/$name.srv.err" &&
       grep -q "from-client-$name" "$W/$name.srv.out"; then
      pass "$name: LAN path in ${ms} ms ($(grep -o '192.168.1.2:[0-9]*' "$W/$name.cli.err"))"
    else
      fail "$name: want the LAN path"; show "$W/$name.cli.err" "$W/$name.srv.err" "$W/$name.srv.out"
    fi
  elif [ "$want" = direct ]; then
    # The path must be the other NAT's public (WAN) address: punched, not a LAN shortcut.
    if grep -q "connected directly to 203.0.113.101:" "$W/$name.cli.err" &&
       grep -q "connected directly to 203.0.113.102:" "$W/$name.srv.err" &&
       grep -q "from-client-$name" "$W/$name.srv.out"; then
      if grep -v UNREPLIED "$W/$name.ct" | grep -q .; then
        pass "$name: direct holepunched path in ${ms} ms (case $(($(now_ms) - c0)) ms) ($(grep -o '203.0.113.101:[0-9]*' "$W/$name.cli.err"))"
      else
        fail "$name: no answered conntrack flow nat2 -> 203.0.113.101"; show "$W/$name.ct"
      fi
    else
      fail "$name: want a direct connection"; show "$W/$name.cli.err" "$W/$name.srv.err" "$W/$name.srv.out"
    fi
  else
    if grep -q "connect failed: both peers are behind randomizing NATs" "$W/$name.cli.err"; then
      pass "$name: fails cleanly in ${ms} ms: $(cat "$W/$name.cli.err")"
    else
      fail "$name: want the double-random error"; show "$W/$name.cli.err" "$W/$name.srv.err"
    fi
  fi
}

T0=$(now_ms)
c_case cc consistent consistent direct 15
c_case rr random random fail 15
c_case rc random consistent direct 45
c_case samenat consistent consistent lan 15 a2

# C client -> JS server
bash "$LAB" nat nat1 consistent >/dev/null; bash "$LAB" nat nat2 consistent >/dev/null
ip netns exec "$(ns a)" node "$JS" server --bootstrap $BOOT --seed natlab-cc-js >"$W/js.srv" 2>&1 &
if wait_for "$W/js.srv" '"event":"listening"' 30; then
  key=$(grep -o '"publicKey":"[0-9a-f]*"' "$W/js.srv" | cut -d'"' -f4)
  (printf ping; sleep 15) 2>/dev/null | timeout 20 ip netns exec "$(ns b)" "$H" pipe "$key" --bootstrap $BOOT >"$W/cc-js.out" 2>"$W/cc-js.err" &
  wait_for "$W/cc-js.out" ping 15
  stop_hosts
  if grep -q ping "$W/cc-js.out" && grep -q "connected directly to 203.0.113.101:" "$W/cc-js.err"; then
    pass "cc-js: C client -> JS server echo over $(grep -o '203.0.113.101:[0-9]*' "$W/cc-js.err")"
  else
    fail "cc-js"; show "$W/cc-js.err" "$W/cc-js.out" "$W/js.srv"
  fi
else
  fail "cc-js: JS server did not listen"; show "$W/js.srv"
fi
stop_hosts

# JS client -> C server
seed=$(seed_of js-cc)
(printf ping; sleep 20) 2>/dev/null | timeout 25 ip netns exec "$(ns a)" "$H" pipe --listen --seed "$seed" --bootstrap $BOOT >"$W/js-cc.srv.out" 2>"$W/js-cc.srv.err" &
if wait_for "$W/js-cc.srv.out" . 10; then
  key=$(head -1 "$W/js-cc.srv.out")
  sleep 1
  ip netns exec "$(ns b)" timeout 30 node "$JS" client --bootstrap $BOOT --key "$key" --timeout 20 >"$W/js-cc.cli" 2>&1
  if grep -q '"ok":true' "$W/js-cc.cli" && grep -q '"path":"direct"' "$W/js-cc.cli" &&
     grep -q '"remote":"203.0.113.101:' "$W/js-cc.cli"; then
    pass "js-cc: JS client -> C server: $(grep -o '"echoMs":[0-9]*' "$W/js-cc.cli"), path direct"
  else
    fail "js-cc"; show "$W/js-cc.cli" "$W/js-cc.srv.err"
  fi
else
  fail "js-cc: C server printed no key"; show "$W/js-cc.srv.err"
fi
stop_hosts

# Blind relay: C client pairs through a JS blind-relay node (random NATs: no direct path).
ip netns exec "$(ns pub)" node "$HERE/natlab/relay.js" $BOOT >"$W/relay.log" 2>&1 &
if wait_for "$W/relay.log" '"event":"ready"' 30; then
  rkey=$(grep -o '"relayKey":"[0-9a-f]*"' "$W/relay.log" | cut -d'"' -f4)
  bash "$LAB" nat nat1 random >/dev/null; bash "$LAB" nat nat2 random >/dev/null
  ip netns exec "$(ns a)" node "$JS" server --bootstrap $BOOT --seed natlab-rr-relay >"$W/rr-relay.srv" 2>&1 &
  if wait_for "$W/rr-relay.srv" '"event":"listening"' 30; then
    key=$(grep -o '"publicKey":"[0-9a-f]*"' "$W/rr-relay.srv" | cut -d'"' -f4)
    t0=$(now_ms)
    ip netns exec "$(ns b)" timeout 45 "$TOOL" $BOOT "$key" "$rkey" >"$W/rr-relay.out" 2>"$W/rr-relay.err"
    ms=$(($(now_ms) - t0))
    if grep -q "connected 203.0.113.20:49737" "$W/rr-relay.out" && grep -q "echo ping" "$W/rr-relay.out"; then
      pass "rr-relay: C client -> JS server relayed through 203.0.113.20:49737, echo in ${ms} ms"
    else
      fail "rr-relay"; show "$W/rr-relay.out" "$W/rr-relay.err" "$W/rr-relay.srv"
    fi
  else
    fail "rr-relay: JS server did not listen"; show "$W/rr-relay.srv"
  fi
  stop_hosts
  # JS client with relayThrough -> C server: the C server pairs through the client's relay.
  seed=$(seed_of rr-relay-js)
  (printf ping; sleep 30) 2>/dev/null | timeout 35 ip netns exec "$(ns a)" "$H" pipe --listen --seed "$seed" \
    --bootstrap $BOOT >"$W/rr-relay-js.srv.out" 2>"$W/rr-relay-js.srv.err" &
  if wait_for "$W/rr-relay-js.srv.out" . 10; then
    key=$(head -1 "$W/rr-relay-js.srv.out")
    sleep 1
    ip netns exec "$(ns b)" timeout 40 node "$JS" client --bootstrap $BOOT --key "$key" --relay-through "$rkey" \
      --timeout 30 --linger 0 >"$W/rr-relay-js.cli" 2>&1
    if grep -q '"ok":true' "$W/rr-relay-js.cli" && grep -q '"path":"relayed"' "$W/rr-relay-js.cli" &&
       grep -q "connected directly to 203.0.113.20:49737" "$W/rr-relay-js.srv.err"; then
      pass "rr-relay-js: JS client -> C server relayed: $(grep -o '"echoMs":[0-9]*' "$W/rr-relay-js.cli")"
    else
      fail "rr-relay-js"; show "$W/rr-relay-js.cli" "$W/rr-relay-js.srv.err"
    fi
  else
    fail "rr-relay-js: C server printed no key"; show "$W/rr-relay-js.srv.err"
  fi
  stop_hosts
else
  fail "relay node did not start"; show "$W/relay.log"
fi

# Sanitizer builds: every C process must have exited clean (SIGTERM runs the normal close path).
if grep -l -e Sanitizer -e "runtime error" "$W"/*.err "$W"/*.log 2>/dev/null; then fail "sanitizer report in the files above"; fi
echo "natlab: $fails failed, $(($(now_ms) - T0)) ms after setup"
[ "$fails" = 0 ]
