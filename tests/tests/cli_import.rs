//! `profile set/list/show` and `import list/show/retry` as an operator uses
//! them, on the default SQLite installation. Profiles are checked before they
//! are stored; a refused file exits 2 with one line naming the key and stores
//! nothing. Jobs are written straight into the catalog with `sqlite3`, so the
//! import verbs are tested on every status without a running server.

use std::path::PathBuf;

use passerelle_tests::{Outcome, Passerelle, audit_rows, sqlite3};
use serde_json::{Value, json};

/// Two profiles: the `employees` profile documented in the README's "Import
/// profiles" section, and a tab-separated append.
const PROFILES: &str = r#"# acme's imports
[[import]]
name = "employees"
match = "employees/*.csv"
table = "employees"
delimiter = ";"
encoding = "auto"
header = true
mode = "upsert"
key = ["employee_id"]
max_bytes = "1GiB"
columns = [
  { name = "employee_id", type = "integer", required = true },
  { name = "email", type = "email" },
  { name = "hired_on", type = "date", format = "%d/%m/%Y" },
  { name = "salary", type = "decimal", decimal_separator = "," },
]

[[import]]
name = "invoices"
match = "invoices/**/*.tsv"
table = "invoices"
delimiter = "\t"
encoding = "windows-1252"
mode = "append"
max_bytes = 5000
columns = [
  { name = "number", type = "text" },
  { name = "amount", type = "decimal" },
]
"#;

/// When the jobs of these tests arrived: 2026-11-18T11:06:40Z, then a minute apart.
const T0: i64 = 1_795_000_000_000;

fn catalog(p: &Passerelle) -> PathBuf {
    p.layout().catalog_db()
}

/// Tenants `acme` and `beta`, without profiles or jobs.
fn installation() -> Passerelle {
    let p = Passerelle::new();
    p.ok(&["tenant", "add", "acme"]);
    p.ok(&["tenant", "add", "beta"]);
    p
}

fn write(p: &Passerelle, name: &str, text: &str) -> String {
    let path = p.scratch().join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

fn json(p: &Passerelle, args: &[&str]) -> Value {
    let out = p.run(args);
    assert!(out.success(), "passerelle {args:?} failed ({}): {}", out.code, out.stderr);
    out.json()
}

/// A refusal: exit 2, nothing on standard output, one line on standard error mentioning `reason`.
fn assert_refused(out: &Outcome, reason: &str) {
    assert_eq!(out.code, 2, "must be refused with exit 2: {out:?}");
    assert_eq!(out.stdout, "", "a refusal prints nothing on standard output");
    let message = out.stderr.trim_end();
    assert_eq!(message.lines().count(), 1, "the reason is one line: {:?}", out.stderr);
    assert!(message.contains(reason), "the reason {message:?} should mention {reason:?}");
}

/// The stored profile files, tenant by tenant.
fn stored_profiles(p: &Passerelle) -> String {
    sqlite3(&catalog(p), "SELECT tenant, source FROM import_profiles ORDER BY tenant")
}

/// Records a job of `tenant` for `path` in `status`, received `minute` minutes
/// after [`T0`], with the fields the pipeline would have set by then.
fn insert_job(p: &Passerelle, id: &str, tenant: &str, path: &str, status: &str, minute: i64) {
    let received = T0 + minute * 60_000;
    let finished = received + 5_000;
    let (profile, rows, attempts, next_try, error, finished) = match status {
        "imported" => ("'employees'", "3", "0", "NULL", "NULL".to_owned(), finished.to_string()),
        "duplicate" => {
            ("'employees'", "NULL", "0", "NULL", format!("'same content as job {id}-first'"), finished.to_string())
        }
        "rejected" => (
            "'employees'",
            "NULL",
            "1",
            "NULL",
            "'line 17, column hired_on: expected date like 31/12/2026'".to_owned(),
            finished.to_string(),
        ),
        "waiting-retry" => (
            "'employees'",
            "NULL",
            "2",
            "4102444800000",
            "'tenant database unreachable: connection refused'".to_owned(),
            "NULL".to_owned(),
        ),
        _ => ("NULL", "NULL", "0", "NULL", "NULL".to_owned(), "NULL".to_owned()),
    };
    sqlite3(
        &catalog(p),
        &format!(
            "INSERT INTO import_jobs (id, tenant, path, sha256, bytes, profile, status, rows_loaded, attempts, \
             next_try_at, error, received_at, updated_at, finished_at) VALUES ('{id}', '{tenant}', '{path}', \
             '{sha}', 120, {profile}, '{status}', {rows}, {attempts}, {next_try}, {error}, {received}, {received}, \
             {finished})",
            sha = "ab".repeat(32),
        ),
    );
}

/// One job in each status, for `acme` (minutes 0 to 5) and one for `beta` (minute 6).
fn installation_with_jobs() -> Passerelle {
    let p = installation();
    for (minute, status) in
        ["imported", "rejected", "waiting-retry", "duplicate", "received", "loading"].iter().enumerate()
    {
        let minute = i64::try_from(minute).unwrap();
        insert_job(&p, &format!("job-{status}"), "acme", &format!("employees/{minute}.csv"), status, minute);
    }
    insert_job(&p, "job-beta", "beta", "invoices/1.tsv", "validating", 6);
    p
}

fn ids(jobs: &Value) -> Vec<&str> {
    jobs.as_array().expect("array").iter().map(|j| j["id"].as_str().expect("id")).collect()
}

fn now_ms() -> i64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    i64::try_from(since.as_millis()).unwrap()
}

