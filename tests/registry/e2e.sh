#!/bin/sh
# End-to-end scenarios with the real binary on a private loopback HyperDHT (127.0.0.1 only).
# usage: e2e.sh SCENARIO HYPERSEAPORT HTTP_HELLO REG_LOAD [WRAPPER...]
#   (WRAPPER, e.g. valgrind -q --error-exitcode=99, runs every hyperseaport process)
#   seed        the README's steps: registry, service, proxy, a request through the proxy
#   versions    1.2.0 and 2.0.0 side by side, picked by 1.x, 2, *, >=1.5.0; ls
#   expiry      kill -9 a service: gone from ls and from the proxy within TTL + 1 s
#   durability  kill -9 the registry with 1,000 registrations in flight; every acknowledged
#               one is there after the restart (a QUERY each), and the log verifies
#   outage      the proxy serves from its replica while the registry is down, catches up
#   badinput    forged, replayed, misaddressed, malformed requests; wrong registry key
#   farbehind   a proxy whose replica is > 4,096 entries behind catches up by snapshot
#   restart     a proxy restarted while the registry is down serves from its replica on
#               disk; a registry restarted from an empty store gets the service back
#               (re-registration) and the proxy re-syncs (ECHAIN -> snapshot)
set -u
scenario=$1 BIN=$2 HELLO=$3 LOAD=$4
shift 4
T=$(mktemp -d)
if [ $# -gt 0 ]; then
  printf '#!/bin/sh\nexec %s "%s" "$@"\n' "$*" "$BIN" >"$T/hsp"
  chmod +x "$T/hsp"
  BIN=$T/hsp
fi
pids=""
fail() { echo "FAIL ($scenario): $*" >&2; for f in "$T"/*.out "$T"/*.err; do [ -s "$f" ] && { echo "--- $f" >&2; tail -n 20 "$f" >&2; }; done; exit 1; }
cleanup() {
  for p in $pids; do kill -9 "$p" 2>/dev/null; done
  wait 2>/dev/null
  rm -rf "$T"
}
trap cleanup EXIT INT TERM
export HOME="$T/home" XDG_CONFIG_HOME="" XDG_DATA_HOME=""
mkdir -p "$HOME"

# wait_for FILE PATTERN [SECONDS]
wait_for() {
  i=0 limit=$(( ${3:-30} * 10 ))
  until grep -q -- "$2" "$1" 2>/dev/null; do
    i=$((i + 1)); [ $i -le $limit ] || fail "timed out waiting for '$2' in $1"
    sleep 0.1
  done
}
# start NAME CMD...: runs CMD in the background with NAME.out / NAME.err; $last = its pid
start() {
  name=$1; shift
  "$@" >"$T/$name.out" 2>"$T/$name.err" &
  last=$!
  pids="$pids $last"
}
# stop PID: SIGTERM, and the process must exit 0 within 10 s (clean shutdown, no leaks)
stop() {
  kill -TERM "$1" 2>/dev/null
  i=0
  while kill -0 "$1" 2>/dev/null; do
    i=$((i + 1)); [ $i -le 100 ] || fail "pid $1 did not exit within 10 s of SIGTERM"
    sleep 0.1
  done
  wait "$1"; rc=$?
  [ $rc -eq 0 ] || fail "pid $1 exited with status $rc after SIGTERM"
}

dht() {
  start node0 "$BIN" dht-node --host 127.0.0.1 --bootstrap ""
  wait_for "$T/node0.out" listening
  BOOT=$(sed -n 's/^listening \([0-9.]*:[0-9]*\).*/\1/p' "$T/node0.out" | head -n 1)
  for i in 1 2 3; do start node$i "$BIN" dht-node --host 127.0.0.1 --bootstrap "$BOOT"; done
  for i in 1 2 3; do wait_for "$T/node$i.out" ready; done
  NET="--bootstrap $BOOT --bind 127.0.0.1"
}
SEED=$(printf '%064d' 0 | tr 0 3)
registry() { # registry [NAME]: on $T/store
  start "${1:-registry}" "$BIN" registry --registrySeed "$SEED" --storage "$T/store" $NET
  REG=$last
  wait_for "$T/${1:-registry}.out" "^registryPublicKey=" 60
  KEY=$(sed -n 's/^registryPublicKey=//p' "$T/${1:-registry}.out")
}
hello() { # hello NAME TEXT: a tiny HTTP server; $HPORT its port
  start "$1" "$HELLO" 0 "$2"
  wait_for "$T/$1.out" listening
  HPORT=$(sed -n 's/^listening //p' "$T/$1.out")
}
service() { # service NAME PORT ROLE [ARGS...]
  n=$1 p=$2 r=$3; shift 3
  start "$n" "$BIN" service --port "$p" --role "$r" --registryPublicKey "$KEY" $NET "$@"
  wait_for "$T/$n.out" "^registered service" 60
  eval "${n}_pid=$last"
  eval "${n}_key=$(sed -n 's/^started p2p service on //p' "$T/$n.out")"
}
free_port() { # a TCP port nobody listens on (bound by the kernel, then released)
  # (a fresh file each time: waiting on the old one could return the previous port)
  rm -f "$T/fp.out"
  "$HELLO" 0 x >"$T/fp.out" & fp=$!
  wait_for "$T/fp.out" listening; kill $fp; wait $fp 2>/dev/null
  sed -n 's/^listening //p' "$T/fp.out"
}
# start_proxy NAME ROLE STORAGE [ARGS...]: a proxy on a free port ($PPORT, $last). The
# port is free when chosen but another test may take it first: then choose again.
start_proxy() {
  n=$1 role=$2 st=$3; shift 3
  tries=0
  while :; do
    PPORT=$(free_port)
    start "$n" "$BIN" proxy --port "$PPORT" --role "$role" $NET --storage "$st" "$@"
    i=0
    until grep -q '^connecting to registry' "$T/$n.out" 2>/dev/null; do
      if grep -q 'cannot listen' "$T/$n.err" 2>/dev/null; then break; fi
      i=$((i + 1)); [ $i -le 300 ] || fail "proxy $n did not start"
      sleep 0.1
    done
    grep -q '^connecting to registry' "$T/$n.out" && return 0
    tries=$((tries + 1)); [ $tries -lt 5 ] || fail "proxy $n: no free port"
  done
}
proxy() { # proxy NAME RANGE [ARGS...]: a proxy of web@RANGE; $PPORT its port
  pn=$1 pr=$2; shift 2
  start_proxy "$pn" "web@$pr" "$T/proxy-$pn" --registryPublicKey "$KEY" "$@"
  eval "${pn}_pid=$last ${pn}_port=$PPORT"
  wait_for "$T/$pn.out" "^proxy from $PPORT to p2p service" 60
}
get() { curl -s -m 20 "http://127.0.0.1:$1/"; }
ls_() { "$BIN" ls $NET --registryPublicKey "$KEY" "$@" 2>>"$T/ls.err"; }
expect_get() { # expect_get PORT TEXT WHAT
  out=$(get "$1")
  [ "$out" = "$2" ] || fail "$3: got '$out', wanted '$2'"
  echo "ok: $3 -> $out"
}

dht
case $scenario in
seed)
  # The README's steps, the registry's seed coming from the config file.
  mkdir -p "$HOME/.config"
  "$BIN" seed >"$HOME/.config/hyperseaport" || fail "seed"
  start registry "$BIN" registry --storage "$T/store" $NET
  REG=$last
  wait_for "$T/registry.out" "^registryPublicKey="
  KEY=$(sed -n 's/^registryPublicKey=//p' "$T/registry.out")
  grep -q "registryPublicKey=$KEY" "$HOME/.config/hyperseaport" || fail "registry key is not the seed's"
  for line in "Writer started." "storing in $T/store" "Registry started."; do
    grep -qx "$line" "$T/registry.out" || fail "registry did not print '$line'"
  done
  hello app "hello from couchdb 3.2.2"
  service db "$HPORT" couchdb@3.2.2
  grep -q "^connecting to registry $KEY" "$T/db.out" || fail "service did not say which registry"
  grep -q '"role":"couchdb","version":"3.2.2","tags":' "$T/db.out" || fail "registered service line"
  start_proxy px couchdb@3.x "$T/proxy"
  px=$last
  wait_for "$T/px.out" "^proxy from $PPORT to p2p service $db_key"
  for line in "connecting to registry" "connected to registry"; do
    grep -qx "$line" "$T/px.out" || fail "proxy did not print '$line'"
  done
  grep -q "^found service {\"id\":\"$db_key\",\"remotePublicKey\":\"$db_key\",\"meta\":{\"role\":\"couchdb\",\"version\":\"3.2.2\"" "$T/px.out" || fail "found service line"
  expect_get "$PPORT" "hello from couchdb 3.2.2" "GET through the proxy"
  expect_get "$PPORT" "hello from couchdb 3.2.2" "second GET through the proxy"
  ls_ couchdb@3 | grep -q "^couchdb@3.2.2 $db_key " || fail "ls couchdb@3"
  [ -f "$T/proxy/replica-$KEY.db" ] || fail "no replica file under the proxy's storage"
  stop "$db_pid"
  grep -q "^deregistered service $db_key" "$T/db.out" || fail "service did not deregister"
  wait_for "$T/registry.out" "^deregistered $db_key"
  [ -z "$(ls_ couchdb)" ] || fail "deregistered service still listed"
  wait_for "$T/px.out" "^no service matches couchdb@3.x"
  stop "$px"; stop "$REG"
  echo "ok: clean SIGTERM exits of service, proxy and registry"
  ;;
