#!/usr/bin/env bash
# SFTP throughput of passerelle against OpenSSH's own internal-sftp, on
# loopback, in one run, with OpenSSH's sftp client and the same cipher.
#
#   benches/sftp-vs-openssh.sh            # 1 GiB file + 2,000 files of 4 KiB
#   BENCH_BIG_MIB=256 BENCH_SMALL_FILES=500 benches/sftp-vs-openssh.sh
#   BENCH_OPS="put-small" benches/sftp-vs-openssh.sh    # some transfers only
#
# Needs root (the private sshd chroots into a directory it owns) and
# installs OpenSSH's server if missing.
#
# Prints seconds per transfer for each server and the ratio
# passerelle-speed / openssh-speed (>= 1.0: passerelle is at least as fast),
# for passerelle as shipped (uploads.fsync = false: no flush, like OpenSSH)
# and with uploads.fsync = true (every upload flushed before it is
# acknowledged: two disk flushes per file, which OpenSSH never does).
# A benchmark, not a test: this machine is shared and figures drift between
# runs, so only compare the two servers within one run.
#
# Fairness: rounds alternate between the servers, so a slow spell of the
# machine hits all of them; every round uploads new files into a new
# directory on each server (passerelle never overwrites a file in place, so
# OpenSSH does not get to either); downloads land on tmpfs, so the client's
# own disk writes are not what is measured. Small files are never deleted
# mid-run: on an ext4 without a journal (this VM's root), creating files for
# a minute after thousands were deleted costs several times more, which would
# penalise whichever server runs next. Each figure is the best of
# BENCH_ROUNDS (3) rounds.
set -euo pipefail

# shellcheck source=benches/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

BIG_MIB=${BENCH_BIG_MIB:-1024}
SMALL_FILES=${BENCH_SMALL_FILES:-2000}
CIPHER=${BENCH_CIPHER:-aes128-gcm@openssh.com}
ROUNDS=${BENCH_ROUNDS:-3}
OPS=${BENCH_OPS:-put-big get-big put-small get-small}
SSHD_PORT=${BENCH_SSHD_PORT:-2422}
PASSERELLE_PORT=${BENCH_PASSERELLE_PORT:-2423}
FSYNC_PORT=$((PASSERELLE_PORT + 1))

require_root "it runs a private sshd whose ChrootDirectory must be owned by root"
ensure_command sftp openssh-client
ensure_command bc bc
ensure_command /usr/sbin/sshd openssh-server

WORK=$(mktemp -d /tmp/passerelle-bench.XXXXXX)
at_exit rm -rf "$WORK"
# Where downloads land: tmpfs where there is one.
DST=$(mktemp -d /dev/shm/passerelle-bench.XXXXXX 2>/dev/null || mktemp -d /tmp/passerelle-bench-dst.XXXXXX)
at_exit rm -rf "$DST"
# sshd's ChrootDirectory must be root-owned on every component, so not under
# /tmp; one of its own per run, so that runs side by side do not share it.
mkdir -p /var/lib/passerelle-bench
chown root:root /var/lib/passerelle-bench
chmod 755 /var/lib/passerelle-bench
CHROOT=$(mktemp -d /var/lib/passerelle-bench/chroot.XXXXXX)
at_exit rm -rf "$CHROOT"
chmod 755 "$CHROOT"

build_passerelle

echo "== test data: ${BIG_MIB} MiB file, ${SMALL_FILES} files of 4 KiB"
mkdir -p "$WORK/src/small"
head -c "$((BIG_MIB * 1024 * 1024))" /dev/urandom >"$WORK/src/big.bin"
for i in $(seq 1 "$SMALL_FILES"); do head -c 4096 /dev/urandom >"$WORK/src/small/f$i.bin"; done
ssh-keygen -q -t ed25519 -N '' -f "$WORK/id" -C bench

echo "== private OpenSSH sshd (internal-sftp, chroot) on 127.0.0.1:$SSHD_PORT"
mkdir -p /run/sshd "$CHROOT/upload"
ssh-keygen -q -t ed25519 -N '' -f "$WORK/sshd_host_key"
cp "$WORK/id.pub" "$WORK/authorized_keys"
cat >"$WORK/sshd_config" <<CONF
ListenAddress 127.0.0.1
Port $SSHD_PORT
HostKey $WORK/sshd_host_key
PidFile $WORK/sshd.pid
AuthorizedKeysFile $WORK/authorized_keys
StrictModes no
UsePAM no
PasswordAuthentication no
PermitRootLogin prohibit-password
Ciphers $CIPHER
Subsystem sftp internal-sftp
ChrootDirectory $CHROOT
ForceCommand internal-sftp
AllowTcpForwarding no
X11Forwarding no
CONF
in_background /usr/sbin/sshd -D -f "$WORK/sshd_config" -E "$WORK/sshd.log"
wait_for_port "$SSHD_PORT" "$BACKGROUND_PID" "$WORK/sshd.log"

