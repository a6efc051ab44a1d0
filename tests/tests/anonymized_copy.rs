//! `tenant copy-anonymized` on SQLite and PostgreSQL: after a copy no value
//! of a personal column of the source appears anywhere in the target,
//! replacements keep their shape and pass the profile's validation again,
//! row counts and other columns are identical, equal values map to equal
//! replacements within a copy and to other ones in the next copy, and a
//! test zone is never a source (exit 2).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use passerelle_import::{Discard, Profiles, validate};
use passerelle_tests::{Outcome, Passerelle, pg_admin_url, pg_url_as, psql, sqlite3};
use serde_json::Value;

/// The source tenant's profiles: every personal kind, a key that is
/// personal, a table sharing values (person ids, e-mails) with another.
const PROFILE: &str = r#"
[[import]]
name = "people"
match = "people/*.csv"
table = "people"
delimiter = ","
mode = "upsert"
key = ["person_id"]
columns = [
  { name = "person_id", type = "integer", personal = "id" },
  { name = "full_name", type = "text", personal = "name" },
  { name = "email", type = "email", personal = "email" },
  { name = "phone", type = "text", personal = "phone" },
  { name = "iban", type = "text", personal = "iban" },
  { name = "born_on", type = "date", personal = "date" },
  { name = "postcode", type = "text", personal = "postal" },
  { name = "badge", type = "text", personal = "id" },
  { name = "notes", type = "text", personal = "text" },
  { name = "secret", type = "text", personal = "drop" },
  { name = "salary", type = "decimal" },
  { name = "active", type = "boolean" },
  { name = "team", type = "text" },
]

[[import]]
name = "orders"
match = "orders/*.csv"
table = "orders"
delimiter = ","
columns = [
  { name = "order_no", type = "text" },
  { name = "person_id", type = "integer", personal = "id" },
  { name = "contact", type = "email", personal = "email" },
  { name = "placed_at", type = "timestamp", format = "%Y-%m-%d %H:%M:%S", personal = "date", window_days = 10 },
  { name = "amount", type = "decimal" },
]
"#;

/// Personal columns, and the columns of type text or email, per table.
const PERSONAL: [(&str, &[&str]); 2] = [
    (
        "people",
        &["person_id", "full_name", "email", "phone", "iban", "born_on", "postcode", "badge", "notes", "secret"],
    ),
    ("orders", &["person_id", "contact", "placed_at"]),
];
const TEXT_COLUMNS: [(&str, &[&str]); 2] = [
    ("people", &["full_name", "email", "phone", "iban", "postcode", "badge", "notes", "secret", "team"]),
    ("orders", &["order_no", "contact"]),
];
const EXPORT_COLUMNS: [(&str, &str); 2] = [
    (
        "people",
        "person_id, full_name, email, phone, iban, born_on, postcode, badge, notes, secret, salary, ACTIVE, team",
    ),
    ("orders", "order_no, person_id, contact, placed_at, amount"),
];

const FIRST: [&str; 10] = ["Jeanne", "Paul", "Amelie", "Karim", "Sophie", "Lucas", "Nadia", "Hugo", "Chloe", "Yann"];
const LAST: [&str; 20] = [
    "Martin", "Durand", "Lefebvre", "Moreau", "Girard", "Bonnet", "Dupont", "Lambert", "Fontaine", "Rousseau",
    "Vincent", "Muller", "Leroy", "Roux", "Morel", "Fournier", "Garnier", "Faure", "Andre", "Mercier",
];
const PEOPLE: u64 = 20;
const ORDERS: u64 = 30;

/// A tenant database, read and written with the command-line clients.
enum Db {
    Sqlite(PathBuf),
    Postgres(String),
}

impl Db {
    fn of(p: &Passerelle, tenant: &str) -> Self {
        let show: Value = serde_json::from_str(&p.ok(&["tenant", "show", tenant, "--json"])).unwrap();
        let name = show["database_name"].as_str().unwrap();
        match show["database_backend"].as_str() {
            Some("postgres") => {
                Self::Postgres(pg_url_as(&pg_admin_url(), show["database_role"].as_str().unwrap(), name))
            }
            _ => Self::Sqlite(PathBuf::from(name)),
        }
    }