versions)
  registry
  hello h1 one-two-zero; p1=$HPORT
  hello h2 two-zero-zero; p2=$HPORT
  service s1 "$p1" web@1.2.0
  service s2 "$p2" web@2.0.0
  for r in 1.x 2 '*' '>=1.5.0' '^1.2.0'; do
    proxy "p$(echo "$r" | tr -c 'a-z0-9' _)" "$r"
    case $r in 1.x | ^1.2.0) want=one-two-zero ;; *) want=two-zero-zero ;; esac
    expect_get "$PPORT" "$want" "web@$r"
  done
  [ "$(ls_ web@1.x | cut -d' ' -f1)" = "web@1.2.0" ] || fail "ls web@1.x"
  [ "$(ls_ 'web@*' | cut -d' ' -f1 | tr '\n' ' ')" = "web@2.0.0 web@1.2.0 " ] || fail "ls web@* order"
  [ "$(ls_ | wc -l)" -eq 2 ] || fail "ls (all)"
  ls_ 'web@>=1.5.0' --json | grep -q "^\[{\"key\":\"$s2_key\",\"name\":\"web\",\"version\":\"2.0.0\"" || fail "ls --json"
  [ -z "$(ls_ web@3)" ] || fail "ls web@3 should be empty"
  echo "ok: ls by range, order and --json"
  # a tie: another 2.0.0, registered later, comes after the first one
  hello h3 two-zero-zero-again; p3=$HPORT
  service s3 "$p3" web@2.0.0
  [ "$(ls_ web@2 | cut -d' ' -f2 | tr '\n' ' ')" = "$s2_key $s3_key " ] || fail "ls: ties not in registration order"
  # (the default --balance p2c spreads over a tie; `first` keeps the registry's order)
  proxy ptie 2 --balance first
  expect_get "$PPORT" two-zero-zero "web@2 with a tie, --balance first: the first registered"
  stop "$s2_pid"
  wait_for "$T/ptie.out" "^proxy from $PPORT to p2p service $s3_key" 30
  expect_get "$PPORT" two-zero-zero-again "web@2 after the first one deregistered"
  ;;