#[test]
fn profile_set_from_a_file_stores_it_as_written_and_prints_a_summary() {
    let p = installation();
    let file = write(&p, "acme.toml", PROFILES);
    let summary = p.ok(&["profile", "set", "acme", &file]);
    let lines: Vec<Vec<&str>> = summary.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(
        lines,
        [
            vec!["PROFILE", "MATCH", "TABLE", "MODE"],
            vec!["employees", "employees/*.csv", "employees", "upsert"],
            vec!["invoices", "invoices/**/*.tsv", "invoices", "append"],
        ],
        "{summary}"
    );
    assert_eq!(p.ok(&["profile", "show", "acme"]), PROFILES, "show prints the file verbatim");
    assert_eq!(p.ok(&["profile", "show", "beta"]), "", "the other tenant has none");
    let event = audit_rows(&p).into_iter().rfind(|r| r.action == "profile_set").expect("profile_set audited");
    assert_eq!((event.outcome.as_str(), event.detail.as_str()), ("ok", "employees,invoices"));
}

#[test]
fn profile_set_reads_standard_input_and_replaces_the_previous_file() {
    let p = installation();
    p.ok(&["profile", "set", "acme", &write(&p, "acme.toml", PROFILES)]);
    let only_invoices = &PROFILES[PROFILES.rfind("[[import]]").unwrap()..];
    let out = p.run_with_stdin(&["profile", "set", "acme", "-"], only_invoices);
    assert!(out.success(), "{out:?}");
    assert!(out.stdout.contains("invoices") && !out.stdout.contains("employees"), "{}", out.stdout);
    assert_eq!(p.ok(&["profile", "show", "acme"]), only_invoices);

    // A file without any [[import]] is valid: the tenant imports nothing.
    let out = p.run_with_stdin(&["profile", "set", "acme", "-"], "# nothing imported for now\n");
    assert!(out.success(), "{out:?}");
    assert!(out.stdout.contains("no import profiles"), "{}", out.stdout);
    assert_eq!(json(&p, &["profile", "list", "acme", "--json"]), json!([]));
}

#[test]
fn profile_list_prints_every_setting_in_text_and_json() {
    let p = installation();
    p.ok(&["profile", "set", "acme", &write(&p, "acme.toml", PROFILES)]);
    assert_eq!(
        json(&p, &["profile", "list", "acme", "--json"]),
        json!([
            {"name": "employees", "match": "employees/*.csv", "table": "employees", "mode": "upsert",
             "key": ["employee_id"], "columns": 4, "delimiter": ";", "encoding": "auto", "header": true,
             "max_bytes": 1_073_741_824u64, "max_bytes_written": "1GiB", "reject_at_close": true},
            {"name": "invoices", "match": "invoices/**/*.tsv", "table": "invoices", "mode": "append",
             "key": [], "columns": 2, "delimiter": "\t", "encoding": "windows-1252", "header": true,
             "max_bytes": 5000, "max_bytes_written": "5000", "reject_at_close": true},
        ])
    );
    let text = p.ok(&["profile", "list", "acme"]);
    let lines: Vec<Vec<&str>> = text.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(
        lines,
        [
            vec![
                "PROFILE",
                "MATCH",
                "TABLE",
                "MODE",
                "KEY",
                "COLUMNS",
                "DELIMITER",
                "ENCODING",
                "HEADER",
                "MAX",
                "BYTES"
            ],
            vec!["employees", "employees/*.csv", "employees", "upsert", "employee_id", "4", ";", "auto", "yes", "1GiB"],
            vec!["invoices", "invoices/**/*.tsv", "invoices", "append", "-", "2", "\\t", "windows-1252", "yes", "5000"],
        ],
        "{text}"
    );
    // A tenant without profiles lists the header alone, as every other list does.
    let empty = p.ok(&["profile", "list", "beta"]);
    let empty: Vec<Vec<&str>> = empty.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(empty, lines[..1], "header only");
    assert_eq!(json(&p, &["profile", "list", "beta", "--json"]), json!([]));
}