    fn postgres(&self) -> bool {
        matches!(self, Self::Postgres(_))
    }

    fn execute(&self, sql: &str) {
        match self {
            Self::Sqlite(file) => drop(sqlite3(file, sql)),
            Self::Postgres(url) => drop(psql(url, sql)),
        }
    }

    /// The rows of `sql` as JSON objects.
    fn rows(&self, sql: &str) -> Vec<serde_json::Map<String, Value>> {
        let text = match self {
            Self::Sqlite(file) => {
                let out = Outcome::from(Command::new("sqlite3").arg("-json").arg(file).arg(sql).output().unwrap());
                assert!(out.success(), "{sql}: {}", out.stderr);
                out.stdout
            }
            Self::Postgres(url) => psql(url, &format!("SELECT coalesce(json_agg(r), '[]') FROM ({sql}) r")),
        };
        if text.trim().is_empty() {
            return Vec::new();
        }
        let rows: Vec<Value> = serde_json::from_str(&text).unwrap();
        rows.into_iter().map(|row| row.as_object().unwrap().clone()).collect()
    }

    fn tables(&self) -> Vec<String> {
        let sql = match self {
            Self::Sqlite(_) => "SELECT name AS t FROM sqlite_master WHERE type = 'table' ORDER BY 1",
            Self::Postgres(_) => "SELECT tablename AS t FROM pg_tables WHERE schemaname = 'public' ORDER BY 1",
        };
        self.rows(sql).iter().map(|row| text(&row["t"]).unwrap()).collect()
    }

    /// The declared columns of `table` as CSV with a header, booleans as 1/0.
    fn csv(&self, table: &str) -> String {
        let (_, columns) = EXPORT_COLUMNS.iter().find(|(t, _)| *t == table).unwrap();
        match self {
            Self::Sqlite(file) => {
                let sql = format!("SELECT {} FROM {table} ORDER BY _line", columns.replace("ACTIVE", "active"));
                let out = Outcome::from(
                    Command::new("sqlite3").args(["-csv", "-header"]).arg(file).arg(sql).output().unwrap(),
                );
                assert!(out.success(), "{}", out.stderr);
                out.stdout
            }
            Self::Postgres(url) => {
                let sql = format!(
                    "SELECT {} FROM {table} ORDER BY _line",
                    columns.replace("ACTIVE", "active::int AS active")
                );
                psql(url, &format!("COPY ({sql}) TO STDOUT WITH (FORMAT csv, HEADER)"))
            }
        }
    }
}

/// A value as text, the same from either database's JSON (booleans 1/0,
/// numbers without trailing zeros, timestamps with a space); `None` for NULL.
fn text(value: &Value) -> Option<String> {
    let number = |text: &str| text.parse::<f64>().ok().filter(|_| text.contains('.')).map(|n| n.to_string());
    match value {
        Value::Null => None,
        Value::Bool(b) => Some(u8::from(*b).to_string()),
        Value::String(s) if s.len() == 19 && s.as_bytes()[10] == b'T' => Some(s.replacen('T', " ", 1)),
        Value::String(s) => Some(number(s).unwrap_or_else(|| s.clone())),
        other => Some(number(&other.to_string()).unwrap_or_else(|| other.to_string())),
    }
}

fn ddl(postgres: bool) -> String {
    let (int, text, decimal, boolean, date, timestamp) = if postgres {
        ("bigint", "text", "numeric", "boolean", "date", "timestamp")
    } else {
        ("INTEGER", "TEXT", "TEXT", "INTEGER", "TEXT", "TEXT")
    };
    format!(
        "CREATE TABLE people (person_id {int} NOT NULL, full_name {text}, email {text}, phone {text}, iban {text}, \
         born_on {date}, postcode {text}, badge {text}, notes {text}, secret {text}, salary {decimal}, \
         active {boolean}, team {text}, _import_id TEXT NOT NULL, _line BIGINT NOT NULL, PRIMARY KEY (person_id)); \
         CREATE TABLE orders (order_no {text}, person_id {int}, contact {text}, placed_at {timestamp}, \
         amount {decimal}, _import_id TEXT NOT NULL, _line BIGINT NOT NULL); \
         CREATE TABLE scratch (note {text});"
    )
}