expiry)
  registry
  hello h1 one; p1=$HPORT
  hello h2 two; p2=$HPORT
  service s1 "$p1" web@1.0.0 --ttl 2
  service s2 "$p2" web@2.0.0 --ttl 2000ms
  grep -q '"ttlMs":2000' "$T/s2.out" || fail "--ttl 2000ms"
  proxy px '*'
  expect_get "$PPORT" two "before the kill: the highest version"
  sleep 3 # more than a TTL: renewals keep both alive
  [ "$(ls_ | wc -l)" -eq 2 ] || fail "renewals did not keep both alive"
  kill -9 "$s2_pid"
  sleep 3 # TTL + 1 s
  ls_ | grep -q "$s2_key" && fail "killed service still listed TTL + 1 s later"
  grep -q "^expired $s2_key" "$T/registry.out" || fail "registry did not log the expiry"
  echo "ok: gone from ls and logged as expired within TTL + 1 s"
  expect_get "$PPORT" one "after the expiry, the proxy picks the other"
  ;;
durability)
  # 20,000 registrations, 1,000 in flight at any time; kill -9 the registry mid-stream
  registry
  start load "$LOAD" register "$KEY" "$BOOT" 20000 3600000 1000
  load=$last
  i=0; until [ "$(wc -l <"$T/load.out")" -ge 300 ]; do
    i=$((i + 1)); [ $i -le 600 ] || fail "the load did not get going"; sleep 0.05
  done
  kill -9 "$REG"
  sleep 0.3
  kill -9 "$load"
  acked=$(wc -l <"$T/load.out")
  [ "$acked" -lt 20000 ] || fail "the load finished before the kill"
  registry registry2
  "$LOAD" check "$KEY" "$BOOT" "$T/load.out" >"$T/check.out" 2>"$T/check.err" || fail "check: $(cat "$T/check.out")"
  echo "ok: registry killed with 1,000 in flight; $(cat "$T/check.out")"
  # 1,000 more, all in flight at once and timed; then a fresh proxy takes the whole set as
  # one snapshot (over 64 KiB: reassembled from several secret-stream messages)
  t0=$(date +%s%N)
  "$LOAD" register "$KEY" "$BOOT" 1000 3600000 >"$T/load2.out" 2>"$T/load2.err" || fail "second load"
  t1=$(date +%s%N)
  [ "$(wc -l <"$T/load2.out")" -eq 1000 ] || fail "second load: not all acknowledged"
  echo "ok: 1000 registrations in flight at once, all acknowledged in $(( (t1 - t0) / 1000000 )) ms (including the DHT connect)"
  start_proxy px 'load@*' "$T/proxy" --registryPublicKey "$KEY"
  px=$last
  wait_for "$T/px.out" "^proxy from $PPORT to p2p service" 60
  echo "ok: a fresh proxy took a snapshot of $((acked + 1000)) instances"
  stop "$px"
  stop "$REG"
  "$LOAD" verify "$T/store/registry-$KEY.db" "$SEED" || fail "log does not verify"
  ;;
