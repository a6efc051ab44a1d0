# shellcheck shell=bash
# What the benches share: cleanup at exit, root and Debian packages, building
# and starting passerelle, timing. Sourced by each bench right after
# `set -euo pipefail`, never run.
#
# Messages go to standard error prefixed "bench:"; the figures each bench
# prints on standard output are its own.

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

bench_die() {
    printf 'bench: %s\n' "$*" >&2
    exit 1
}

# --- Cleanup ---------------------------------------------------------------
# One EXIT trap runs every registered command, newest first (servers stop
# before the directories they write to are removed), whether the bench
# succeeded, failed or was interrupted. A failing cleanup step does not stop
# the others.

CLEANUPS=()

# at_exit COMMAND [ARGS...]: run COMMAND when the bench exits.
at_exit() {
    local quoted
    printf -v quoted '%q ' "$@"
    CLEANUPS+=("$quoted")
}

run_cleanups() {
    local i
    for ((i = ${#CLEANUPS[@]} - 1; i >= 0; i--)); do
        eval "${CLEANUPS[i]}" || true
    done
}
trap run_cleanups EXIT

# stop_process PID: ends a background process this bench started.
stop_process() {
    kill "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

# in_background COMMAND [ARGS...]: starts COMMAND in the background (the
# caller's redirections apply to it) and stops it at exit. Sets BACKGROUND_PID.
in_background() {
    "$@" &
    BACKGROUND_PID=$!
    at_exit stop_process "$BACKGROUND_PID"
}

# --- The machine -----------------------------------------------------------

# require_root WHY: stops unless running as root, saying why root is needed.
require_root() {
    if [ "$(id -u)" -ne 0 ]; then
        printf 'bench: %s must run as root: %s\n' "$(basename "$0")" "$1" >&2
        exit 2
    fi
}

# ensure_command COMMAND PACKAGE: installs Debian's PACKAGE unless COMMAND
# (a name on PATH or an absolute path) is there. The package lists are
# refreshed only when the first attempt fails.
ensure_command() {
    command -v "$1" >/dev/null 2>&1 && return
    command -v apt-get >/dev/null 2>&1 || bench_die "$1 is missing and there is no apt-get: install $2 by hand"
    echo "bench: installing $2" >&2
    if ! apt_get install -y -q --no-install-recommends "$2" >/dev/null; then
        apt_get update -q >/dev/null
        apt_get install -y -q --no-install-recommends "$2" >/dev/null
    fi
    command -v "$1" >/dev/null 2>&1 || bench_die "$2 is installed but $1 is still missing"
}

apt_get() {
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=120 "$@"
}

# --- passerelle ------------------------------------------------------------

# build_passerelle: builds the release binary and sets PASSERELLE_BIN to it.
build_passerelle() {
    echo "== building passerelle (release)"
    cargo build --release --quiet --manifest-path "$REPO_ROOT/Cargo.toml" -p passerelle-server
    PASSERELLE_BIN="${CARGO_TARGET_DIR:-$REPO_ROOT/target}/release/passerelle"
}

# How long a server may take to start listening.
READY_SECONDS=60

# wait_for_port PORT PID LOG: waits until 127.0.0.1:PORT accepts connections;
# stops the bench, showing the end of LOG, if process PID exits first or the
# port stays closed for READY_SECONDS.
wait_for_port() {
    local port=$1 pid=$2 log=$3 deadline=$((SECONDS + READY_SECONDS))
    until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -n 20 "$log" >&2 || true
            bench_die "the server (pid $pid) exited before listening on 127.0.0.1:$port; its log: $log"
        fi
        [ "$SECONDS" -lt "$deadline" ] || bench_die "nothing listens on 127.0.0.1:$port after ${READY_SECONDS}s; log: $log"
        sleep 0.1
    done
}

# serve_passerelle ADMIN_PORT LOG: runs `passerelle serve` with the caller's
# PASSERELLE_* environment, its standard error in LOG, until the bench exits;
# returns once the admin endpoint on ADMIN_PORT answers, which the server
# opens after every other listener.
serve_passerelle() {
    in_background "$PASSERELLE_BIN" serve 2>"$2"
    wait_for_port "$1" "$BACKGROUND_PID" "$2"
}

# --- Timing ----------------------------------------------------------------

# seconds_since START: seconds elapsed since START, an $EPOCHREALTIME reading.
seconds_since() {
    echo "$EPOCHREALTIME - $1" | bc -l
}

# lower A B: the smaller of two times (B when A is empty).
lower() {
    if [ -z "$1" ] || [ "$(echo "$2 < $1" | bc -l)" = 1 ]; then echo "$2"; else echo "$1"; fi
}

# best_of ROUNDS COMMAND [ARGS...]: runs COMMAND ROUNDS times, one after the
# other; each run prints the seconds it took. Prints the least.
best_of() {
    local rounds=$1 best="" t
    shift
    for _ in $(seq 1 "$rounds"); do
        t=$("$@") || return
        best=$(lower "$best" "$t")
    done
    echo "$best"
}
