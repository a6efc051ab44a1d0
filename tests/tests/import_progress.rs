//! A long import shows how far it is while it runs: `import list` and
//! `import show` (tables and JSON) give rows and bytes done so far, the rate
//! and an estimate; afterwards `/metrics` has counted its rows and bytes and
//! timed it.

use std::io::Write as _;
use std::time::Duration;

use passerelle_tests::{IMPORT_VERDICT, Outcome, Setup, bounded, run_command, wait_for};
use serde_json::Value;

const PASSWORD: &str = "Quartz-Lantern-Velvet-93";

/// Rows of the big file: enough for a debug build to load for several seconds.
const ROWS: u32 = 1_500_000;

/// The value of the sample `name{labels}` in a Prometheus exposition.
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

fn metrics(port: u16) -> String {
    let mut command = bounded("curl", 20);
    command.args(["-s", &format!("http://127.0.0.1:{port}/metrics")]);
    let out: Outcome = run_command(&mut command, b"");
    assert!(out.success(), "{}", out.stderr);
    out.stdout
}

#[test]
fn a_running_import_shows_its_progress_and_metrics_count_it() {
    let f = Setup::new()
        .user("acme", "alice", PASSWORD)
        .profile("acme", passerelle_tests::DEMO_PROFILE)
        .inbox_dirs("acme", &["employees"])
        .serve();
    let local = f.work("alice").join("big.csv");
    let mut text = std::io::BufWriter::new(std::fs::File::create(&local).unwrap());
    writeln!(text, "employee_id;email;hired_on;salary").unwrap();
    for id in 1..=ROWS {
        writeln!(text, "{id};employee{id}@example.com;{:02}/12/2025;{id},50", id % 28 + 1).unwrap();
    }
    drop(text);
    let size = std::fs::metadata(&local).unwrap().len();
    let out = f.sftp("alice").sftp_batch(&format!("put {} /inbox/employees/big.csv\n", local.display()));
    assert!(out.success(), "{}", out.stderr);

    // While it loads: figures that grow, a rate, an estimate.
    let running = wait_for(IMPORT_VERDICT, || {
        f.jobs().into_iter().find(|job| job["status"] == "loading" && job["progress"].is_object())
    })
    .unwrap_or_else(|| panic!("no progress seen; jobs: {}", f.p.ok(&["import", "list"])));
    let id = running["id"].as_str().unwrap().to_owned();
    let progress = &running["progress"];
    let rows = progress["rows"].as_i64().unwrap();
    let bytes = progress["bytes"].as_i64().unwrap();
    assert!(rows > 0 && rows < i64::from(ROWS), "{running:#}");
    assert!(bytes > 0 && bytes <= i64::try_from(size).unwrap(), "{running:#}");
    assert_eq!(progress["total_bytes"], size, "{running:#}");
    assert!(progress["rows_per_second"].as_f64().unwrap() > 0.0, "{running:#}");
    assert!(progress["bytes_per_second"].as_f64().unwrap() > 0.0, "{running:#}");
    for time in ["started_at", "at", "estimated_end"] {
        let text = progress[time].as_str().unwrap_or_else(|| panic!("{time}: {running:#}"));
        assert!(text.ends_with('Z') && text.len() == "2026-12-04T11:04:07.123Z".len(), "{time}: {text}");
    }
    // The table and `show` say the same in words.
    let listed = f.p.ok(&["import", "list"]);
    assert!(listed.contains("PROGRESS") && listed.contains("rows/s") && listed.contains("s left"), "{listed}");
    let shown = f.p.ok(&["import", "show", &id]);
    let line = shown.lines().find(|line| line.starts_with("progress:")).unwrap_or_else(|| panic!("{shown}"));
    assert!(line.contains("rows,") && line.contains(&format!("of {size} bytes")) && line.contains("rows/s"), "{line}");

    let receipt = f.receipt("alice", "employees/big.csv");
    assert_eq!(receipt["status"], "imported", "{receipt}");
    assert_eq!(receipt["rows"], ROWS);
    // Once ended, a job shows no progress, only its verdict.
    let shown: Value = serde_json::from_str(&f.p.ok(&["import", "show", &id, "--json"])).unwrap();
    assert_eq!(shown["progress"], Value::Null, "{shown:#}");

    let port = f.p.admin_port();
    let text = wait_for(Duration::from_secs(10), || {
        let text = metrics(port);
        sample(&text, r#"passerelle_import_job_duration_seconds_count{status="imported"}"#).map(|_| text)
    })
    .expect("the finished job is timed in /metrics");
    assert_eq!(sample(&text, "passerelle_import_rows_total"), Some(f64::from(ROWS)));
    assert_eq!(sample(&text, "passerelle_import_validated_bytes_total"), Some(size as f64));
    assert_eq!(sample(&text, r#"passerelle_import_receipt_latency_seconds_count{status="imported"}"#), Some(1.0));
    assert_eq!(sample(&text, r#"passerelle_import_job_duration_seconds_count{status="imported"}"#), Some(1.0));
}
