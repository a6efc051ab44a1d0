//! The conformance scenario ([`ClientScript`]) as one list of operations for
//! the Python SFTP clients of `tests/python/` (paramiko's `sftp_client.py`,
//! asyncssh's `asyncssh_client.py`, which take the same plans), and the
//! checks of what such a client reported.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

use crate::conformance::{ClientScript, RECEIPT_POLL_MILLIS, RECEIPT_POLLS};
use crate::fixture::Fixture;

/// The longest a login may take: well under the time after which a client
/// gives up on an answer that never comes (paramiko's "Authentication
/// timeout": 10 s in these tests' plans, 30 s by default).
pub const LOGIN_BOUND: Duration = Duration::from_secs(5);

/// One client's run of the scenario: its operations, and where it leaves the
/// receipt it downloads.
#[derive(Clone, Debug)]
pub struct SftpScenario {
    /// The plan's `ops`: upload the CSV, wait for the receipt and read it,
    /// list its folder, download it, upload then remove the temporary.
    pub ops: Value,
    /// Where the client downloads the receipt.
    pub downloaded: PathBuf,
}

impl SftpScenario {
    /// The scenario of `script`, with its local files in `dir`.
    pub fn new(script: &ClientScript, dir: &Path) -> Self {
        let (csv, temporary) = script.local_files(dir);
        let downloaded = dir.join(script.receipt_name());
        let ops = json!([
            {"op": "put", "local": csv, "remote": script.upload_path()},
            {"op": "wait_read", "remote": script.receipt_path(),
             "polls": RECEIPT_POLLS, "poll_millis": RECEIPT_POLL_MILLIS},
            {"op": "listdir", "path": script.receipt_dir()},
            {"op": "get", "remote": script.receipt_path(), "local": downloaded},
            {"op": "put", "local": temporary, "remote": script.temporary_path()},
            {"op": "remove", "path": script.temporary_path()},
        ]);
        Self { ops, downloaded }
    }

    /// Checks a client's `report` of the scenario: logged in within
    /// [`LOGIN_BOUND`], every operation done, the receipt read, listed and
    /// downloaded, the temporary gone; then the server's side.
    pub fn check(&self, f: &Fixture, script: &ClientScript, report: &Value) {
        assert_eq!(report["auth"], "ok", "the client could not log in: {report}");
        let seconds = report["auth_seconds"].as_f64().unwrap_or_else(|| panic!("no auth_seconds: {report}"));
        assert!(seconds < LOGIN_BOUND.as_secs_f64(), "login took {seconds:.1} s: {report}");
        eprintln!("{}: logged in after {seconds:.2} s", script.file_name());
        let results = report["results"].as_array().unwrap_or_else(|| panic!("no results: {report}"));
        let steps = self.ops.as_array().map_or(0, Vec::len);
        assert_eq!(results.len(), steps, "the client stopped early: {report}");
        for result in results {
            assert_eq!(result["ok"], true, "{} failed: {result}", result["op"]);
        }
        let receipt = results[1]["value"]["text"].as_str().unwrap_or_else(|| panic!("no receipt: {}", results[1]));
        script.check_receipt(receipt.as_bytes());
        script.check_listing(&results[2]["value"].to_string());
        script.check_server(f, &self.downloaded);
    }
}
