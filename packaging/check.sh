#!/usr/bin/env bash
# Try the bundles in dist/ the way a user gets them: copied away from the source tree and the
# venv, with a bare environment, from another directory.
#
#   1. the colour emoji font and its licence are in both app bundles; every Qt library a
#      bundled plug-in needs is in the bundle
#   2. anonchat --version, from the folder and the one-file build
#   3. anonchat --self-test, from both (offscreen; the whole journey in-process)
#   4. install.sh from the archive into a scratch prefix, then the installed command
#   5. the frozen anonchat-relay (plain and TLS health checks), serving a whole anonchat-cli
#      conversation: two profiles, add by card, the request accepted, a message each way,
#      both delivered; then SIGTERM and a clean exit
#
# The CLI runs from the project's venv (it is not bundled). Exit 0 only if every check passed.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dist=${1:-$root/dist}
cli=${ANONCHAT_CLI:-$root/.venv/bin/anonchat-cli}
py=${PYTHON:-$root/.venv/bin/python}
version=$("$py" -c 'import tomllib; print(tomllib.load(open("'"$root"'/pyproject.toml", "rb"))["project"]["version"])')
arch=$(uname -m)
onefile="anonchat-$version-linux-$arch"

work=$(mktemp -d "${TMPDIR:-/tmp}/anonchat-check.XXXXXX")
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
started=$SECONDS
step() { printf '== %s (%ds)\n' "$1" $((SECONDS - started)); }
fail() { echo "check.sh: FAILED: $*" >&2; exit 1; }

# A user's environment, not ours: no venv, no PYTHONPATH, no source tree, HOME in scratch.
mkdir -p "$work/home" "$work/elsewhere" "$work/tmp"
# (An array, not a function: a background `"${bare[@]}" cmd &` then leaves $! the command's
# own pid, which the signals below must reach.)
bare=(env -i "HOME=$work/home" PATH=/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8 "TMPDIR=$work/tmp")
cd "$work/elsewhere"

step "copy the bundles out of the tree"
for f in anonchat anonchat-relay "$onefile" "$onefile.tar.gz"; do
    [ -e "$dist/$f" ] || fail "$dist/$f is missing; run packaging/build.sh"
    cp -a "$dist/$f" "$work/"
done
app="$work/anonchat/anonchat"
relay="$work/anonchat-relay/anonchat-relay"

step "the colour emoji font and its licence, in the folder and the one-file build"
"$py" -m PyInstaller.utils.cliutils.archive_viewer --list --brief "$work/$onefile" \
    >"$work/onefile.contents"
for f in NotoColorEmoji.ttf OFL.txt; do
    cmp -s "$root/app/ui/fonts/$f" "$work/anonchat/_internal/app/ui/fonts/$f" \
        || fail "the folder bundle lacks app/ui/fonts/$f (or holds another one)"
    grep -qxF " app/ui/fonts/$f" "$work/onefile.contents" \
        || fail "the one-file build lacks app/ui/fonts/$f"
done

step "Qt libraries needed by bundled plug-ins"
missing=$(find "$work/anonchat" -name '*.so*' -type f -print0 \
    | xargs -0 -n 50 ldd 2>/dev/null | grep -E 'libQt6[A-Za-z]*\.so.* => not found' | sort -u || true)
[ -z "$missing" ] || fail "bundled plug-ins need Qt libraries left out: $missing"

