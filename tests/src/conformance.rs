//! What every client's conformance test does, the way an integration script
//! would: connect, upload a CSV to `/inbox/employees/`, wait for its receipt
//! in `/outbox/employees/` and read it, list that folder, download the
//! receipt as a file, and upload then delete a temporary of its own
//! (`/inbox/<name>.tmp`: temporary names are never imported).
//!
//! A test drives one client through these steps with [`ClientScript`]'s
//! paths, then hands what the client saw to its checks. The installation is
//! [`conformance_setup`]'s: the default configuration, FTPS on, one tenant
//! `acme` with the demo profile and user `alice` (password and ed25519 key).

use std::path::{Path, PathBuf};

use crate::fixture::{Fixture, Setup};
use crate::imports::DEMO_PROFILE;

/// The tenant of the conformance tests.
pub const CONFORMANCE_TENANT: &str = "acme";
/// Its user.
pub const CONFORMANCE_LOGIN: &str = "alice";
/// The user's password.
pub const CONFORMANCE_PASSWORD: &str = "Quartz-Lantern-Velvet-93";

/// The file every client uploads: two rows the demo profile imports.
pub const CONFORMANCE_CSV: &str = "employee_id;email;hired_on;salary\n\
                                   1;ada@example.com;10/12/2025;4200,50\n\
                                   2;grace@example.com;01/02/2026;3900\n";

/// How many times a client polls for its receipt, and how long it waits
/// between two polls: a minute in all, as [`crate::IMPORT_VERDICT`].
pub const RECEIPT_POLLS: u32 = 120;
/// See [`RECEIPT_POLLS`].
pub const RECEIPT_POLL_MILLIS: u64 = 500;

/// The installation of a conformance test, before serving: more
/// configuration can be added (`envs`) before [`Setup::serve`].
pub fn conformance_setup() -> Setup {
    Setup::new()
        .user(CONFORMANCE_TENANT, CONFORMANCE_LOGIN, CONFORMANCE_PASSWORD)
        .profile(CONFORMANCE_TENANT, DEMO_PROFILE)
        .inbox_dirs(CONFORMANCE_TENANT, &["employees"])
        .ftps()
}

/// One client's run: the names it uses, unique to it.
#[derive(Clone, Debug)]
pub struct ClientScript {
    name: String,
}

impl ClientScript {
    /// The script of `client` (a short name, such as `paramiko-password`).
    pub fn new(client: &str) -> Self {
        Self { name: format!("{client}-{:08x}", rand::random::<u32>()) }
    }

    /// The CSV's base name on the server.
    pub fn file_name(&self) -> String {
        format!("{}.csv", self.name)
    }

    /// Where the CSV is uploaded: `/inbox/employees/<name>.csv`.
    pub fn upload_path(&self) -> String {
        format!("/inbox/employees/{}", self.file_name())
    }

    /// The folder of the receipt: `/outbox/employees`.
    pub fn receipt_dir(&self) -> &'static str {
        "/outbox/employees"
    }

    /// The receipt's base name: `<name>.csv.result.json`.
    pub fn receipt_name(&self) -> String {
        format!("{}.result.json", self.file_name())
    }

    /// The receipt's path.
    pub fn receipt_path(&self) -> String {
        format!("{}/{}", self.receipt_dir(), self.receipt_name())
    }

    /// The temporary the client uploads then deletes: `/inbox/<name>.tmp`.
    pub fn temporary_path(&self) -> String {
        format!("/inbox/{}.tmp", self.name)
    }

    /// Writes the CSV (and the temporary's content) into `dir`, under the
    /// names the client uploads; returns the CSV's and the temporary's paths.
    pub fn local_files(&self, dir: &Path) -> (PathBuf, PathBuf) {
        std::fs::create_dir_all(dir).expect("client scratch dir");
        let csv = dir.join(self.file_name());
        std::fs::write(&csv, CONFORMANCE_CSV).expect("write the CSV");
        let temporary = dir.join(format!("{}.tmp", self.name));
        std::fs::write(&temporary, b"work in progress\n").expect("write the temporary");
        (csv, temporary)
    }

    /// Checks the receipt the client read: the CSV imported, two rows.
    pub fn check_receipt(&self, receipt: &[u8]) {
        let text = String::from_utf8_lossy(receipt);
        let json: serde_json::Value =
            serde_json::from_slice(receipt).unwrap_or_else(|e| panic!("receipt is not JSON ({e}): {text}"));
        assert_eq!(json["file"], format!("employees/{}", self.file_name()), "{text}");
        assert_eq!(json["status"], "imported", "{text}");
        assert_eq!(json["rows"], 2, "{text}");
    }

    /// Checks a listing of [`Self::receipt_dir`] as the client printed or
    /// returned it: the receipt is in it.
    pub fn check_listing(&self, listing: &str) {
        assert!(listing.contains(&self.receipt_name()), "{} not listed: {listing}", self.receipt_name());
    }

    /// Checks the server's side once the client is done: the downloaded
    /// receipt (at `downloaded`) is the outbox's byte for byte, and the
    /// temporary is gone.
    pub fn check_server(&self, f: &Fixture, downloaded: &Path) {
        let outbox = f.outbox(CONFORMANCE_TENANT).join("employees").join(self.receipt_name());
        let on_server = std::fs::read(&outbox).expect("receipt in the outbox");
        let local = std::fs::read(downloaded).unwrap_or_else(|e| panic!("{}: {e}", downloaded.display()));
        assert_eq!(local, on_server, "the downloaded receipt differs from the outbox's");
        self.check_receipt(&local);
        let temporary = f.inbox(CONFORMANCE_TENANT).join(format!("{}.tmp", self.name));
        assert!(!temporary.exists(), "the client's temporary was not deleted");
    }
}