outage)
  registry
  hello h1 one; p1=$HPORT
  service s1 "$p1" web@1.0.0
  proxy px '*'
  expect_get "$PPORT" one "registry up"
  kill -9 "$REG"
  expect_get "$PPORT" one "registry killed: served from the replica"
  wait_for "$T/px.err" "lost the connection to the registry" 40
  wait_for "$T/s1.err" "lost the connection to the registry" 40
  sleep 3 # retries go on meanwhile
  expect_get "$PPORT" one "registry still down"
  [ "$(grep -c 'lost the connection' "$T/px.err")" -eq 1 ] || fail "proxy reported the outage more than once"
  [ "$(grep -c 'lost the connection' "$T/s1.err")" -eq 1 ] || fail "service reported the outage more than once"
  registry registry2
  wait_for "$T/px.err" "reconnected to registry" 40
  wait_for "$T/s1.err" "reconnected to registry" 40
  hello h2 two; p2=$HPORT
  service s2 "$p2" web@2.0.0
  wait_for "$T/px.out" "^proxy from $PPORT to p2p service $s2_key" 30
  expect_get "$PPORT" two "caught up with a registration made after the restart"
  ls_ | grep -q "$s1_key" || fail "the first service is not registered after the restart"
  echo "ok: outage reported once each, service kept, proxy caught up"
  ;;
