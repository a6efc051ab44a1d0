#!/usr/bin/env bash
# Close -> receipt latency of the import pipeline, over SFTP and FTPS, as a
# client sees it: 200 uploads of a 1,000-row CSV each way, one after the
# other, against one server (debug build unless BENCH_RELEASE=1), with the
# default SQLite tenant database. Prints p50, p99 and the largest latency
# per protocol. The receipt is polled on disk every millisecond from the
# moment the server acknowledged the upload (SFTP: reply to CLOSE; FTPS: 226).
#
#   benches/receipt-latency.sh
#   BENCH_UPLOADS=50 BENCH_RELEASE=1 benches/receipt-latency.sh
#
# A benchmark, not a test: the machine may be shared; compare within a run.
# Needs the test venv (paramiko): scripts/lib/test-setup.sh, ensure_venv.
set -euo pipefail

# shellcheck source=benches/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

UPLOADS=${BENCH_UPLOADS:-200}
SFTP_PORT=${BENCH_SFTP_PORT:-2622}
FTPS_PORT=$((SFTP_PORT + 1))
ADMIN_PORT=$((SFTP_PORT + 2))
PASSWORD="Quartz-Lantern-Velvet-93"
TARGET="${CARGO_TARGET_DIR:-$REPO_ROOT/target}"
PYTHON="$TARGET/test-venv/bin/python"
[ -x "$PYTHON" ] || bench_die "no test venv at $TARGET/test-venv: run scripts/lib/test-setup.sh's ensure_venv"

if [ "${BENCH_RELEASE:-0}" = 1 ]; then
    build_passerelle
else
    echo "== building passerelle (debug)"
    cargo build --quiet --manifest-path "$REPO_ROOT/Cargo.toml" -p passerelle-server
    PASSERELLE_BIN="$TARGET/debug/passerelle"
fi

WORK=$(mktemp -d /tmp/passerelle-receipt-bench.XXXXXX)
at_exit rm -rf "$WORK"

export PASSERELLE_DATA_DIR="$WORK/data" PASSERELLE_LOG_LEVEL=warn
export PASSERELLE_SFTP_LISTEN="127.0.0.1:$SFTP_PORT" PASSERELLE_FTPS_EXPLICIT_LISTEN="127.0.0.1:$FTPS_PORT"
export PASSERELLE_FTPS_IMPLICIT_LISTEN="" PASSERELLE_ADMIN_LISTEN="127.0.0.1:$ADMIN_PORT"
export PASSERELLE_FTPS_PASSIVE_PORTS="$((SFTP_PORT * 10 + 1))-$((SFTP_PORT * 10 + 9))"
# Every upload is a new connection's worth of work for the rate limiter only once; be generous anyway.
export PASSERELLE_LIMITS_CONNECTION_RATE=1000 PASSERELLE_LIMITS_CONNECTION_BURST=1000
"$PASSERELLE_BIN" init >/dev/null
"$PASSERELLE_BIN" tenant add bench >/dev/null
printf '%s\n' "$PASSWORD" | "$PASSERELLE_BIN" user add bench bench --password-stdin >/dev/null
"$PASSERELLE_BIN" profile set bench - <"$REPO_ROOT/server/src/demo-profile.toml" >/dev/null
mkdir -p "$WORK/data/tenants/bench/inbox/employees"
serve_passerelle "$ADMIN_PORT" "$WORK/server.log"

echo "== $UPLOADS uploads of a 1,000-row CSV over SFTP, then over FTPS"
"$PYTHON" "$REPO_ROOT/benches/receipt_latency.py" --sftp-port "$SFTP_PORT" --ftps-port "$FTPS_PORT" \
    --user bench --password "$PASSWORD" --cafile "$WORK/data/tls/cert.pem" \
    --outbox "$WORK/data/tenants/bench/outbox" --uploads "$UPLOADS"
