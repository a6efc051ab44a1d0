#!/usr/bin/env bash
# PostgreSQL import speed of passerelle's loader against psql's \copy, in one
# run, and the same file's load into a SQLite tenant database.
#
#   benches/import-vs-copy.sh                 # 1,000,000 rows (~100 MB)
#   BENCH_ROWS=200000 benches/import-vs-copy.sh
#
# Generates a CSV with 8 typed columns (integer id, text, e-mail, decimal with
# ',', date %d/%m/%Y, timestamp %d/%m/%Y %H:%M:%S, boolean, text with quoted
# ';' now and then) and its import profile, then times:
#
#   passerelle  load() of that file (validation of every value + COPY in one
#               streaming pass and one transaction: what an import job runs)
#               into a freshly provisioned tenant database, as the tenant's own
#               role; timed inside the process, release build;
#   psql        \copy ... WITH (FORMAT csv, HEADER, DELIMITER ';') of the same
#               rows into an identical table (same column types) in another
#               fresh database on the same server.
#
# psql cannot read '1234,56' as numeric nor 31/12/2026 under every DateStyle,
# so the generator writes a second, psql-friendly copy of the same rows in the
# same pass: '.' as decimal separator and ISO dates/timestamps; everything
# else (quoting, text, booleans) is byte-identical. The psql table has the
# same columns as the one passerelle creates, _import_id and _line included;
# psql fills those two with column defaults (passerelle sends them per row).
#
# Then times load() of the same file into a fresh SQLite tenant database (the
# default backend), same profile, release build, and prints its rows/s.
#
# Prints the times, the ratio passerelle / psql (target <= 0.8), validation
# alone (no database) and the rows/s of both backends (SQLite target >=
# 400,000). A benchmark, not a test: the machine is shared, compare only
# within one run.
set -euo pipefail

# shellcheck source=benches/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ROWS=${BENCH_ROWS:-1000000}
ADMIN_URL=${TEST_PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}
PSQL_DB="passerelle_bench_psql_$$"

ensure_command psql postgresql-client
ensure_command bc bc

WORK=$(mktemp -d /tmp/passerelle-import-bench.XXXXXX)
at_exit rm -rf "$WORK"

# drop_psql_db: removes the database of the psql side, if it was created.
drop_psql_db() {
    psql -X -q -d "$ADMIN_URL" -c "DROP DATABASE IF EXISTS $PSQL_DB WITH (FORCE)" >/dev/null 2>&1 || true
}
at_exit drop_psql_db

# load_bench ARGS...: the loader's benchmark test of passerelle-import, release build.
load_bench() {
    cargo test --release --quiet --manifest-path "$REPO_ROOT/Cargo.toml" -p passerelle-import --test load_bench "$@"
}

echo "== building the loader (release)"
load_bench --no-run

echo "== generating $ROWS rows (passerelle copy and psql-friendly copy)"
awk -v rows="$ROWS" -v ours="$WORK/ours.csv" -v theirs="$WORK/psql.csv" 'BEGIN {
    header = "id;name;email;amount;day;at;active;comment"
    print header > ours; print header > theirs
    for (i = 1; i <= rows; i++) {
        cents = (i * 7919) % 10000000
        whole = int(cents / 100); frac = sprintf("%02d", cents % 100)
        d = (i % 28) + 1; m = (i % 12) + 1; y = 2000 + (i % 27)
        hh = i % 24; mi = (i * 7) % 60; ss = (i * 13) % 60
        active = (i % 3 == 0) ? "false" : "true"
        comment = (i % 10 == 0) ? "\"note; with the delimiter\"" : "plain comment " (i % 97)
        name = "Customer " i
        email = "customer" i "@example.com"
        printf "%d;%s;%s;%d,%s;%02d/%02d/%04d;%02d/%02d/%04d %02d:%02d:%02d;%s;%s\n", \
            i, name, email, whole, frac, d, m, y, d, m, y, hh, mi, ss, active, comment > ours
        printf "%d;%s;%s;%d.%s;%04d-%02d-%02d;%04d-%02d-%02d %02d:%02d:%02d;%s;%s\n", \
            i, name, email, whole, frac, y, m, d, y, m, d, hh, mi, ss, active, comment > theirs
    }
}'
cat >"$WORK/profile.toml" <<'TOML'
[[import]]
name = "bench"
match = "*.csv"
table = "bench"
delimiter = ";"
encoding = "utf-8"
mode = "append"
  [[import.columns]]
  name = "id"
  type = "integer"
  required = true
  [[import.columns]]
  name = "name"
  type = "text"
  [[import.columns]]
  name = "email"
  type = "email"
  [[import.columns]]
  name = "amount"
  type = "decimal"
  decimal_separator = ","
  [[import.columns]]
  name = "day"
  type = "date"
  format = "%d/%m/%Y"
  [[import.columns]]
  name = "at"
  type = "timestamp"
  format = "%d/%m/%Y %H:%M:%S"
  [[import.columns]]
  name = "active"
  type = "boolean"
  [[import.columns]]
  name = "comment"
  type = "text"
