#!/bin/sh
# Runs the hyperseaport binary as a user would and checks exit status and output.
# usage: cli_test.sh path/to/hyperseaport [wrapper command...]   (e.g. valgrind -q ...)
set -u
HSP_BIN=$1
shift
WRAPPER="$*"
BIN=run_hyperseaport
run_hyperseaport() { $WRAPPER "$HSP_BIN" "$@"; }
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
export HOME="$T/home" XDG_CONFIG_HOME="" XDG_DATA_HOME=""
mkdir -p "$HOME/.config"
passed=0 failed=0

# expect STATUS PATTERN -- ARGS...: exit status must match and stdout+stderr contain PATTERN.
expect() {
  want_status=$1 pattern=$2
  shift 3
  out=$("$BIN" "$@" 2>&1)
  status=$?
  if [ "$status" -eq "$want_status" ] && printf '%s' "$out" | grep -q -- "$pattern"; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    echo "FAIL: hyperseaport $*: status $status (want $want_status), output:" >&2
    printf '%s\n' "$out" | sed 's/^/    /' >&2
    echo "    (wanted: $pattern)" >&2
  fi
}
# Errors are exactly one line on stderr and nothing on stdout.
expect_error() {
  pattern=$1
  shift 2
  out=$("$BIN" "$@" 2>"$T/err")
  status=$?
  lines=$(wc -l <"$T/err")
  if [ "$status" -eq 2 ] && [ -z "$out" ] && [ "$lines" -eq 1 ] && grep -q -- "$pattern" "$T/err"; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    echo "FAIL: hyperseaport $*: status $status, stdout '$out', stderr:" >&2
    sed 's/^/    /' "$T/err" >&2
    echo "    (wanted one line matching: $pattern)" >&2
  fi
}

K=8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c
S=0101010101010101010101010101010101010101010101010101010101010101

# seed: two lines of 64 lowercase hex, fresh every time, deterministic for a given seed.
"$BIN" seed >"$T/a" && "$BIN" seed >"$T/b"
if grep -Eqx 'registrySeed=[0-9a-f]{64}' "$T/a" && grep -Eqx 'registryPublicKey=[0-9a-f]{64}' "$T/a" &&
  [ "$(wc -l <"$T/a")" -eq 2 ] && ! cmp -s "$T/a" "$T/b"; then
  passed=$((passed + 1))
else
  failed=$((failed + 1)); echo "FAIL: seed output" >&2; cat "$T/a" "$T/b" >&2
fi
expect 0 "registryPublicKey=$K" -- seed --registrySeed $S
# A seed in the config file must not turn `seed` into a no-op.
printf 'registrySeed=%s\n' $S >"$HOME/.config/hyperseaport"
expect 0 "registrySeed=" -- seed
if "$BIN" seed | grep -q "$K"; then failed=$((failed + 1)); echo "FAIL: seed reused config" >&2; else passed=$((passed + 1)); fi
rm "$HOME/.config/hyperseaport"

expect 0 "hyperseaport [0-9]" -- --version
expect 0 "Commands:" -- --help
for c in registry seed service proxy web ls; do expect 0 "usage: hyperseaport" -- $c --help; done
expect 0 "e.g. couchdb@3.x" -- proxy -h