badinput)
  registry
  "$LOAD" bad "$KEY" "$BOOT" >"$T/bad.out" 2>"$T/bad.err" || fail "bad input: $(cat "$T/bad.out")"
  cat "$T/bad.out"
  grep -q "dropped the connection of client .*frame larger than any request" "$T/registry.out" || fail "the registry did not log the oversized frame"
  other=$("$BIN" seed | sed -n 's/^registryPublicKey=//p')
  out=$("$BIN" ls $NET --registryPublicKey "$other" 2>&1) && fail "ls with a wrong registry key succeeded"
  echo "$out" | grep -q "cannot reach registry" || fail "wrong key: $out"
  echo "ok: wrong registry key: $out"
  kill -0 "$REG" || fail "registry died"
  [ "$(ls_ load | wc -l)" -eq 1 ] || fail "the valid registration is gone"
  stop "$REG"
  "$LOAD" verify "$T/store/registry-$KEY.db" "$SEED" || fail "log does not verify"
  ;;
farbehind)
  registry
  "$LOAD" register "$KEY" "$BOOT" 10 3600000 >/dev/null 2>"$T/load0.err" || fail "first load"
  start_proxy px 'load@*' "$T/proxy-px" --registryPublicKey "$KEY"
  wait_for "$T/px.out" "^proxy from $PPORT to p2p service"
  stop "$last"
  t0=$(date +%s%N)
  "$LOAD" register "$KEY" "$BOOT" 5000 3600000 >"$T/load.out" 2>"$T/load.err" || fail "load of 5000"
  t1=$(date +%s%N)
  echo "ok: 5000 registrations in flight at once, all acknowledged in $(( (t1 - t0) / 1000000 )) ms"
  start px2 "$BIN" proxy --port "$PPORT" --role 'load@*' --registryPublicKey "$KEY" $NET --storage "$T/proxy-px"
  px2=$last
  wait_for "$T/px2.out" "^replica [0-9]* entries behind the registry: taking a snapshot" 60
  wait_for "$T/px2.out" '"version":"1.0.5000"' 60
  echo "ok: the restarted proxy caught up by snapshot"
  hello h1 one; p1=$HPORT
  start s1 "$BIN" service --port "$p1" --role load@9.0.0 --registryPublicKey "$KEY" $NET
  wait_for "$T/px2.out" '"version":"9.0.0"' 60
  expect_get "$PPORT" one "then followed the registry by WATCH"
  stop "$px2"; stop "$REG"
  ;;
restart)
  registry
  hello h1 one; p1=$HPORT
  service s1 "$p1" web@1.0.0 --ttl 3
  proxy px '*'
  expect_get "$PPORT" one "registry up"
  sleep 2 # a renewal or two in the replica
  kill -9 "$REG"
  stop "$px_pid"
  start px2 "$BIN" proxy --port "$PPORT" --role 'web@*' --registryPublicKey "$KEY" $NET --storage "$T/proxy-px"
  px2=$last
  wait_for "$T/px2.out" "^proxy from $PPORT to p2p service $s1_key"
  expect_get "$PPORT" one "restarted proxy, registry down: served from the replica on disk"
  rm -rf "$T/store"
  registry registry2
  wait_for "$T/s1.err" "reconnected to registry" 40
  i=0; until [ "$(grep -c '^registered service' "$T/s1.out")" -ge 2 ]; do
    i=$((i + 1)); [ $i -le 300 ] || fail "service did not register again with the emptied registry"; sleep 0.1
  done
  ls_ | grep -q "$s1_key" || fail "service not listed by the emptied registry"
  echo "ok: the service registered again with a registry that lost everything"
  wait_for "$T/px2.out" "^connected to registry" 40
  hello h2 two; p2=$HPORT
  service s2 "$p2" web@2.0.0
  wait_for "$T/px2.out" "^proxy from $PPORT to p2p service $s2_key" 30
  expect_get "$PPORT" two "the proxy re-synced with the new history"
  stop "$px2"; stop "$s1_pid"; stop "$s2_pid"; stop "$REG"
  ;;
*) fail "unknown scenario" ;;
esac
echo "PASS $scenario"