#[test]
fn refused_profiles_name_the_key_and_store_nothing() {
    let p = installation();
    p.ok(&["profile", "set", "acme", &write(&p, "good.toml", PROFILES)]);
    let before = stored_profiles(&p);
    let cases = [
        ("unknown key", PROFILES.replace("header = true", "headers = true"), "headers"),
        ("bad glob", PROFILES.replace("employees/*.csv", "employees/[.csv"), "key match"),
        ("unknown type", PROFILES.replace("type = \"email\"", "type = \"mail\""), "columns[1].type"),
        ("not TOML", "[[import]\n".to_owned(), "line 1"),
    ];
    for (what, text, key) in cases {
        let file = write(&p, "bad.toml", &text);
        let out = p.run(&["profile", "set", "acme", &file]);
        assert_refused(&out, key);
        assert!(out.stderr.contains("bad.toml"), "{what}: the message names the file: {}", out.stderr);
        let out = p.run_with_stdin(&["profile", "set", "acme", "-"], &text);
        assert_refused(&out, key);
        assert_eq!(stored_profiles(&p), before, "{what}: refused, yet something was stored");
    }
    assert!(audit_rows(&p).iter().filter(|r| r.action == "profile_set").count() == 1, "only the good file audited");
}

#[test]
fn profile_verbs_refuse_unknown_tenants_large_files_and_missing_files() {
    let p = installation();
    let file = write(&p, "acme.toml", PROFILES);
    assert_refused(&p.run(&["profile", "set", "nobody", &file]), "tenant nobody not found");
    assert_refused(&p.run(&["profile", "list", "nobody"]), "tenant nobody not found");
    assert_refused(&p.run(&["profile", "show", "nobody"]), "tenant nobody not found");
    assert_refused(&p.run(&["profile", "set", "../acme", &file]), "tenant");
    let huge = format!("{PROFILES}{}", "# padding\n".repeat(110_000));
    assert_refused(&p.run(&["profile", "set", "acme", &write(&p, "huge.toml", &huge)]), "larger than 1 MiB");
    assert_refused(&p.run_with_stdin(&["profile", "set", "acme", "-"], &huge), "larger than 1 MiB");
    assert_refused(&p.run(&["profile", "set", "acme", "/nonexistent/acme.toml"]), "/nonexistent/acme.toml");
    assert_eq!(stored_profiles(&p), "");
}

#[test]
fn readme_example_profile_is_accepted() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let section = &readme[readme.find("### Import profiles").expect("README has an Import profiles section")..];
    let start = section.find("```toml\n").expect("a toml example") + "```toml\n".len();
    let example = &section[start..start + section[start..].find("```").unwrap()];
    let p = installation();
    let out = p.run_with_stdin(&["profile", "set", "acme", "-"], example);
    assert!(out.success(), "the README example is refused: {out:?}");
}