TOML
echo "   $(du -m "$WORK/ours.csv" | cut -f1) MB (passerelle copy), $(du -m "$WORK/psql.csv" | cut -f1) MB (psql copy)"

echo "== passerelle load() (validate + COPY, one transaction, tenant role)"
out=$(LOAD_BENCH_FILE="$WORK/ours.csv" LOAD_BENCH_PROFILE="$WORK/profile.toml" TEST_PG_ADMIN_URL="$ADMIN_URL" \
    load_bench -- --ignored --nocapture 2>&1) || {
    echo "$out"
    exit 1
}
ours_s=$(sed -n 's/^load_seconds=//p' <<<"$out")
validate_s=$(sed -n 's/^validate_seconds=//p' <<<"$out")
ours_rows=$(sed -n 's/^rows=//p' <<<"$out")

echo "== passerelle load() into a SQLite tenant database (validation + INSERTs in one pass, one transaction)"
out=$(LOAD_BENCH_BACKEND=sqlite LOAD_BENCH_FILE="$WORK/ours.csv" LOAD_BENCH_PROFILE="$WORK/profile.toml" \
    load_bench -- --ignored --nocapture 2>&1) || {
    echo "$out"
    exit 1
}
sqlite_s=$(sed -n 's/^load_seconds=//p' <<<"$out")
sqlite_rows=$(sed -n 's/^rows=//p' <<<"$out")

echo "== psql \\copy into an identical table"
psql -X -q -v ON_ERROR_STOP=1 -d "$ADMIN_URL" -c "CREATE DATABASE $PSQL_DB" >/dev/null
psql_url="${ADMIN_URL%/*}/$PSQL_DB"
psql -X -q -v ON_ERROR_STOP=1 -d "$psql_url" -c 'CREATE TABLE "bench" ("id" bigint, "name" text, "email" text,
    "amount" numeric, "day" date, "at" timestamp, "active" boolean, "comment" text,
    "_import_id" TEXT NOT NULL DEFAULT '"'psql'"', "_line" BIGINT NOT NULL DEFAULT 0)' >/dev/null
start=$EPOCHREALTIME
psql -X -q -v ON_ERROR_STOP=1 -d "$psql_url" \
    -c "\\copy bench (id, name, email, amount, day, at, active, comment) FROM '$WORK/psql.csv' WITH (FORMAT csv, HEADER, DELIMITER ';')" >/dev/null
psql_s=$(printf '%.3f' "$(seconds_since "$start")")
psql_rows=$(psql -X -q -t -A -d "$psql_url" -c 'SELECT count(*) FROM bench')

if [ "$ours_rows" != "$ROWS" ] || [ "$psql_rows" != "$ROWS" ] || [ "$sqlite_rows" != "$ROWS" ]; then
    echo "row counts differ: $ours_rows / $psql_rows / $sqlite_rows / $ROWS"
    exit 1
fi

echo
printf '%-34s %8s s  (%s rows; the import job: one pass)\n' "passerelle load()" "$ours_s" "$ours_rows"
printf '%-34s %8s s  (%s rows)\n' "psql \\copy" "$psql_s" "$psql_rows"
awk -v a="$ours_s" -v b="$psql_s" 'BEGIN { printf "ratio passerelle import job / psql: %.2fx (target <= 0.8x)\n", a / b }'
awk -v r="$ours_rows" -v s="$validate_s" \
    'BEGIN { printf "%-34s %8s s  (%.0f rows/s, SHA-256 included, no database)\n", "validation alone", s, r / s }'
printf '%-34s %8s s  (%s rows)\n' "passerelle load() into SQLite" "$sqlite_s" "$sqlite_rows"
awk -v r="$sqlite_rows" -v s="$sqlite_s" -v pr="$ours_rows" -v ps="$ours_s" \
    'BEGIN { printf "rows/s: SQLite %.0f, PostgreSQL %.0f (target: SQLite >= 400000)\n", r / s, pr / ps }'
