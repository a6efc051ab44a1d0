#!/usr/bin/env bash
# FTPS throughput of passerelle against a private vsftpd, on loopback, in one
# run, with curl as the client, TLS 1.2 and the same cipher suite on both.
#
#   benches/ftps-vs-vsftpd.sh                 # 1 GiB upload and download
#   BENCH_BIG_MIB=256 benches/ftps-vs-vsftpd.sh
#
# Needs root (it creates a system user for vsftpd's PAM login) and installs
# vsftpd if missing. Debian's vsftpd 3.0.3 has no TLS-version option and
# would negotiate TLS 1.3, so an OpenSSL config (OPENSSL_CONF) pins it to
# TLS 1.2. Both servers require TLS on control and data and session reuse.
# Prints the best of BENCH_ROUNDS seconds for each and the ratio
# vsftpd-time / passerelle-time (>= 1.0: passerelle is at least as fast),
# for passerelle as shipped (uploads.fsync = false: no flush, what vsftpd
# does) and with uploads.fsync = true (every upload flushed before 226). A benchmark, not a test: compare only within one run.
set -euo pipefail

# shellcheck source=benches/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

BIG_MIB=${BENCH_BIG_MIB:-1024}
CIPHER=${BENCH_CIPHER:-ECDHE-ECDSA-AES128-GCM-SHA256}
ROUNDS=${BENCH_ROUNDS:-2}
VSFTPD_PORT=${BENCH_VSFTPD_PORT:-2521}
PASSERELLE_PORT=${BENCH_PASSERELLE_PORT:-2522}
FSYNC_PORT=$((PASSERELLE_PORT + 1))
# A system user of its own per run (vsftpd logs in through PAM), so that
# runs side by side do not share one.
BENCH_USER=passerelle-bench-$$
PASSWORD="Transfer-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"

require_root "vsftpd logs in a system user, which the bench creates"
ensure_command /usr/sbin/vsftpd vsftpd
ensure_command curl curl
ensure_command bc bc

WORK=$(mktemp -d /tmp/passerelle-ftps-bench.XXXXXX)
at_exit rm -rf "$WORK"
# vsftpd serves the bench user's home inside it after dropping privileges.
chmod 755 "$WORK"

build_passerelle

echo "== test data: ${BIG_MIB} MiB file"
mkdir -p "$WORK/src"
head -c "$((BIG_MIB * 1024 * 1024))" /dev/urandom >"$WORK/src/big.bin"

export PASSERELLE_SFTP_LISTEN="" PASSERELLE_FTPS_IMPLICIT_LISTEN="" PASSERELLE_LOG_LEVEL=warn
# start_passerelle PORT NAME FSYNC: one installation of its own, explicit FTPS on PORT.
start_passerelle() {
    echo "== passerelle ($2, uploads.fsync=$3) on 127.0.0.1:$1"
    export PASSERELLE_DATA_DIR="$WORK/$2" PASSERELLE_FTPS_EXPLICIT_LISTEN="127.0.0.1:$1" PASSERELLE_UPLOADS_FSYNC=$3
    export PASSERELLE_FTPS_PASSIVE_PORTS="$(($1 * 10 + 1))-$(($1 * 10 + 9))"
    export PASSERELLE_ADMIN_LISTEN="127.0.0.1:$(($1 + 100))"
    "$PASSERELLE_BIN" init >/dev/null
    "$PASSERELLE_BIN" tenant add bench >/dev/null
    printf '%s\n' "$PASSWORD" | "$PASSERELLE_BIN" user add bench bench --password-stdin >/dev/null
    serve_passerelle "$(($1 + 100))" "$WORK/$2.log"
}
start_passerelle "$PASSERELLE_PORT" shipped false
start_passerelle "$FSYNC_PORT" fsync true
# vsftpd presents passerelle's generated certificate: same key type, same suite.
CERT="$WORK/shipped/tls/cert.pem"
KEY="$WORK/shipped/tls/key.pem"