#[test]
fn import_list_filters_by_tenant_and_status_oldest_first() {
    let p = installation_with_jobs();
    let all = json(&p, &["import", "list", "--json"]);
    assert_eq!(
        ids(&all),
        [
            "job-imported",
            "job-rejected",
            "job-waiting-retry",
            "job-duplicate",
            "job-received",
            "job-loading",
            "job-beta"
        ]
    );
    let acme = json(&p, &["import", "list", "--tenant", "acme", "--json"]);
    assert_eq!(acme.as_array().unwrap().len(), 6);
    assert_eq!(ids(&json(&p, &["import", "list", "--status", "waiting-retry", "--json"])), ["job-waiting-retry"]);
    assert_eq!(ids(&json(&p, &["import", "list", "--tenant", "beta", "--status", "imported", "--json"])), [""; 0]);
    assert_eq!(ids(&json(&p, &["import", "list", "--limit", "2", "--json"])), ["job-loading", "job-beta"]);

    let first = &all[0];
    assert_eq!(first["status"], "imported");
    assert_eq!(first["rows_loaded"], 3);
    assert_eq!(first["received_at"], "2026-11-18T11:06:40.000Z");
    assert_eq!(first["finished_at"], "2026-11-18T11:06:45.000Z");

    let text = p.ok(&["import", "list", "--tenant", "acme", "--status", "rejected"]);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(
        header,
        ["ID", "TENANT", "PATH", "STATUS", "PROFILE", "ROWS", "PROGRESS", "ATTEMPTS", "RECEIVED", "ERROR"]
    );
    let row: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(
        row[..9],
        ["job-rejected", "acme", "employees/1.csv", "rejected", "employees", "-", "-", "1", "2026-11-18T11:07:40.000Z"]
    );
    assert!(lines[1].ends_with("line 17, column hired_on: expected date like 31/12/2026"), "{text}");
}

#[test]
fn import_list_refuses_unknown_statuses_and_tenants() {
    let p = installation_with_jobs();
    let out = p.run(&["import", "list", "--status", "done"]);
    assert_refused(&out, "--status \"done\"");
    for status in ["received", "validating", "loading", "waiting-retry", "imported", "rejected", "duplicate"] {
        assert!(out.stderr.contains(status), "the valid statuses are listed: {}", out.stderr);
    }
    assert_refused(&p.run(&["import", "list", "--tenant", "nobody"]), "tenant nobody not found");
    assert_eq!(p.run(&["import", "list", "--limit", "0"]).code, 2);
}

#[test]
fn import_show_prints_every_field_and_the_next_try_of_a_waiting_job() {
    let p = installation_with_jobs();
    let job = json(&p, &["import", "show", "job-waiting-retry", "--json"]);
    assert_eq!(
        job,
        json!({
            "id": "job-waiting-retry", "tenant": "acme", "path": "employees/2.csv", "status": "waiting-retry",
            "profile": "employees", "sha256": "ab".repeat(32), "bytes": 120, "rows_loaded": null, "attempts": 2,
            "next_try_at": "2100-01-01T00:00:00.000Z", "error": "tenant database unreachable: connection refused",
            "received_at": "2026-11-18T11:08:40.000Z", "updated_at": "2026-11-18T11:08:40.000Z", "finished_at": null,
            "progress": null,
        })
    );
    let text = p.ok(&["import", "show", "job-waiting-retry"]);
    for line in [
        "job:       job-waiting-retry",
        "status:    waiting-retry",
        "next try:  2100-01-01T00:00:00.000Z",
        "attempts:  2",
        "finished:  -",
        "error:     tenant database unreachable: connection refused",
    ] {
        assert!(text.lines().any(|l| l == line), "{line:?} missing from:\n{text}");
    }
    let imported = p.ok(&["import", "show", "job-imported"]);
    assert!(imported.contains("rows:      3") && !imported.contains("next try"), "{imported}");

    assert_refused(&p.run(&["import", "show", "no-such-job"]), "import job \"no-such-job\" not found");
    assert_refused(&p.run(&["import", "show", "no-such-job", "--json"]), "not found");
}

#[test]
fn import_retry_of_a_waiting_job_tries_it_now_and_keeps_its_attempts() {
    let p = installation_with_jobs();
    let before = now_ms();
    let out = p.ok(&["import", "retry", "job-waiting-retry"]);
    assert!(out.contains("job-waiting-retry") && out.contains("tried again now"), "{out}");
    let job = json(&p, &["import", "show", "job-waiting-retry", "--json"]);
    assert_eq!((job["status"].as_str(), job["attempts"].as_i64()), (Some("waiting-retry"), Some(2)));
    let next_try: i64 = sqlite3(&catalog(&p), "SELECT next_try_at FROM import_jobs WHERE id = 'job-waiting-retry'")
        .trim()
        .parse()
        .unwrap();
    assert!((before..=now_ms()).contains(&next_try), "next try {next_try} is not now");
    let event = audit_rows(&p).into_iter().rfind(|r| r.action == "import_retry").expect("import_retry audited");
    assert_eq!(event.detail, "job-waiting-retry employees/2.csv: was waiting-retry");
}

