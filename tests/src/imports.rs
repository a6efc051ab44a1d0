//! The import pipeline seen from a client: files uploaded to `/inbox` over
//! SFTP, receipts downloaded from `/outbox`, and the jobs `import list` shows.

use std::path::Path;
use std::time::Duration;

use crate::fixture::Fixture;
use crate::tools::sha256sum;
use crate::util::wait_for;

/// The import profile of the demo tenant (`serve --demo`): `employees/*.csv`,
/// upsert by `employee_id`, `;`/`,` detected, dates `%d/%m/%Y`, decimals with `,`.
pub const DEMO_PROFILE: &str = include_str!("../../server/src/demo-profile.toml");

/// How long an import job may take to reach its verdict in the tests.
pub const IMPORT_VERDICT: Duration = Duration::from_secs(60);

/// The longest file name (bytes) a receipt name may have, as the README says.
const NAME_MAX: usize = 255;
/// What a receipt's name adds to its file's name.
const RECEIPT_SUFFIX: &str = ".result.json";

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

    /// Uploads a local file to `/inbox/<path>` with `sftp -b` as `login`,
    /// expecting its profile to refuse it at its close (the verdict at the
    /// door): the batch fails, and its standard error names the file, says
    /// `rejected: ...` and gives the receipt's path. Returns standard error.
    pub fn upload_refused(&self, login: &str, local: &Path, path: &str) -> String {
        let out = self.sftp(login).sftp_batch(&format!("put {} /inbox/{path}\n", local.display()));
        assert!(!out.success(), "the upload of {path} was not refused at its close");
        let said = format!("/inbox/{path}: rejected: ");
        let receipt = format!("(receipt: /outbox/{})", self.receipt_path(path));
        assert!(out.stderr.contains(&said) && out.stderr.contains(&receipt), "{path}: {}", out.stderr);
        out.stderr
    }

    /// Waits (up to [`IMPORT_VERDICT`]) for the verdict of `/inbox/<path>`
    /// in the outbox of `login`'s tenant (a receipt whose status is not
    /// `received`), downloads it over SFTP as `login` would, then removes it
    /// from the outbox so that a later receipt for the same path can be
    /// waited for.
    pub fn receipt(&self, login: &str, path: &str) -> serde_json::Value {
        let receipt_path = self.receipt_path(path);
        let on_disk = self.outbox(self.tenant_of(login)).join(&receipt_path);
        wait_for(IMPORT_VERDICT, || self.verdict_on_disk(&on_disk).map(drop))
            .unwrap_or_else(|| panic!("no receipt for {path}; jobs: {}", self.p.ok(&["import", "list"])));
        let local = self.p.scratch().join(format!("receipt-{:08x}", rand::random::<u32>()));
        let out = self.sftp(login).sftp_batch(&format!("get /outbox/{receipt_path} {}\n", local.display()));
        assert!(out.success(), "download of the receipt of {path} failed: {}", out.stderr);
        let receipt =
            serde_json::from_slice(&std::fs::read(&local).expect("downloaded receipt")).expect("receipt JSON");
        std::fs::remove_file(on_disk).expect("remove the receipt");
        receipt
    }

    /// The receipt's path under `/outbox` for `/inbox/<path>`, by the README's
    /// rule: `<path>.result.json`, unless the name would exceed 255 bytes;
    /// then its first bytes (up to 226, cut on a character boundary), `~`,
    /// the first 16 hex digits of the name's SHA-256, and `.result.json`.
    pub fn receipt_path(&self, path: &str) -> String {
        let (folder, name) = path.rsplit_once('/').map_or(("", path), |(folder, name)| (folder, name));
        let receipt = if name.len() + RECEIPT_SUFFIX.len() <= NAME_MAX {
            format!("{name}{RECEIPT_SUFFIX}")
        } else {
            let named = self.p.scratch().join(format!("name-{:08x}", rand::random::<u32>()));
            std::fs::write(&named, name).expect("write the name to hash");
            let hash = sha256sum(&named);
            let mut cut = NAME_MAX - RECEIPT_SUFFIX.len() - 1 - 16;
            while !name.is_char_boundary(cut) {
                cut -= 1;
            }
            format!("{}~{}{RECEIPT_SUFFIX}", &name[..cut], &hash[..16])
        };
        if folder.is_empty() { receipt } else { format!("{folder}/{receipt}") }
    }

    /// The receipt at `on_disk` if it holds a verdict (not `received`).
    pub fn verdict_on_disk(&self, on_disk: &Path) -> Option<serde_json::Value> {
        let receipt: serde_json::Value = serde_json::from_slice(&std::fs::read(on_disk).ok()?).ok()?;
        (receipt["status"] != "received").then_some(receipt)
    }

    /// Every import job, as `import list --json` prints them.
    pub fn jobs(&self) -> Vec<serde_json::Value> {
        let out = self.p.ok(&["import", "list", "--json"]);
        serde_json::from_str::<serde_json::Value>(&out).expect("import list JSON").as_array().expect("array").clone()
    }
}
