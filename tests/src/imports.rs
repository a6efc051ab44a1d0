//! The import pipeline seen from a client: files uploaded to `/inbox` over
//! SFTP, receipts downloaded from `/outbox`, and the jobs `import list` shows.

use std::path::Path;
use std::time::Duration;

use crate::fixture::Fixture;
use crate::util::wait_for;

/// The import profile of the demo tenant (`serve --demo`): `employees/*.csv`,
/// upsert by `employee_id`, `;`/`,` detected, dates `%d/%m/%Y`, decimals with `,`.
pub const DEMO_PROFILE: &str = include_str!("../../server/src/demo-profile.toml");

/// How long an import job may take to reach its verdict in the tests.
pub const IMPORT_VERDICT: Duration = Duration::from_secs(60);

impl Fixture {
    /// Uploads `content` as `/inbox/<path>` over SFTP, as user `login`.
    pub fn upload(&self, login: &str, path: &str, content: &[u8]) {
        let local = self.p.scratch().join(format!("upload-{:08x}", rand::random::<u32>()));
        std::fs::write(&local, content).expect("write the file to upload");
        self.upload_files(login, &[(local.as_path(), path)]);
    }

    /// Uploads local files, `(local file, path under /inbox)`, in order, in
    /// one `sftp -b` session of user `login`.
    pub fn upload_files(&self, login: &str, files: &[(&Path, &str)]) {
        let batch: String =
            files.iter().map(|(local, path)| format!("put {} /inbox/{path}\n", local.display())).collect();
        let out = self.sftp(login).sftp_batch(&batch);
        assert!(out.success(), "upload of {files:?} failed: {}", out.stderr);
    }

    /// Waits (up to [`IMPORT_VERDICT`]) for the receipt of `/inbox/<path>` in
    /// the outbox of `login`'s tenant, downloads it over SFTP as `login`
    /// would, then removes it from the outbox so that a later receipt for the
    /// same path can be waited for.
    pub fn receipt(&self, login: &str, path: &str) -> serde_json::Value {
        let on_disk = self.outbox(self.tenant_of(login)).join(format!("{path}.result.json"));
        wait_for(IMPORT_VERDICT, || on_disk.exists().then_some(()))
            .unwrap_or_else(|| panic!("no receipt for {path}; jobs: {}", self.p.ok(&["import", "list"])));
        let local = self.p.scratch().join(format!("receipt-{:08x}", rand::random::<u32>()));
        let out = self.sftp(login).sftp_batch(&format!("get /outbox/{path}.result.json {}\n", local.display()));
        assert!(out.success(), "download of the receipt of {path} failed: {}", out.stderr);
        let receipt =
            serde_json::from_slice(&std::fs::read(&local).expect("downloaded receipt")).expect("receipt JSON");
        std::fs::remove_file(on_disk).expect("remove the receipt");
        receipt
    }

    /// Every import job, as `import list --json` prints them.
    pub fn jobs(&self) -> Vec<serde_json::Value> {
        let out = self.p.ok(&["import", "list", "--json"]);
        serde_json::from_str::<serde_json::Value>(&out).expect("import list JSON").as_array().expect("array").clone()
    }
}