#[test]
fn import_retry_wait_gives_up_after_its_timeout_when_no_server_runs_the_job() {
    let p = installation_with_jobs();
    let out = p.run(&["import", "retry", "job-waiting-retry", "--wait", "--timeout", "1"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stdout.contains("is tried again now"), "{out:?}");
    assert!(
        out.stderr.contains("job job-waiting-retry is still waiting-retry after 1 s (is `passerelle serve` running?)"),
        "{out:?}"
    );
    let bare = p.run(&["import", "retry", "job-waiting-retry", "--timeout", "5"]);
    assert!(bare.code == 2 && bare.stderr.contains("--wait"), "--timeout alone is refused: {bare:?}");
}

#[test]
fn import_retry_of_a_rejected_job_starts_it_again() {
    let p = installation_with_jobs();
    let out = p.ok(&["import", "retry", "job-rejected"]);
    assert!(out.contains("runs again"), "{out}");
    let job = json(&p, &["import", "show", "job-rejected", "--json"]);
    for (field, value) in [
        ("status", json!("received")),
        // Attempts count every run: the retry's run will be the second.
        ("attempts", json!(1)),
        ("error", Value::Null),
        ("next_try_at", Value::Null),
        ("finished_at", Value::Null),
        ("rows_loaded", Value::Null),
        ("path", json!("employees/1.csv")),
        ("received_at", json!("2026-11-18T11:07:40.000Z")),
    ] {
        assert_eq!(job[field], value, "{field} in {job}");
    }
    assert!(audit_rows(&p).iter().any(|r| r.action == "import_retry" && r.detail.ends_with("was rejected")));
    // Now received, the job counts as running: a second retry is refused.
    assert_refused(&p.run(&["import", "retry", "job-rejected"]), "job job-rejected is running (received)");
}

#[test]
fn import_retry_refuses_finished_running_and_unknown_jobs_and_changes_nothing() {
    let p = installation_with_jobs();
    let jobs = || sqlite3(&catalog(&p), "SELECT * FROM import_jobs ORDER BY id");
    let before = jobs();
    for (id, reason) in [
        ("job-imported", "job job-imported is imported; nothing to retry"),
        ("job-duplicate", "job job-duplicate is duplicate; nothing to retry"),
        ("job-received", "job job-received is running (received)"),
        ("job-loading", "job job-loading is running (loading)"),
        ("job-beta", "job job-beta is running (validating)"),
        ("no-such-job", "import job \"no-such-job\" not found"),
    ] {
        assert_refused(&p.run(&["import", "retry", id]), reason);
    }
    assert_eq!(jobs(), before, "a refused retry changed a job");
    assert!(!audit_rows(&p).iter().any(|r| r.action == "import_retry"), "a refused retry was audited");
}

#[test]
fn import_cancel_ends_a_waiting_job_with_a_receipt_and_refuses_loading_and_finished_ones() {
    let p = installation_with_jobs();
    let out = p.ok(&["import", "cancel", "job-received"]);
    assert!(out.contains("job-received") && out.contains("cancelled"), "{out}");
    let job = json(&p, &["import", "show", "job-received", "--json"]);
    assert_eq!(job["status"], "rejected", "{job}");
    let error = job["error"].as_str().unwrap();
    assert!(error.starts_with("cancelled by an administrator (admin:"), "{error}");
    assert!(job["finished_at"].is_string(), "{job}");
    let receipt = p.layout().outbox("acme").join("employees/4.csv.result.json");
    let receipt: Value = serde_json::from_slice(&std::fs::read(&receipt).expect("the receipt")).unwrap();
    assert_eq!((receipt["status"].as_str(), receipt["import_id"].as_str()), (Some("rejected"), Some("job-received")));
    assert_eq!(receipt["errors"][0]["message"], error);
    let event = audit_rows(&p).into_iter().rfind(|r| r.action == "import_cancel").expect("import_cancel audited");
    assert_eq!(event.detail, "job-received employees/4.csv");

    let jobs = || sqlite3(&catalog(&p), "SELECT * FROM import_jobs ORDER BY id");
    let before = jobs();
    for (id, reason) in [
        ("job-loading", "job job-loading is loading: its rows are being written in one transaction"),
        ("job-imported", "job job-imported is imported; nothing to cancel"),
        ("job-received", "job job-received is rejected; nothing to cancel"),
        ("no-such-job", "import job \"no-such-job\" not found"),
    ] {
        assert_refused(&p.run(&["import", "cancel", id]), reason);
    }
    assert_eq!(jobs(), before, "a refused cancel changed a job");
    assert_eq!(audit_rows(&p).iter().filter(|r| r.action == "import_cancel").count(), 1);
}
