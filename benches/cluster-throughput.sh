#!/usr/bin/env bash
# Aggregate SFTP upload throughput through HAProxy, with one passerelle node
# behind it and with two, on one machine.
#
#   benches/cluster-throughput.sh          # 8 clients x 2 files of 64 MiB a round, best of 3
#   BENCH_CLIENTS=4 BENCH_FILES=1 BENCH_MIB=1 BENCH_ROUNDS=1 \
#       BENCH_BIN=target/debug/passerelle benches/cluster-throughput.sh   # a quick check
#
# Needs PostgreSQL (the nodes share their catalog there: BENCH_PG_ADMIN_URL,
# default postgres://postgres@127.0.0.1:5432/postgres, a database of its own
# created and dropped) and installs HAProxy and OpenSSH's client if missing.
# Builds the release binary unless BENCH_BIN names one.
#
# Both nodes run the whole time, sharing one data directory; two HAProxy
# frontends, made from packaging/haproxy/haproxy.cfg, send clients to node 1
# only and to both nodes (leastconn). BENCH_CLIENTS OpenSSH sftp clients,
# each from a loopback address of its own (127.0.0.11, .12…: real clients'
# addresses, as the PROXY header carries them), upload BENCH_FILES files of
# BENCH_MIB MiB each at the same time; a round's figure is all the bytes
# over the wall time until the last client is done. The two setups alternate
# round by round, and between rounds the import pipelines finish what the
# uploads gave them. Both nodes share the machine's cores and disk, so no
# gain is expected: the figure says what HAProxy and a second node cost,
# not how a cluster of machines scales.
set -euo pipefail

# shellcheck source=benches/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CLIENTS=${BENCH_CLIENTS:-8}
FILES=${BENCH_FILES:-2}
MIB=${BENCH_MIB:-64}
ROUNDS=${BENCH_ROUNDS:-3}
CIPHER=${BENCH_CIPHER:-aes128-gcm@openssh.com}
PG_ADMIN_URL=${BENCH_PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}
BASE_PORT=${BENCH_BASE_PORT:-2460}
# Ports: node n's SFTP on BASE+n and admin endpoint on BASE+10+n; HAProxy's
# frontends on BASE+20 (node 1 only) and BASE+21 (both nodes).
ONE_NODE_PORT=$((BASE_PORT + 20))
TWO_NODES_PORT=$((BASE_PORT + 21))

ensure_command sftp openssh-client
ensure_command psql postgresql-client
ensure_command bc bc
ensure_command haproxy haproxy
[ "$CLIENTS" -le 100 ] || bench_die "BENCH_CLIENTS is at most 100 (one loopback address each)"

WORK=$(mktemp -d /tmp/passerelle-bench.XXXXXX)
at_exit rm -rf "$WORK"
if [ -n "${BENCH_BIN:-}" ]; then
    PASSERELLE_BIN=$BENCH_BIN
else
    build_passerelle
fi

DB="passerelle_bench_$$"
psql -X -q -d "$PG_ADMIN_URL" -c "CREATE DATABASE $DB" >/dev/null
at_exit psql -X -q -d "$PG_ADMIN_URL" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)"

echo "== test data: $CLIENTS clients x $FILES files of $MIB MiB" >&2
ssh-keygen -q -t ed25519 -N '' -f "$WORK/id" -C bench
for i in $(seq 1 "$FILES"); do head -c "$((MIB * 1024 * 1024))" /dev/urandom >"$WORK/file$i.bin"; done

# The nodes: one catalog, one data directory, HAProxy trusted for PROXY headers.
export PASSERELLE_DATA_DIR="$WORK/data" PASSERELLE_CATALOG_URL="${PG_ADMIN_URL%/*}/$DB"
export PASSERELLE_PROXY_PROTOCOL_TRUSTED_PROXIES=127.0.0.1/32 PASSERELLE_LOG_LEVEL=warn
export PASSERELLE_FTPS_EXPLICIT_LISTEN="" PASSERELLE_FTPS_IMPLICIT_LISTEN=""
"$PASSERELLE_BIN" init >/dev/null
"$PASSERELLE_BIN" tenant add bench >/dev/null
"$PASSERELLE_BIN" user add bench bench --key "$WORK/id.pub" >/dev/null
for node in 1 2; do
    echo "== node $node on 127.0.0.1:$((BASE_PORT + node))" >&2
    PASSERELLE_SFTP_LISTEN="127.0.0.1:$((BASE_PORT + node))" \
        PASSERELLE_ADMIN_LISTEN="127.0.0.1:$((BASE_PORT + 10 + node))" \
        serve_passerelle "$((BASE_PORT + 10 + node))" "$WORK/node$node.log"