export PASSERELLE_FTPS_EXPLICIT_LISTEN="" PASSERELLE_FTPS_IMPLICIT_LISTEN="" PASSERELLE_LOG_LEVEL=warn
# start_passerelle PORT NAME FSYNC: one installation of its own.
start_passerelle() {
    echo "== passerelle ($2, uploads.fsync=$3) on 127.0.0.1:$1"
    export PASSERELLE_DATA_DIR="$WORK/$2" PASSERELLE_SFTP_LISTEN="127.0.0.1:$1" PASSERELLE_UPLOADS_FSYNC=$3
    export PASSERELLE_ADMIN_LISTEN="127.0.0.1:$(($1 + 100))"
    "$PASSERELLE_BIN" init >/dev/null
    "$PASSERELLE_BIN" tenant add bench >/dev/null
    "$PASSERELLE_BIN" user add bench bench --key "$WORK/id.pub" >/dev/null
    serve_passerelle "$(($1 + 100))" "$WORK/$2.log"
}
start_passerelle "$PASSERELLE_PORT" shipped false
start_passerelle "$FSYNC_PORT" fsync true
# Uploads go to /inbox, where the import pipeline takes every file (here:
# rejected, no profile; that work runs beside the transfers, as in
# production). Downloads read /outbox, where passerelle puts what clients
# fetch: the bench places the same files there.
# (A folder of their own: receipts of the uploads land in /outbox too.)
for name in shipped fsync; do
    mkdir -p "$WORK/$name/tenants/bench/outbox/download"
    cp -r "$WORK/src/big.bin" "$WORK/src/small" "$WORK/$name/tenants/bench/outbox/download/"
done
mkdir -p "$CHROOT/upload/download"
cp -r "$WORK/src/big.bin" "$WORK/src/small" "$CHROOT/upload/download/"
# Gigabytes of fresh copies would otherwise be written back during the first
# measurements.
sync
sleep 2

# settle DATA_DIR: waits (bounded) until the import pipeline of that
# installation has taken and finished every uploaded file, then flushes:
# each measurement starts on a quiet machine, with the previous phase's
# imports done. (In production they run beside the transfers.)
settle() {
    local open
    for _ in $(seq 1 600); do
        open=$(PASSERELLE_DATA_DIR=$1 "$PASSERELLE_BIN" import list --json --limit 1000000 |
            grep -cE '"status": "(received|validating|loading)"' || true)
        if [ "$open" = 0 ] && [ -z "$(find "$1/tenants/bench/inbox" -type f ! -name '.*' -print -quit)" ]; then
            sync
            return
        fi
        sleep 0.5
    done
    echo "bench: the import pipeline of $1 did not settle within 5 minutes" >&2
}

# run_sftp PORT USER BATCH: seconds taken by one sftp batch.
run_sftp() {
    local start=$EPOCHREALTIME
    sftp -q -P "$1" -c "$CIPHER" -i "$WORK/id" -o BatchMode=yes -o StrictHostKeyChecking=no \
        -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -b "$3" "$2@127.0.0.1" >/dev/null
    seconds_since "$start"
}

# run_op PORT USER DIR OP ROUND: seconds for one round of one transfer,
# into (or from) that round's own place.
run_op() {
    local port=$1 user=$2 dir=$3 op=$4 round=$5 batch="$WORK/batch"
    local dst="$DST/$user-$port-$round"
    case $op in
    put-big) printf 'put %s %s/big-%s.bin\n' "$WORK/src/big.bin" "$dir" "$round" >"$batch" ;;
    get-big) mkdir -p "$dst" && printf 'get %s/big.bin %s/big.bin\n' "$dir" "$dst" >"$batch" ;;
    put-small) printf 'mkdir %s/small-%s\nput -r %s/small %s/small-%s/\n' "$dir" "$round" "$WORK/src" "$dir" "$round" >"$batch" ;;
    get-small) mkdir -p "$dst" && printf 'get -r %s/small %s/\n' "$dir" "$dst" >"$batch" ;;
    esac
    run_sftp "$port" "$user" "$batch"
    # A big download is 1 GiB of memory on tmpfs: gone once measured.
    rm -f "$dst/big.bin"
}

printf '\n%-10s %10s %12s %7s %12s %7s\n' "transfer" "openssh s" "passerelle s" "ratio" "fsync s" "ratio"
for op in $OPS; do
    case $op in put-*) ours=/inbox theirs=/upload ;; get-*) ours=/outbox/download theirs=/upload/download ;; esac
    o="" p="" n=""
    for round in $(seq 1 "$ROUNDS"); do
        sync
        o=$(lower "$o" "$(run_op "$SSHD_PORT" root "$theirs" "$op" "$round")")
        sync
        p=$(lower "$p" "$(run_op "$PASSERELLE_PORT" bench "$ours" "$op" "$round")")
        settle "$WORK/shipped"
        n=$(lower "$n" "$(run_op "$FSYNC_PORT" bench "$ours" "$op" "$round")")
        settle "$WORK/fsync"
    done
    # Big uploads (and passerelle's archived copies of them) would otherwise
    # crowd the files still to be downloaded out of the page cache.
    if [ "$op" = put-big ]; then
        rm -f "$CHROOT"/upload/big-*.bin "$WORK"/shipped/archive/bench/* "$WORK"/fsync/archive/bench/*
    fi
    printf '%-10s %10.3f %12.3f %7.2f %12.3f %7.2f\n' "$op" "$o" "$p" "$(echo "$o / $p" | bc -l)" "$n" "$(echo "$o / $n" | bc -l)"
done
echo "(ratio = openssh time / passerelle time; target >= 0.8)"
