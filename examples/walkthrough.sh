#!/usr/bin/env bash
# examples/walkthrough.sh — the README's "Five-minute walkthrough", run as written, in a new empty
# directory on this machine: init, a tenant, a user with an SSH key, an import profile, the server,
# one CSV uploaded over SFTP and its receipt read back over SFTP. The test command runs it
# (tests/tests/walkthrough.rs), so the README cannot drift from what works.
#
#   examples/walkthrough.sh [PASSERELLE]
#
# PASSERELLE: the binary (default target/release/passerelle, else target/debug/passerelle).
# The server listens where its configuration says (SFTP 127.0.0.1:2222 by default); PASSERELLE_*
# variables override it as usual (the test gives it free ports). Exits 0 once the receipt says
# "imported"; the directory and the server go with the script.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
P="${1:-}"
if [[ -z $P ]]; then
    P="$root/target/release/passerelle"
    [[ -x $P ]] || P="$root/target/debug/passerelle"
fi
P="$(realpath "$P")"
[[ -x $P ]] || { echo "walkthrough: no passerelle binary at $P (cargo build --release)" >&2; exit 2; }
listen="${PASSERELLE_SFTP_LISTEN:-127.0.0.1:2222}"
port="${listen##*:}"

work="$(mktemp -d)"
server=""
cleanup() {
    if [[ -n $server ]]; then
        kill -TERM "$server" 2>/dev/null || true
        wait "$server" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT
cd "$work"
step() { printf '\n$ %s\n' "$*"; }

# --- The operator -------------------------------------------------------------------------------
step "passerelle init"
"$P" init
step "passerelle tenant add acme --allow-ip 127.0.0.0/8"
"$P" tenant add acme --allow-ip 127.0.0.0/8
step "passerelle user add acme alice --password-stdin"
"$P" user add acme alice --password-stdin <<< 'a long passphrase of your own'

# Alice's key pair; in real life she sends you her public key.
ssh-keygen -q -t ed25519 -N '' -C alice -f alice_key
step "passerelle key add alice alice_key.pub"
"$P" key add alice alice_key.pub

cat > acme-profile.toml <<'TOML'
[[import]]
name = "employees"
match = "employees/*.csv"
table = "employees"
header = true
mode = "upsert"
key = ["employee_id"]

  [[import.columns]]
  name = "employee_id"
  type = "integer"
  required = true

  [[import.columns]]
  name = "email"
  type = "email"

  [[import.columns]]
  name = "hired_on"
  type = "date"
  format = "%d/%m/%Y"
TOML
step "passerelle profile set acme acme-profile.toml"
"$P" profile set acme acme-profile.toml
step "passerelle profile list acme"
"$P" profile list acme
step "passerelle hostkey show --known-hosts > known_hosts"
"$P" hostkey show --known-hosts > known_hosts
cat known_hosts

step "passerelle serve &"
"$P" serve > serve.log 2>&1 &
server=$!

# --- Alice --------------------------------------------------------------------------------------
alice_sftp() {
    sftp -q -b - -P "$port" -i alice_key -o IdentitiesOnly=yes -o UserKnownHostsFile=known_hosts \
        -o StrictHostKeyChecking=yes -o ConnectTimeout=5 alice@127.0.0.1
}
printf 'employee_id;email;hired_on\n1;ada@example.com;10/12/2025\n2;grace@example.com;01/02/2026\n' > 2026-11.csv

step "sftp alice@127.0.0.1: put 2026-11.csv into /inbox/employees/"
uploaded=""
for _ in $(seq 1 30); do
    if alice_sftp <<'SFTP'; then
-mkdir /inbox/employees
put 2026-11.csv /inbox/employees/2026-11.csv
SFTP
        uploaded=yes
        break
    fi
    kill -0 "$server" 2>/dev/null || { cat serve.log >&2; echo "walkthrough: the server stopped" >&2; exit 1; }
    sleep 1
done
[[ -n $uploaded ]] || { cat serve.log >&2; echo "walkthrough: cannot upload over SFTP" >&2; exit 1; }

step "sftp alice@127.0.0.1: get /outbox/employees/2026-11.csv.result.json"
# The verdict comes within a second or two; until then there is no receipt, or one that says
# "received" (the file is taken, not yet imported).
verdict=""
for _ in $(seq 1 60); do
    rm -f 2026-11.csv.result.json
    if alice_sftp <<< 'get /outbox/employees/2026-11.csv.result.json' 2>/dev/null \
        && ! grep -q '"status": "received"' 2026-11.csv.result.json; then
        verdict=yes
        break
    fi
    sleep 0.5
done
[[ -n $verdict ]] || { cat serve.log >&2; echo "walkthrough: no verdict" >&2; exit 1; }
cat 2026-11.csv.result.json

step "passerelle import list --tenant acme"
"$P" import list --tenant acme
grep -q '"status": "imported"' 2026-11.csv.result.json || { echo "walkthrough: not imported" >&2; exit 1; }
echo
echo "walkthrough: the receipt says imported"