done

# haproxy_config FRONT_PORT NODES: the packaged configuration's SFTP
# frontend and backend, on 127.0.0.1:FRONT_PORT, with the first NODES nodes.
haproxy_config() {
    awk -v front="$1" -v nodes="$2" -v base="$BASE_PORT" '
        /^global/ { skip = 1; next }
        /^defaults/ { skip = 0; print "global\n    maxconn 4000\n" }
        /^(frontend|backend) / { skip = ($2 != "sftp" && $2 != "sftp_nodes") }
        skip { next }
        /^ *bind :22$/ { print "    bind 127.0.0.1:" front; next }
        /^ *server node[0-9]+ / {
            n = substr($2, 5) + 0
            if (n > nodes) next
            sub(/10\.0\.0\.[0-9]+:22/, "127.0.0.1:" (base + n))
            sub(/port 9100/, "port " (base + 10 + n))
        }
        { print }
    ' "$REPO_ROOT/packaging/haproxy/haproxy.cfg"
}
for setup in "$ONE_NODE_PORT 1" "$TWO_NODES_PORT 2"; do
    read -r port nodes <<<"$setup"
    haproxy_config "$port" "$nodes" >"$WORK/haproxy-$nodes.cfg"
    haproxy -q -c -f "$WORK/haproxy-$nodes.cfg" || bench_die "haproxy -c refused $WORK/haproxy-$nodes.cfg"
    echo "== HAProxy on 127.0.0.1:$port, $nodes node(s)" >&2
    in_background haproxy -db -f "$WORK/haproxy-$nodes.cfg" 2>"$WORK/haproxy-$nodes.log"
    wait_for_port "$port" "$BACKGROUND_PID" "$WORK/haproxy-$nodes.log"
done

# settle: waits (bounded) until the import pipelines took and finished every
# uploaded file (no profile here: each is rejected), then removes the
# uploads' archived copies and receipts, and flushes.
settle() {
    local open
    for _ in $(seq 1 600); do
        open=$("$PASSERELLE_BIN" import list --json --limit 1000000 |
            grep -cE '"status": "(received|validating|loading|waiting-retry)"' || true)
        if [ "$open" = 0 ] && [ -z "$(find "$WORK/data/tenants/bench/inbox" -type f ! -name '.*' -print -quit)" ]; then
            # Best effort: a node may be finishing an archive copy just now.
            find "$WORK/data/archive" "$WORK/data/tenants/bench/outbox" -type f -delete 2>/dev/null || true
            sync
            return
        fi
        sleep 0.5
    done
    bench_die "the import pipelines did not settle within 5 minutes"
}

# upload_round PORT ROUND: every client uploads its files through HAProxy
# on PORT at the same time; prints the seconds until the last one is done.
upload_round() {
    local port=$1 round=$2 client i start pids=()
    for client in $(seq 1 "$CLIENTS"); do
        for i in $(seq 1 "$FILES"); do
            printf 'put %s /inbox/r%s-p%s-c%s-%s.bin\n' "$WORK/file$i.bin" "$round" "$port" "$client" "$i"
        done >"$WORK/batch-$client"
    done
    start=$EPOCHREALTIME
    for client in $(seq 1 "$CLIENTS"); do
        sftp -q -P "$port" -c "$CIPHER" -i "$WORK/id" -o BatchMode=yes -o StrictHostKeyChecking=no \
            -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o "BindAddress=127.0.0.$((10 + client))" \
            -b "$WORK/batch-$client" bench@127.0.0.1 >/dev/null &
        pids+=($!)
    done
    for pid in "${pids[@]}"; do
        wait "$pid" || bench_die "an sftp client failed (round $round, port $port)"
    done
    seconds_since "$start"
}

TOTAL_MIB=$((CLIENTS * FILES * MIB))
one="" two=""
for round in $(seq 1 "$ROUNDS"); do
    one=$(lower "$one" "$(upload_round "$ONE_NODE_PORT" "$round")")
    settle
    two=$(lower "$two" "$(upload_round "$TWO_NODES_PORT" "$round")")
    settle
done
printf '\n%-22s %10s %10s\n' "setup (HAProxy, SFTP)" "seconds" "MiB/s"
printf '%-22s %10.3f %10.1f\n' "one node" "$one" "$(echo "$TOTAL_MIB / $one" | bc -l)"
printf '%-22s %10.3f %10.1f\n' "two nodes" "$two" "$(echo "$TOTAL_MIB / $two" | bc -l)"
echo "($CLIENTS clients x $FILES files of $MIB MiB = $TOTAL_MIB MiB a round, best of $ROUNDS; one machine, $(nproc) cores)"