# Validation errors: one line, exit 2, naming what is wrong.
expect_error "unknown flag --nope" -- service --nope
expect_error "unknown flag -x" -- proxy -x 1
expect_error "unknown command 'frobnicate'" -- frobnicate
expect_error "unexpected argument 'extra'" -- seed extra
expect_error "--port needs a value" -- service --role a@1 --registryPublicKey $K --port
expect_error "-r needs a value: -r NAME@VERSION" -- proxy -p 80 -r
expect_error "-p must be a port number from 1 to 65535, got '0'" -- service -p 0 -r a@1 --registryPublicKey $K
expect_error "--port must be a port number from 1 to 65535, got '65536'" -- proxy --port 65536 -r a@1 --registryPublicKey $K
expect_error "--port must be a port number from 1 to 65535, got '80x'" -- web --port=80x --registryPublicKey $K
expect_error "--web must be a port number" -- --web -1
expect_error "--registryPublicKey must be 64 hex characters" -- proxy -p 1 -r a@1 --registryPublicKey abc
expect_error "registryPublicKey must be 64 hex characters (0-9, a-f), got 64 characters with a non-hex" -- web -p 1 --registryPublicKey "$(echo $K | sed 's/^8/g/')"
expect_error "--registrySeed must be 64 hex characters" -- seed --registrySeed 1234
expect_error "-r must be NAME@VERSION, e.g. couchdb@3.2.2, got 'couchdb'" -- service -p 1 -r couchdb --registryPublicKey $K
expect_error "-r must be NAME@RANGE, e.g. couchdb@3.x" -- proxy -p 1 -r @3.x --registryPublicKey $K
expect_error "--role must be NAME@RANGE" -- proxy -p 1 --role couchdb@ --registryPublicKey $K
expect_error "--role needs an exact version like couchdb@3.2.2, got 'couchdb@3.x'" -- service -p 1 --role couchdb@3.x --registryPublicKey $K
expect_error "-r has an invalid semver range '>=>1'" -- proxy -p 1 -r 'db@>=>1' --registryPublicKey $K
expect_error "web: unknown flag -r" -- web -p 1 -r 'db@1' --registryPublicKey $K
expect_error "service needs --port" -- service -r a@1.0.0 --registryPublicKey $K
expect_error "proxy needs --registryPublicKey" -- proxy -p 5985 -r a@1
expect_error "registry needs registrySeed" -- registry
expect_error "--bootstrap must be host:port" -- web -p 1 --registryPublicKey $K --bootstrap 127.0.0.1
expect_error "--registryPublicKey is not a valid public key" -- ls --registryPublicKey "$(printf '%064d' 5)"
expect_error "--bootstrap must be host:port" -- web -p 1 --registryPublicKey $K --bootstrap 127.0.0.1:1,
expect_error "--help takes no value" -- seed --help=1
expect_error "--ttl must be a lease length from 1 s to 1 h" -- service -p 1 -r a@1.0.0 --registryPublicKey $K --ttl 0.5
expect_error "--ttl must be a lease length" -- service -p 1 -r a@1.0.0 --registryPublicKey $K --ttl 999ms
expect_error "--ttl must be a lease length" -- service -p 1 -r a@1.0.0 --registryPublicKey $K --ttl 3601
expect_error "proxy: unknown flag --ttl" -- proxy -p 1 -r a@1 --registryPublicKey $K --ttl 5
expect_error "ls NAME@RANGE has an invalid semver range '>=>1'" -- ls 'a@>=>1' --registryPublicKey $K
expect_error "ls: unexpected argument 'b'" -- ls a b --registryPublicKey $K
expect_error "ls needs --registryPublicKey" -- ls a
expect_error "--bind must be a host name" -- ls --registryPublicKey $K --bind ""

# Config file, environment and flags, later winning.
C="$HOME/.config/hyperseaport"
OTHER=$("$BIN" seed | sed -n 's/^registryPublicKey=//p')
printf '# comment\nregistrySeed = %s\nregistryPublicKey=%s\n' $S $OTHER >"$C"
expect_error "registrySeed does not match registryPublicKey in $C" -- registry
printf 'registrySeed=%s\nregistryPublicKey=%s\n' $S $K >"$C"
# (an unusable storage directory stops each command after option parsing, before any network)
expect 1 "cannot create the storage directory /proc/none" -- --web 8777 --storage /proc/none
expect 1 "cannot create the storage directory /proc/none" -- web -p 5985 --storage /proc/none
hyperseaport_registryPublicKey=zz expect_error "hyperseaport_registryPublicKey must be 64 hex" -- proxy -p 1 -r a@1
hyperseaport_registryPublicKey=zz expect 1 "cannot create the storage directory" -- web -p 1 --registryPublicKey $K --storage /proc/none
printf 'registryPublicKey=%s\nport=80\n' $K >"$C"
expect_error "$C line 2: unknown key 'port'" -- web -p 1
printf 'registryPublicKey\n' >"$C"
expect_error "$C line 1: expected key=value" -- web -p 1
printf 'registryPublicKey=12\n' >"$C"
expect_error "registryPublicKey in $C line 1 must be 64 hex" -- web -p 1
rm "$C"; mkdir "$C"
expect_error "cannot read config file $C" -- web -p 1 --registryPublicKey $K
rmdir "$C"
expect_error "cannot read config file $T/missing" -- web -p 1 --config "$T/missing"
printf 'registryPublicKey=%s\n' $K >"$T/alt"
expect 1 "cannot create the storage directory" -- web -p 1 --config "$T/alt" --storage /proc/none
XDG_CONFIG_HOME="$T/xdg" expect 0 "" -- --version
mkdir -p "$T/xdg"; printf 'bootstrap=nonsense\n' >"$T/xdg/hyperseaport"
XDG_CONFIG_HOME="$T/xdg" expect_error "bootstrap in $T/xdg/hyperseaport line 1" -- web -p 1 --registryPublicKey $K

echo "cli: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
