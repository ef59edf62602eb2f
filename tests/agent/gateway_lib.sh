# Shared by the gateway end-to-end scripts (sourced): a temp dir, process helpers, curl
# checks, and a private loopback DHT of four `hyperseaport dht-node`s; $BIN must be set.
# Sets T, NET (the flags joining that DHT), BOOT; start/stop/wait_for/fail/ok/free_port.
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
