#!/usr/bin/env bash
# `tenant copy-anonymized` between two PostgreSQL tenants, one large table.
#
#   benches/anonymized-copy.sh                    # 4,000,000 rows
#   BENCH_ROWS=200000 benches/anonymized-copy.sh
#
# Makes a catalog and two tenants (the source, and a test zone) on the
# PostgreSQL server of BENCH_PG_ADMIN_URL (default: the tests' one), fills the
# source's table with generate_series (integer id, name, e-mail, date: personal;
# decimal and text: not), times the copy of a release build, and checks the
# target's row count and that ids stayed distinct. Everything it made on the
# server is dropped at exit. Prints rows, seconds and rows/s.

set -euo pipefail
# shellcheck source=benches/lib.sh
source "$(dirname "$0")/lib.sh"

ROWS="${BENCH_ROWS:-4000000}"
ADMIN="${BENCH_PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
SERVER="${ADMIN%/*}"
HOST="${SERVER#*://}"
HOST="${HOST#*@}"
PREFIX="bench$$_"
ensure_command psql postgresql-client
build_passerelle

WORK="$(mktemp -d)"
at_exit rm -rf "$WORK"
mkdir -m 700 "$WORK/data"
pg() { psql "$1" -X -q -v ON_ERROR_STOP=1 -At -c "$2"; }
pg "$ADMIN" "CREATE DATABASE ${PREFIX}catalog"
# Cleanups run newest first: the databases go before the roles that own them.
at_exit pg "$ADMIN" "DROP ROLE IF EXISTS ${PREFIX}src"
at_exit pg "$ADMIN" "DROP ROLE IF EXISTS ${PREFIX}lab"
for name in catalog src lab; do
    at_exit pg "$ADMIN" "DROP DATABASE IF EXISTS ${PREFIX}${name} WITH (FORCE)"
done

export PASSERELLE_CATALOG_URL="$SERVER/${PREFIX}catalog"
export PASSERELLE_TENANT_DB_BACKEND=postgres
export PASSERELLE_TENANT_DB_ADMIN_URL="$ADMIN"
export PASSERELLE_TENANT_DB_NAME_PREFIX="$PREFIX"
passerelle() { "$PASSERELLE_BIN" --data-dir "$WORK/data" "$@"; }
passerelle tenant add src >/dev/null 2>&1
passerelle tenant add lab --test-zone >/dev/null 2>&1
cat >"$WORK/profile.toml" <<'TOML'
[[import]]
name = "people"
match = "people/*.csv"
table = "people"
columns = [
  { name = "person_id", type = "integer", personal = "id" },
  { name = "full_name", type = "text", personal = "name" },
  { name = "email", type = "email", personal = "email" },
  { name = "born_on", type = "date", personal = "date" },
  { name = "salary", type = "decimal" },
  { name = "team", type = "text" },
]
TOML
passerelle profile set src "$WORK/profile.toml" >/dev/null

# The trust authentication of the test server lets the tenant's role in without its password.
echo "== generating $ROWS rows"
pg "postgres://${PREFIX}src@$HOST/${PREFIX}src" "CREATE TABLE people (person_id bigint, full_name text, \
email text, born_on date, salary numeric, team text, _import_id text NOT NULL, _line bigint NOT NULL); \
INSERT INTO people SELECT 100000000 + i, 'Person ' || i || ' Name', 'p' || i || '@example.fr', \
date '1970-01-01' + (i % 15000), 1000 + (i % 5000) + 0.25, 'team' || (i % 7), 'job', i \
FROM generate_series(1, $ROWS) i; ANALYZE people"

echo "== copying"
START=$EPOCHREALTIME
passerelle tenant copy-anonymized src --to lab >/dev/null
SECONDS_TAKEN=$(seconds_since "$START")
COUNTED=$(pg "postgres://${PREFIX}lab@$HOST/${PREFIX}lab" "SELECT count(*) || ' ' || count(DISTINCT person_id) FROM people")
[ "$COUNTED" = "$ROWS $ROWS" ] || bench_die "the target holds $COUNTED (rows, distinct ids), expected $ROWS $ROWS"
awk -v rows="$ROWS" -v s="$SECONDS_TAKEN" 'BEGIN { printf "rows %d  seconds %.1f  rows/s %.0f\n", rows, s, rows / s }'