fn person_id(i: u64) -> u64 {
    400_000_000 + i * 7_919_117
}

fn email(i: u64) -> String {
    format!("{}.{}{i}@client-acme.fr", FIRST[(i % 10) as usize], LAST[i as usize]).to_lowercase()
}

/// The source rows: every personal value distinct and long enough that
/// finding it in the target means it leaked (postcodes are British-shaped:
/// five digits would turn up by chance in the 23 random digits of a
/// replaced IBAN).
fn fill(db: &Db) {
    let boolean = |b: bool| if db.postgres() { b.to_string() } else { u8::from(b).to_string() };
    let mut sql = ddl(db.postgres());
    for i in 0..PEOPLE {
        let name = format!("{} {}", FIRST[(i % 10) as usize], LAST[i as usize]);
        sql.push_str(&format!(
            "INSERT INTO people VALUES ({}, '{name}', '{}', '+33 6 {:02} {:02} {:02} {:02}', 'FR76{:023}', \
             '{}-{:02}-{:02}', '{}7{:02}Q {}ZP', 'EMP-{:05}-X{}', 'Called {name} about invoice {i}; prefers mornings', \
             'SSN 1 {} 75 {:03}', '{}.{:02}', {}, '{}', 'job-a', {});",
            person_id(i),
            email(i),
            (i * 37) % 100,
            (i * 53 + 11) % 100,
            (i * 71 + 23) % 100,
            (i * 13 + 47) % 100,
            30_006_000_011_234_567_890_000u128 + u128::from(i) * 99_991,
            1960 + i,
            1 + i % 12,
            1 + i % 28,
            char::from(b'A' + i as u8),
            (i * 13) % 100,
            i % 10,
            10_000 + i * 321,
            char::from(b'A' + i as u8),
            80 + i,
            900 - i,
            30_000 + i * 1000,
            i,
            boolean(i % 2 == 0),
            ["north", "south", "west"][(i % 3) as usize],
            i + 2,
        ));
    }
    for j in 0..ORDERS {
        let person = j % PEOPLE;
        sql.push_str(&format!(
            "INSERT INTO orders VALUES ('ORD-{j:04}', {}, '{}', '2025-{:02}-{:02} {:02}:{:02}:00', '{}.50', 'job-b', {});",
            person_id(person),
            email(person),
            1 + j % 12,
            1 + j % 28,
            j % 24,
            j,
            100 + j,
            j + 2,
        ));
    }
    sql.push_str("INSERT INTO scratch VALUES ('kept out');");
    db.execute(&sql);
}

fn rows_of(db: &Db, table: &str) -> Vec<serde_json::Map<String, Value>> {
    db.rows(&format!("SELECT * FROM {table} ORDER BY _line"))
}

/// Everything the issue asks of one copy; returns each source person id's replacement.
fn check_copy(source: &Db, target: &Db) -> HashMap<String, String> {
    assert!(!target.tables().contains(&"scratch".to_owned()), "a table no profile names is not copied");
    let mut personal_values: Vec<String> = Vec::new();
    let mut replaced: HashMap<(String, String), String> = HashMap::new();
    let mut target_rows = Vec::new();
    for (table, personal) in PERSONAL {
        let (from, to) = (rows_of(source, table), rows_of(target, table));
        assert_eq!(from.len(), to.len(), "row count of {table}");
        for (a, b) in from.iter().zip(&to) {
            for (column, value) in a {
                let kind = if personal.contains(&column.as_str()) { "personal" } else { "copied" };
                match (kind, text(value)) {
                    ("copied", _) => assert_eq!(text(value), text(&b[column]), "{table}.{column} is copied as it is"),
                    (_, Some(value)) => {
                        personal_values.push(value.clone());
                        let family = if column == "contact" { "email".to_owned() } else { column.clone() };
                        let new = text(&b[column]).unwrap_or_default();
                        let earlier = replaced.insert((family, value.clone()), new.clone());
                        assert!(earlier.is_none_or(|e| e == new), "{table}.{column}: one value, two replacements");
                        check_shape(column, &value, &b[column]);
                    }
                    _ => {}
                }
            }
        }
        target_rows.push((table, to));
    }
    for (table, rows) in &target_rows {
        let text_columns = TEXT_COLUMNS.iter().find(|(t, _)| t == table).unwrap().1;
        for row in rows {
            for (column, value) in row {
                let Some(value) = text(value) else { continue };
                for secret in &personal_values {
                    assert_ne!(&value, secret, "{table}.{column} holds a source value");
                    if text_columns.contains(&column.as_str()) {
                        assert!(!value.contains(secret.as_str()), "{table}.{column} {value:?} contains {secret:?}");
                    }
                }
            }
        }
    }
    reimport(target);
    replaced.into_iter().filter(|((column, _), _)| column == "person_id").map(|((_, k), v)| (k, v)).collect()
}