for exe in "$app" "$work/$onefile"; do
    name=${exe#"$work/"}
    step "$name --version"
    out=$("${bare[@]}" "$exe" --version)
    [ "$out" = "anonchat $version" ] || fail "$name --version said: $out"
    echo "$out"
    step "$name --self-test"
    "${bare[@]}" timeout 120 "$exe" --self-test 2>"$work/selftest.err" || {
        cat "$work/selftest.err" >&2
        fail "$name --self-test"
    }
done

step "install.sh into a scratch prefix"
mkdir -p "$work/unpack"
tar -C "$work/unpack" -xzf "$work/$onefile.tar.gz"
"${bare[@]}" sh "$work/unpack/anonchat-$version/install.sh" --prefix "$work/prefix"
[ "$("${bare[@]}" "$work/prefix/bin/anonchat" --version)" = "anonchat $version" ] || fail "installed app"
grep -qx "Exec=$work/prefix/bin/anonchat" "$work/prefix/share/applications/anonchat.desktop" \
    || fail "the installed menu entry does not point at the installed app"
for size in 16 22 24 32 48 64 128 256 512; do
    [ -s "$work/prefix/share/icons/hicolor/${size}x$size/apps/anonchat.png" ] || fail "icon $size"
done
"${bare[@]}" sh "$work/unpack/anonchat-$version/install.sh" --prefix "$work/prefix" >/dev/null  # upgrade
"${bare[@]}" sh "$work/unpack/anonchat-$version/install.sh" --prefix "$work/prefix" --uninstall
[ ! -e "$work/prefix/bin/anonchat" ] || fail "uninstall left the command"

# Start the frozen relay on a free port; sets relay_pid and relay_url.
start_relay() {
    local log=$1
    shift
    "${bare[@]}" "$relay" --host 127.0.0.1 --port 0 "$@" >"$log" 2>&1 &
    relay_pid=$!
    pids+=("$relay_pid")
    for _ in $(seq 100); do
        relay_url=$(grep -oE 'listening on wss?://[^ ]+' "$log" | cut -d' ' -f3 || true)
        [ -n "$relay_url" ] && return 0
        kill -0 "$relay_pid" 2>/dev/null || { cat "$log" >&2; fail "the relay exited"; }
        sleep 0.1
    done
    cat "$log" >&2
    fail "the relay did not start listening"
}

stop_relay() {
    kill -TERM "$relay_pid"
    local code=0
    wait "$relay_pid" || code=$?
    [ "$code" = 0 ] || { cat "$1" >&2; fail "the relay exited with $code on SIGTERM"; }
    grep -q "relay stopped" "$1" || fail "the relay did not say it stopped"
}

step "frozen relay with TLS: health check"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
    -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
    -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
start_relay "$work/relay-tls.log" --tls-cert "$work/cert.pem" --tls-key "$work/key.pem"
case "$relay_url" in wss://*) ;; *) fail "TLS relay listens on $relay_url" ;; esac
https=${relay_url/wss:/https:}
curl -fsS --cacert "$work/cert.pem" "${https}healthz" >/dev/null || fail "TLS /healthz"
stop_relay "$work/relay-tls.log"

step "frozen relay: a whole anonchat-cli conversation"
start_relay "$work/relay.log"
curl -fsS "${relay_url/ws:/http:}healthz" >/dev/null || fail "/healthz"
export ANONCHAT_PASSPHRASE="check passphrase $RANDOM$RANDOM"
c() { "${bare[@]}" "ANONCHAT_PASSPHRASE=$ANONCHAT_PASSPHRASE" "$cli" --json --profile "$work/profiles/$1" "${@:2}"; }
c alice init --name Alice --relay "$relay_url" >/dev/null
c bob init --name Bob --relay "$relay_url" >/dev/null
card=$(c bob card | "$py" -c 'import json, sys; print(json.load(sys.stdin)["card"])')

# One listener at a time holds a profile; wait until it says it listens.
listen() {
    "${bare[@]}" "ANONCHAT_PASSPHRASE=$ANONCHAT_PASSPHRASE" "$cli" --json \
        --profile "$work/profiles/$1" listen >"$work/$1.events" 2>"$work/$1.listen.err" &
    listener=$!
    pids+=("$listener")
    for _ in $(seq 200); do
        grep -q '"listening"' "$work/$1.events" && return 0
        kill -0 "$listener" 2>/dev/null || { cat "$work/$1.listen.err" >&2; fail "$1 listen"; }
        sleep 0.1
    done
    fail "$1 never listened"
}
unlisten() {
    kill -TERM "$listener"
    wait "$listener" || true
}
delivered() {
    "$py" -c 'import json, sys; d = json.load(sys.stdin); sys.exit(d["status"] != "delivered")'
}

listen bob
c alice add "$card" --wait 20 >/dev/null || fail "alice add"
c alice send Bob "hello Bob, from a frozen relay" --wait 20 | delivered || fail "to Bob"
for _ in $(seq 100); do
    grep -q "hello Bob, from a frozen relay" "$work/bob.events" && break
    sleep 0.1
done
grep -q "hello Bob, from a frozen relay" "$work/bob.events" || fail "Bob did not get it"
unlisten
# Alice is a message request on Bob's side until he accepts her.
c bob requests | grep -q Alice || fail "no request from Alice"
c bob accept Alice >/dev/null || fail "bob accept"

listen alice
c bob send Alice "hello Alice" --wait 20 | delivered || fail "to Alice"
for _ in $(seq 100); do
    grep -q "hello Alice" "$work/alice.events" && break
    sleep 0.1
done
grep -q "hello Alice" "$work/alice.events" || fail "Alice did not get it"
unlisten
stop_relay "$work/relay.log"

step "all checks passed"