echo "== private vsftpd (TLS 1.2 via OPENSSL_CONF) on 127.0.0.1:$VSFTPD_PORT"
useradd --create-home --home-dir "$WORK/vsftpd-home" --shell /bin/bash "$BENCH_USER"
at_exit userdel "$BENCH_USER"
printf '%s:%s\n' "$BENCH_USER" "$PASSWORD" | chpasswd
mkdir -p /var/run/vsftpd/empty
cat >"$WORK/openssl.cnf" <<CONF
openssl_conf = default_conf
[default_conf]
ssl_conf = ssl_sect
[ssl_sect]
system_default = system_default_sect
[system_default_sect]
MinProtocol = TLSv1.2
MaxProtocol = TLSv1.2
CONF
cat >"$WORK/vsftpd.conf" <<CONF
listen=YES
listen_ipv6=NO
listen_address=127.0.0.1
listen_port=$VSFTPD_PORT
background=NO
anonymous_enable=NO
local_enable=YES
write_enable=YES
pam_service_name=vsftpd
seccomp_sandbox=NO
secure_chroot_dir=/var/run/vsftpd/empty
pasv_enable=YES
pasv_min_port=$((VSFTPD_PORT * 10 + 1))
pasv_max_port=$((VSFTPD_PORT * 10 + 9))
ssl_enable=YES
force_local_logins_ssl=YES
force_local_data_ssl=YES
require_ssl_reuse=YES
ssl_ciphers=$CIPHER
rsa_cert_file=$CERT
rsa_private_key_file=$KEY
xferlog_enable=NO
CONF
OPENSSL_CONF="$WORK/openssl.cnf" in_background /usr/sbin/vsftpd "$WORK/vsftpd.conf" 2>"$WORK/vsftpd.log"
wait_for_port "$VSFTPD_PORT" "$BACKGROUND_PID" "$WORK/vsftpd.log"

# run_curl PORT USER OP REMOTE: seconds taken by one curl transfer.
run_curl() {
    local start=$EPOCHREALTIME url="ftp://127.0.0.1:$1/$4"
    local args=(-sS --ssl-reqd -k --tlsv1.2 --tls-max 1.2 --ciphers "$CIPHER" -u "$2:$PASSWORD")
    case $3 in
    put) curl "${args[@]}" -T "$WORK/src/big.bin" "$url" >&2 || { echo "bench: upload to $1 failed" >&2; exit 1; } ;;
    get)
        curl "${args[@]}" -o "$WORK/got.bin" "$url" >&2 || { echo "bench: download from $1 failed" >&2; exit 1; }
        cmp -s "$WORK/src/big.bin" "$WORK/got.bin" || { echo "bench: download from $1 differs" >&2; exit 1; }
        ;;
    esac
    seconds_since "$start"
}

# one_round PORT USER OP REMOTE: seconds of one transfer, its download removed.
one_round() {
    run_curl "$@"
    rm -f "$WORK/got.bin"
}

# best PORT USER OP REMOTE: best time over ROUNDS.
best() {
    local seconds
    seconds=$(best_of "$ROUNDS" one_round "$@") || return
    printf '%.3f' "$seconds"
}

printf '\n%-8s %10s %12s %7s %12s %7s\n' "transfer" "vsftpd s" "passerelle s" "ratio" "fsync s" "ratio"
for op in put get; do
    v=$(best "$VSFTPD_PORT" "$BENCH_USER" "$op" "big.bin")
    # A .part name: the import pipeline would take (and archive) any other.
    p=$(best "$PASSERELLE_PORT" bench "$op" "inbox/big.bin.part")
    n=$(best "$FSYNC_PORT" bench "$op" "inbox/big.bin.part")
    printf '%-8s %10s %12s %7.2f %12s %7.2f\n' "$op" "$v" "$p" "$(echo "$v / $p" | bc -l)" "$n" "$(echo "$v / $n" | bc -l)"
done
echo "(ratio = vsftpd time / passerelle time; target >= 0.8; ${BIG_MIB} MiB, TLS 1.2 $CIPHER)"