/// A replacement has the shape of what it replaces.
fn check_shape(column: &str, before: &str, after: &Value) {
    let after = text(after);
    let Some(after) = after else {
        assert_eq!(column, "secret", "only dropped columns become NULL");
        return;
    };
    assert_ne!(column, "secret", "a dropped column is NULL");
    let same_classes = |a: &str, b: &str| {
        a.len() == b.len()
            && a.bytes().zip(b.bytes()).all(|(x, y)| {
                x.is_ascii_digit() == y.is_ascii_digit() && x.is_ascii_uppercase() == y.is_ascii_uppercase()
            })
    };
    match column {
        "person_id" | "badge" | "phone" => assert!(same_classes(before, &after), "{column}: {before} -> {after}"),
        "postcode" => assert!(same_classes(before, &after) && before[..2] == after[..2], "{before} -> {after}"),
        "email" | "contact" => assert!(after.ends_with("@anonymized.invalid"), "{after}"),
        "iban" => {
            assert!(after.starts_with("FR") && after.len() == before.len(), "{after}");
            let digits: String = format!("{}{}", &after[4..], &after[..4])
                .chars()
                .map(|c| c.to_digit(36).unwrap().to_string())
                .collect();
            let rest = digits.bytes().fold(0u32, |rest, d| (rest * 10 + u32::from(d - b'0')) % 97);
            assert_eq!(rest, 1, "IBAN check digits of {after}");
        }
        "born_on" => assert_eq!(before[..4], after[..4], "a date stays in its year"),
        "placed_at" => {
            let day = |t: &str| t[..10].to_owned();
            assert_eq!(before[11..], after[11..], "the time of day is kept");
            assert_ne!(day(before), day(&after));
            let a = time::Date::parse(&day(before), time::macros::format_description!("[year]-[month]-[day]")).unwrap();
            let b = time::Date::parse(&day(&after), time::macros::format_description!("[year]-[month]-[day]")).unwrap();
            assert!((a - b).whole_days().abs() <= 10, "within the window: {before} -> {after}");
        }
        _ => {}
    }
}

/// The target's rows, exported as CSV, are accepted by the profile again.
fn reimport(target: &Db) {
    let profiles = Profiles::parse(PROFILE).unwrap();
    for profile in &profiles {
        let csv = target.csv(profile.table());
        let report = validate(csv.as_bytes(), profile, &mut Discard).unwrap();
        assert!(report.is_accepted(), "{}: {report:?}\n{csv}", profile.table());
    }
}

/// `source` (with data and profiles) and `lab`, a test zone.
fn installation(p: &Passerelle) -> Db {
    p.ok(&["tenant", "add", "acme"]);
    p.ok(&["tenant", "add", "lab", "--test-zone"]);
    p.set_profile("acme", PROFILE);
    let source = Db::of(p, "acme");
    fill(&source);
    source
}

fn copy(p: &Passerelle, args: &[&str]) -> Outcome {
    let mut all = vec!["tenant", "copy-anonymized", "acme"];
    all.extend_from_slice(args);
    let out = p.run(&all);
    assert!(out.success(), "copy {args:?} failed ({}): {}", out.code, out.stderr);
    assert!(out.stderr.contains("table scratch of tenant acme is named by no profile"), "{}", out.stderr);
    out
}

/// Copies to the test zone twice and to a file, checks each, and that keys differ between copies.
fn copies_are_anonymized(p: &Passerelle) {
    let source = installation(p);
    let out = copy(p, &["--to", "lab"]);
    assert!(out.stdout.contains("table people: 20 rows copied"), "{}", out.stdout);
    let lab = Db::of(p, "lab");
    let first = check_copy(&source, &lab);
    assert_eq!(first.len(), PEOPLE as usize);

    // Orders still join their people.
    let joined =
        "SELECT count(*) AS n FROM orders o JOIN people p ON p.person_id = o.person_id AND p.email = o.contact";
    assert_eq!(lab.rows(joined)[0]["n"], Value::from(ORDERS));

    // Again: the tables are replaced, not appended to, with other replacements.
    copy(p, &["--to", "lab"]);
    let second = check_copy(&source, &lab);
    assert!(first.iter().all(|(k, v)| second[k] != *v), "a second copy uses another key");

    let file = p.scratch().join("copy.sqlite");
    copy(p, &["--to-file", file.to_str().unwrap()]);
    assert_eq!(mode(&file), 0o600);
    let third = check_copy(&source, &Db::Sqlite(file.clone()));
    assert!(first.iter().all(|(k, v)| third[k] != *v), "each copy has its own key");

    let audit: Value = p.run(&["audit", "--json"]).json();
    let copies: Vec<&Value> =
        audit.as_array().unwrap().iter().filter(|e| e["action"] == "tenant_copy_anonymized").collect();
    assert_eq!(copies.len(), 3, "{audit}");
    let detail = copies[2]["detail"].as_str().unwrap();
    assert!(detail.contains("\"rows\":30") && detail.contains(&*file.display().to_string()), "{detail}");
    assert!(!detail.contains("client-acme"), "the audit trail holds no value: {detail}");
    assert!(copies[2]["actor"].as_str().unwrap().starts_with("admin:"));
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn sqlite_tenant_copies_to_a_test_zone_and_a_file() {
    copies_are_anonymized(&Passerelle::new());
}

#[test]
fn postgres_tenant_copies_to_a_test_zone_and_a_file() {
    copies_are_anonymized(&Passerelle::with_postgres());
}

#[test]
fn copies_are_refused_from_test_zones_and_to_anything_else() {
    let p = Passerelle::new();
    installation(&p);
    p.ok(&["tenant", "add", "prod2"]);
    let list = p.ok(&["tenant", "list"]);
    assert!(list.lines().any(|l| l.starts_with("lab ") && l.trim_end().ends_with("test")), "{list}");
    let listed: Value = p.run(&["tenant", "list", "--json"]).json();
    assert_eq!(listed[1]["test_zone"], Value::Bool(true), "{listed}");

    let never = p.scratch().join("never.sqlite");
    let existing = p.scratch().join("existing.sqlite");
    std::fs::write(&existing, b"").unwrap();
    let cases: [(&[&str], &str); 5] = [
        (&["lab", "--to-file", never.to_str().unwrap()], "lab is a test zone"),
        (&["acme", "--to", "prod2"], "prod2 is not a test zone"),
        (&["acme", "--to", "acme"], "onto itself"),
        (&["acme", "--to-file", existing.to_str().unwrap()], "exists already"),
        (&["nobody", "--to", "lab"], "not found"),
    ];
    for (args, reason) in cases {
        let mut all = vec!["tenant", "copy-anonymized"];
        all.extend_from_slice(args);
        let out = p.run(&all);
        assert_eq!(out.code, 2, "{args:?} must be refused with exit 2: {out:?}");
        assert!(out.stderr.contains(reason), "{args:?}: {}", out.stderr);
        assert_eq!(out.stdout, "");
    }
    assert!(!never.exists(), "a refused copy creates no file");
    let out = p.run(&["tenant", "copy-anonymized", "acme"]);
    assert_eq!(out.code, 2, "a target is required: {out:?}");
    let out = p.run(&["tenant", "copy-anonymized", "prod2", "--to", "lab"]);
    assert_eq!(out.code, 2, "a tenant without profiles has nothing to copy: {out:?}");
    assert!(out.stderr.contains("no import profile"), "{}", out.stderr);
}
