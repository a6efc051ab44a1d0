//! Behaviour of the tenant filesystem against real directories: hostile
//! paths, planted symlinks, area rules and atomic uploads.

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, UNIX_EPOCH};

use bytes::Bytes;

use super::digest::sha256_of;
use super::error::WriteRefused;
use super::upload::{Commit, CommittedUpload};
use super::*;

/// A scratch directory holding two sibling tenant roots and a secret outside
/// both; removed on drop.
struct Fixture {
    base: PathBuf,
    fs: TenantFs,
}

const SECRET: &[u8] = b"top secret, outside every tenant";

impl Fixture {
    fn new() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let base = std::env::temp_dir().join(format!(
            "passerelle-fs-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&base);
        for dir in
            ["outside", "tenants/acme/inbox", "tenants/acme/outbox", "tenants/other/inbox", "tenants/other/outbox"]
        {
            std::fs::create_dir_all(base.join(dir)).unwrap();
        }
        std::fs::write(base.join("outside/secret.txt"), SECRET).unwrap();
        std::fs::write(base.join("tenants/other/inbox/x"), b"other tenant's file").unwrap();
        std::fs::write(base.join("tenants/acme/outbox/receipt.json"), b"{}").unwrap();
        std::fs::write(base.join("tenants/acme/notes.txt"), b"kept by the server").unwrap();
        let fs = TenantFs::open(&base.join("tenants/acme")).unwrap();
        Self { base, fs }
    }

    fn root(&self) -> PathBuf {
        self.base.join("tenants/acme")
    }

    fn outside(&self) -> PathBuf {
        self.base.join("outside")
    }

    fn path(&self, raw: &str) -> TenantPath {
        self.fs.resolve(&TenantPath::root(), raw.as_bytes()).unwrap()
    }

    /// Names in a directory on disk, for checking that nothing appeared.
    fn disk_names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> =
            std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        names.sort();
        names
    }

    fn outside_untouched(&self) {
        assert_eq!(Self::disk_names(&self.outside()), ["secret.txt"]);
        assert_eq!(std::fs::read(self.outside().join("secret.txt")).unwrap(), SECRET);
    }

    async fn upload(&self, raw: &str, data: &[u8]) -> Result<CommittedUpload, FsError> {
        let upload = self.fs.create_upload(&self.path(raw), false, &bounds()).await?;
        upload.write_at(0, Bytes::copy_from_slice(data)).await?;
        upload.commit().await.map(Commit::published)
    }
}

/// The configuration's default upload bounds: 4 GiB per file, 64 MiB held back.
fn bounds() -> UploadBounds {
    UploadBounds::new(passerelle_config::ByteSize::new(4 << 30), passerelle_config::ByteSize::new(64 << 20))
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.base);
    }
}

macro_rules! assert_err {
    ($result:expr, $pattern:pat) => {
        match $result {
            Err($pattern) => {}
            Err(other) => panic!("expected {}, got error {other:?}", stringify!($pattern)),
            Ok(_) => panic!("expected {}, got success", stringify!($pattern)),
        }
    };
}

#[tokio::test]
async fn types_can_be_shared_across_tasks() {
    fn shared<T: Send + Sync>() {}
    fn cloneable<T: Clone + Send + Sync>() {}
    cloneable::<TenantFs>();
    shared::<FileReader>();
    shared::<Upload>();
    shared::<TenantPath>();
}

#[tokio::test]
async fn hostile_paths_stay_inside_the_tenant() {
    let fx = Fixture::new();
    let fs = &fx.fs;
    let root = TenantPath::root();
    for raw in
        ["../", "/../../etc/passwd", "inbox/../../x", "/inbox/../../../etc", "/etc/passwd", "/../outside/secret.txt"]
    {
        let path = fs.resolve(&root, raw.as_bytes()).unwrap();
        assert!(path.is_root() || path.area() == Area::Root, "{raw} resolved to {path}");
        if !path.is_root() {
            assert_err!(fs.stat(&path).await, FsError::NotFound);
            assert_err!(fs.open_read(&path).await, FsError::NotFound);
            assert_err!(fs.read_dir(&path).await, FsError::NotFound);
            assert_err!(fs.create_upload(&path, false, &bounds()).await, FsError::PermissionDenied);
        }
    }
    // The tenant root on disk holds more than the client may see.
    assert_err!(fs.stat(&fx.path("/notes.txt")).await, FsError::NotFound);
    assert_err!(fs.open_read(&fx.path("/notes.txt")).await, FsError::NotFound);

    for raw in [&b"/inbox/a\0b"[..], b"/inbox/\xff.csv", b"/inbox/a\nb", b"/inbox/\x1b[2J", b"/inbox/a\x7f"] {
        assert_err!(fs.resolve(&root, raw), FsError::InvalidPath(_));
    }
    assert_err!(fs.resolve(&root, "x".repeat(4096).as_bytes()), FsError::InvalidPath(_));
    assert_err!(fs.resolve(&root, format!("/inbox/{}", "y".repeat(300)).as_bytes()), FsError::InvalidPath(_));

    // Look-alikes are ordinary, unknown names.
    assert_err!(fs.stat(&fx.path("/ｉｎｂｏｘ/a")).await, FsError::NotFound);
    let slash_lookalike = fx.path("/inbox/..∕x");
    assert_eq!(slash_lookalike.parent().to_client_string(), "/inbox");
    fx.upload("/inbox/..∕x", b"harmless").await.unwrap();
    assert!(fx.root().join("inbox/..∕x").is_file());
    fx.outside_untouched();
}

#[tokio::test]
async fn sibling_tenants_cannot_see_each_other() {
    let fx = Fixture::new();
    let path = fx.path("/../other/inbox/x");
    assert_eq!(path.to_client_string(), "/other/inbox/x");
    assert_err!(fx.fs.stat(&path).await, FsError::NotFound);
    assert_err!(fx.fs.open_read(&path).await, FsError::NotFound);
    assert_err!(fx.fs.stat(&fx.path("/inbox/x")).await, FsError::NotFound);
    let other = TenantFs::open(&fx.base.join("tenants/other")).unwrap();
    assert_eq!(other.stat(&fx.path("/inbox/x")).await.unwrap().size, 19);
}

#[tokio::test]
async fn symlink_to_a_file_outside_is_never_followed() {
    let fx = Fixture::new();
    symlink(fx.outside().join("secret.txt"), fx.root().join("inbox/link")).unwrap();
    let link = fx.path("/inbox/link");
    assert_err!(fx.fs.stat(&link).await, FsError::PermissionDenied);
    assert_err!(fx.fs.open_read(&link).await, FsError::PermissionDenied);
    assert_err!(fx.fs.create_upload(&link, false, &bounds()).await, FsError::PermissionDenied);
    assert_err!(fx.fs.create_upload(&link, true, &bounds()).await, FsError::PermissionDenied);
    assert_err!(fx.fs.set_times(&link, UNIX_EPOCH, UNIX_EPOCH).await, FsError::PermissionDenied);
    assert_err!(fx.fs.remove_file(&link).await, FsError::PermissionDenied);
    assert_err!(fx.fs.rename(&link, &fx.path("/inbox/moved")).await, FsError::PermissionDenied);
    assert_err!(fx.fs.read_dir(&link).await, FsError::PermissionDenied);
    let listing = fx.fs.read_dir(&fx.path("/inbox")).await.unwrap();
    assert!(listing.is_empty(), "symlinks are not listed: {listing:?}");
    fx.outside_untouched();
    let secret_meta = std::fs::metadata(fx.outside().join("secret.txt")).unwrap();
    assert_ne!(secret_meta.modified().unwrap(), UNIX_EPOCH);
}

#[tokio::test]
async fn symlink_to_a_directory_outside_is_never_followed() {
    let fx = Fixture::new();
    symlink(fx.outside(), fx.root().join("inbox/evil")).unwrap();
    assert_err!(fx.fs.create_upload(&fx.path("/inbox/evil/x"), false, &bounds()).await, FsError::PermissionDenied);
    assert_err!(fx.fs.mkdir(&fx.path("/inbox/evil/d")).await, FsError::PermissionDenied);
    assert_err!(fx.fs.read_dir(&fx.path("/inbox/evil")).await, FsError::PermissionDenied);
    assert_err!(fx.fs.stat(&fx.path("/inbox/evil/secret.txt")).await, FsError::PermissionDenied);
    assert_err!(fx.fs.open_read(&fx.path("/inbox/evil/secret.txt")).await, FsError::PermissionDenied);
    assert_err!(fx.fs.remove_file(&fx.path("/inbox/evil/secret.txt")).await, FsError::PermissionDenied);
    assert_err!(
        fx.fs.rename(&fx.path("/inbox/evil/secret.txt"), &fx.path("/inbox/stolen")).await,
        FsError::PermissionDenied
    );
    assert_err!(fx.fs.rmdir(&fx.path("/inbox/evil")).await, FsError::PermissionDenied);
    fx.outside_untouched();
    assert!(std::fs::symlink_metadata(fx.root().join("inbox/evil")).unwrap().is_symlink());
}

#[tokio::test]
async fn symlinks_pointing_inside_are_refused_too() {
    let fx = Fixture::new();
    std::fs::create_dir(fx.root().join("inbox/real")).unwrap();
    std::fs::write(fx.root().join("inbox/real/data.csv"), b"a;b").unwrap();
    symlink("real", fx.root().join("inbox/alias")).unwrap();
    symlink("real/data.csv", fx.root().join("inbox/data-link.csv")).unwrap();
    symlink(fx.root().join("outbox"), fx.root().join("inbox/to-outbox")).unwrap();
    assert_err!(fx.fs.stat(&fx.path("/inbox/alias/data.csv")).await, FsError::PermissionDenied);
    assert_err!(fx.fs.open_read(&fx.path("/inbox/data-link.csv")).await, FsError::PermissionDenied);
    assert_err!(fx.fs.create_upload(&fx.path("/inbox/to-outbox/x"), false, &bounds()).await, FsError::PermissionDenied);
    let names: Vec<String> = fx.fs.read_dir(&fx.path("/inbox")).await.unwrap().into_iter().map(|e| e.0).collect();
    assert_eq!(names, ["real"]);
    assert!(fx.fs.open_read(&fx.path("/inbox/real/data.csv")).await.is_ok());
    assert!(!fx.root().join("outbox/x").exists());
}

#[tokio::test]
async fn writes_outside_the_inbox_are_refused() {
    let fx = Fixture::new();
    std::fs::write(fx.root().join("inbox/mine.csv"), b"1").unwrap();
    for raw in ["/x", "/inbox", "/outbox", "/outbox/x", "/outbox/receipt.json"] {
        let path = fx.path(raw);
        assert_err!(fx.fs.create_upload(&path, false, &bounds()).await, FsError::PermissionDenied);
        assert_err!(fx.fs.mkdir(&path).await, FsError::PermissionDenied);
        assert_err!(fx.fs.rmdir(&path).await, FsError::PermissionDenied);
        assert_err!(fx.fs.remove_file(&path).await, FsError::PermissionDenied);
        assert_err!(fx.fs.set_times(&path, UNIX_EPOCH, UNIX_EPOCH).await, FsError::PermissionDenied);
    }
    let mine = fx.path("/inbox/mine.csv");
    assert_err!(fx.fs.rename(&mine, &fx.path("/outbox/mine.csv")).await, FsError::PermissionDenied);
    assert_err!(fx.fs.rename(&fx.path("/outbox/receipt.json"), &mine).await, FsError::PermissionDenied);
    assert_err!(fx.fs.rename(&mine, &fx.path("/mine.csv")).await, FsError::PermissionDenied);
    assert_err!(fx.fs.rename(&fx.path("/inbox"), &fx.path("/inbox2")).await, FsError::PermissionDenied);
    assert_eq!(Fixture::disk_names(&fx.root().join("outbox")), ["receipt.json"]);
    // Reading the outbox is fine.
    let reader = fx.fs.open_read(&fx.path("/outbox/receipt.json")).await.unwrap();
    assert_eq!(reader.read_at(0, 100).await.unwrap(), b"{}");
}

#[tokio::test]
async fn receipts_in_the_outbox_may_be_deleted_and_nothing_else_there() {
    let fx = Fixture::new();
    std::fs::create_dir_all(fx.root().join("outbox/employees/old.result.json")).unwrap();
    std::fs::write(fx.root().join("outbox/employees/a.csv.result.json"), b"{}").unwrap();
    let receipt = fx.path("/outbox/employees/a.csv.result.json");
    assert_err!(fx.fs.set_times(&receipt, UNIX_EPOCH, UNIX_EPOCH).await, FsError::PermissionDenied);
    assert_err!(fx.fs.create_upload(&receipt, false, &bounds()).await, FsError::PermissionDenied);
    assert_err!(
        fx.fs.rename(&receipt, &fx.path("/outbox/employees/b.csv.result.json")).await,
        FsError::PermissionDenied
    );
    fx.fs.remove_file(&receipt).await.unwrap();
    assert_err!(fx.fs.remove_file(&receipt).await, FsError::NotFound);
    // A directory named like a receipt, and the folders, stay.
    assert_err!(fx.fs.remove_file(&fx.path("/outbox/employees/old.result.json")).await, FsError::IsADirectory);
    assert_err!(fx.fs.rmdir(&fx.path("/outbox/employees/old.result.json")).await, FsError::PermissionDenied);
    assert_err!(fx.fs.rmdir(&fx.path("/outbox/employees")).await, FsError::PermissionDenied);
    assert_err!(fx.fs.remove_file(&fx.path("/outbox/.result.json")).await, FsError::NotFound);
}

#[tokio::test]
async fn listings_and_stats() {
    let fx = Fixture::new();
    let root: Vec<String> = fx.fs.read_dir(&TenantPath::root()).await.unwrap().into_iter().map(|e| e.0).collect();
    assert_eq!(root, ["inbox", "outbox"]);
    assert!(fx.fs.stat(&TenantPath::root()).await.unwrap().is_dir);
    let receipt = fx.fs.stat(&fx.path("/outbox/receipt.json")).await.unwrap();
    assert_eq!(receipt.size, 2);
    assert!(!receipt.is_dir);
    assert_err!(fx.fs.read_dir(&fx.path("/outbox/receipt.json")).await, FsError::NotADirectory);
    assert_err!(fx.fs.open_read(&fx.path("/inbox")).await, FsError::IsADirectory);
    assert_err!(fx.fs.open_read(&TenantPath::root()).await, FsError::IsADirectory);
    assert_err!(fx.fs.stat(&fx.path("/inbox/missing")).await, FsError::NotFound);
    let stats = fx.fs.statvfs(&fx.path("/inbox")).await.unwrap();
    assert!(stats.block_size > 0 && stats.blocks > 0 && stats.name_max <= 255);
    assert_err!(fx.fs.statvfs(&fx.path("/inbox/missing")).await, FsError::NotFound);
}

#[tokio::test]
async fn directories_rename_and_times() {
    let fx = Fixture::new();
    let dir = fx.path("/inbox/employees");
    fx.fs.mkdir(&dir).await.unwrap();
    assert_err!(fx.fs.mkdir(&dir).await, FsError::AlreadyExists);
    assert_err!(fx.fs.mkdir(&fx.path("/inbox/missing/sub")).await, FsError::NotFound);
    fx.upload("/inbox/employees/a.csv", b"id\n1\n").await.unwrap();
    assert_err!(fx.fs.rmdir(&dir).await, FsError::DirectoryNotEmpty);
    assert_err!(fx.fs.remove_file(&dir).await, FsError::IsADirectory);
    assert_err!(fx.fs.rmdir(&fx.path("/inbox/employees/a.csv")).await, FsError::NotADirectory);
    assert_err!(fx.fs.rename(&dir, &fx.path("/inbox/employees/sub")).await, FsError::InvalidPath(_));

    // Rename replaces an existing file.
    fx.upload("/inbox/b.csv", b"old").await.unwrap();
    fx.fs.rename(&fx.path("/inbox/employees/a.csv"), &fx.path("/inbox/b.csv")).await.unwrap();
    assert_eq!(std::fs::read(fx.root().join("inbox/b.csv")).unwrap(), b"id\n1\n");
    assert_err!(fx.fs.stat(&fx.path("/inbox/employees/a.csv")).await, FsError::NotFound);
    assert_err!(fx.fs.rename(&fx.path("/inbox/nothing"), &fx.path("/inbox/c")).await, FsError::NotFound);

    let when = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    fx.fs.set_times(&fx.path("/inbox/b.csv"), when, when).await.unwrap();
    let stat = fx.fs.stat(&fx.path("/inbox/b.csv")).await.unwrap();
    assert_eq!((stat.modified, stat.accessed), (when, when));

    fx.fs.rmdir(&dir).await.unwrap();
    fx.fs.remove_file(&fx.path("/inbox/b.csv")).await.unwrap();
    assert!(Fixture::disk_names(&fx.root().join("inbox")).is_empty());
}

#[tokio::test]
async fn reads_are_positional_and_capped() {
    let fx = Fixture::new();
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(fx.root().join("outbox/big.bin"), &data).unwrap();
    let reader = fx.fs.open_read(&fx.path("/outbox/big.bin")).await.unwrap();
    assert_eq!(reader.read_at(10, 5).await.unwrap(), &data[10..15]);
    assert_eq!(reader.read_at(0, u32::MAX).await.unwrap().len(), 256 * 1024);
    assert_eq!(reader.read_at(299_990, 100).await.unwrap(), &data[299_990..]);
    assert!(reader.read_at(300_000, 100).await.unwrap().is_empty());
    assert!(reader.read_at(u64::MAX, 100).await.unwrap().is_empty());
    assert_eq!(reader.stat().await.unwrap().size, 300_000);
}

#[tokio::test]
async fn a_small_file_reads_as_it_was_when_opened() {
    let fx = Fixture::new();
    let small: Vec<u8> = (0..32 * 1024u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(fx.root().join("outbox/small.bin"), &small).unwrap();
    let reader = fx.fs.open_read(&fx.path("/outbox/small.bin")).await.unwrap();
    // Another program rewrites the file in place after the client opened it.
    std::fs::write(fx.root().join("outbox/small.bin"), b"changed").unwrap();
    assert_eq!(reader.read_at(0, 100).await.unwrap(), &small[..100]);
    assert_eq!(reader.read_at(32 * 1024 - 10, 100).await.unwrap(), &small[32 * 1024 - 10..]);
    assert!(reader.read_at(32 * 1024, 100).await.unwrap().is_empty());
    assert!(reader.read_at(u64::MAX, 100).await.unwrap().is_empty());
}

#[tokio::test]
async fn out_of_order_upload_digest_matches_the_file() {
    let fx = Fixture::new();
    let data: Vec<u8> = (0..200_000u32).flat_map(|i| i.to_be_bytes()).collect();
    let upload = Arc::new(fx.fs.create_upload(&fx.path("/inbox/data.bin"), true, &bounds()).await.unwrap());
    let chunk = 32 * 1024;
    let mut order: Vec<usize> = (0..data.len().div_ceil(chunk)).collect();
    // Deliver each group of eight pieces backwards, all concurrently.
    for group in order.chunks_mut(8) {
        group.reverse();
    }
    let mut tasks = Vec::new();
    for index in order {
        let upload = Arc::clone(&upload);
        let piece = data[index * chunk..((index + 1) * chunk).min(data.len())].to_vec();
        tasks.push(tokio::spawn(async move { upload.write_at((index * chunk) as u64, Bytes::from(piece)).await }));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert!(upload.is_streaming_digest());
    assert_eq!(upload.stat().await.unwrap().size, data.len() as u64);
    let upload = Arc::into_inner(upload).unwrap();
    let done = upload.commit().await.map(Commit::published).unwrap();
    assert_eq!(done.size, data.len() as u64);
    assert_eq!(done.path.to_client_string(), "/inbox/data.bin");
    let on_disk = std::fs::read(fx.root().join("inbox/data.bin")).unwrap();
    assert_eq!(on_disk, data);
    assert_eq!(done.sha256, sha256_of(&on_disk));
    assert_eq!(Fixture::disk_names(&fx.root().join("inbox")), ["data.bin"]);
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(fx.root().join("inbox/data.bin")).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
}

#[tokio::test]
async fn rewritten_upload_is_rehashed_from_disk() {
    let fx = Fixture::new();
    let upload = fx.fs.create_upload(&fx.path("/inbox/r.txt"), false, &bounds()).await.unwrap();
    upload.write_at(0, Bytes::from_static(b"hello world")).await.unwrap();
    upload.write_at(0, Bytes::from_static(b"HELLO")).await.unwrap();
    upload.write_at(20, Bytes::from_static(b"!")).await.unwrap();
    assert!(!upload.is_streaming_digest());
    upload.sync().await.unwrap();
    let done = upload.commit().await.map(Commit::published).unwrap();
    let expected = b"HELLO world\0\0\0\0\0\0\0\0\0!";
    assert_eq!(std::fs::read(fx.root().join("inbox/r.txt")).unwrap(), expected);
    assert_eq!(done.sha256, sha256_of(expected));
    assert_eq!(done.size, 21);
}

#[tokio::test]
async fn uploads_committed_without_a_flush_are_sealed() {
    let fx = Fixture::new();
    let fs = fx.fs.clone().with_durable_commits(false);
    // A small file whose digest streamed in commits in place...
    let upload = fs.create_upload(&fx.path("/inbox/small.csv"), false, &bounds()).await.unwrap();
    upload.write_at(0, Bytes::from_static(b"id;name\n1;Ada\n")).await.unwrap();
    let small = upload.commit().await.map(Commit::published).unwrap();
    // ...a larger, rewritten one is re-read for its digest on the blocking pool.
    let upload = fs.create_upload(&fx.path("/inbox/large.bin"), false, &bounds()).await.unwrap();
    upload.write_at(0, vec![7; 100_000].into()).await.unwrap();
    upload.write_at(0, Bytes::from_static(b"X")).await.unwrap();
    let large = upload.commit().await.map(Commit::published).unwrap();
    for (name, done) in [("small.csv", small), ("large.bin", large)] {
        let path = fx.root().join("inbox").join(name);
        assert_eq!(done.sha256, sha256_of(&std::fs::read(&path).unwrap()), "{name}");
        let mut seal = [0; 64];
        let len = rustix::fs::getxattr(&path, "user.passerelle.sha256", &mut seal).unwrap();
        let hex: String = done.sha256.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(&seal[..len], hex.as_bytes(), "{name}");
    }
    assert_eq!(Fixture::disk_names(&fx.root().join("inbox")), ["large.bin", "small.csv"]);
}

#[tokio::test]
async fn abort_and_drop_leave_nothing() {
    let fx = Fixture::new();
    let upload = fx.fs.create_upload(&fx.path("/inbox/a.csv"), false, &bounds()).await.unwrap();
    upload.write_at(0, Bytes::from_static(b"partial")).await.unwrap();
    assert_eq!(Fixture::disk_names(&fx.root().join("inbox")).len(), 1, "the temporary exists");
    assert!(fx.fs.read_dir(&fx.path("/inbox")).await.unwrap().is_empty(), "but is not listed");
    upload.abort().await;
    assert!(Fixture::disk_names(&fx.root().join("inbox")).is_empty());

    let upload = fx.fs.create_upload(&fx.path("/inbox/b.csv"), false, &bounds()).await.unwrap();
    upload.write_at(0, Bytes::from_static(b"partial")).await.unwrap();
    drop(upload);
    assert!(Fixture::disk_names(&fx.root().join("inbox")).is_empty());
}

#[tokio::test]
async fn a_failed_write_ends_the_upload_at_once() {
    let fx = Fixture::new();
    let inbox = fx.root().join("inbox");
    let upload = fx.fs.create_upload(&fx.path("/inbox/full.csv"), false, &bounds()).await.unwrap();
    upload.write_at(0, Bytes::from(vec![7; 100_000])).await.unwrap();
    let low = passerelle_tree::LowSpace { free: 1 << 20, reserve: 8 << 20 };
    let refused = upload.fail(FsError::LowSpace(low));
    // Gone while the client still holds its handle: the space is back now.
    assert!(Fixture::disk_names(&inbox).is_empty(), "the temporary went with the refused write");
    assert_eq!(upload.failure().as_deref(), Some(refused.to_string().as_str()));
    let later = upload.write_at(100_000, Bytes::from_static(b"more")).await.unwrap_err();
    assert!(matches!(later, FsError::LowSpace(l) if l == low), "{later}");
    let commit = upload.commit().await.map(Commit::published).unwrap_err();
    assert!(matches!(commit, FsError::LowSpace(_)), "{commit}");
    assert!(Fixture::disk_names(&inbox).is_empty(), "nothing published");
}

#[tokio::test]
async fn readers_never_see_a_partial_upload() {
    let fx = Fixture::new();
    let target = fx.path("/inbox/final.csv");
    let upload = fx.fs.create_upload(&target, false, &bounds()).await.unwrap();
    let fs = fx.fs.clone();
    let watched = target.clone();
    let watcher = tokio::spawn(async move {
        // Until the commit, the name is absent; after it, the file is whole.
        loop {
            match fs.stat(&watched).await {
                Err(FsError::NotFound) => tokio::task::yield_now().await,
                Ok(stat) => return stat.size,
                Err(err) => panic!("{err}"),
            }
        }
    });
    let piece = vec![b'x'; 64 * 1024];
    for i in 0..16u64 {
        upload.write_at(i * piece.len() as u64, Bytes::copy_from_slice(&piece)).await.unwrap();
        assert_err!(fx.fs.stat(&target).await, FsError::NotFound);
    }
    upload.commit().await.map(Commit::published).unwrap();
    assert_eq!(watcher.await.unwrap(), 16 * 64 * 1024);
}

#[tokio::test]
async fn exclusive_upload_never_replaces() {
    let fx = Fixture::new();
    fx.upload("/inbox/a.csv", b"first").await.unwrap();
    assert_err!(fx.fs.create_upload(&fx.path("/inbox/a.csv"), true, &bounds()).await, FsError::AlreadyExists);

    // The target appearing while the upload runs is caught at commit.
    let upload = fx.fs.create_upload(&fx.path("/inbox/b.csv"), true, &bounds()).await.unwrap();
    upload.write_at(0, Bytes::from_static(b"mine")).await.unwrap();
    fx.upload("/inbox/b.csv", b"theirs").await.unwrap();
    assert_err!(upload.commit().await.map(Commit::published), FsError::AlreadyExists);
    assert_eq!(std::fs::read(fx.root().join("inbox/b.csv")).unwrap(), b"theirs");
    assert_eq!(Fixture::disk_names(&fx.root().join("inbox")), ["a.csv", "b.csv"]);

    // A non-exclusive upload replaces.
    fx.upload("/inbox/a.csv", b"second").await.unwrap();
    assert_eq!(std::fs::read(fx.root().join("inbox/a.csv")).unwrap(), b"second");
}

#[tokio::test]
async fn uploads_need_a_parent_and_refuse_directories() {
    let fx = Fixture::new();
    assert_err!(fx.fs.create_upload(&fx.path("/inbox/missing/a.csv"), false, &bounds()).await, FsError::NotFound);
    fx.fs.mkdir(&fx.path("/inbox/d")).await.unwrap();
    assert_err!(fx.fs.create_upload(&fx.path("/inbox/d"), false, &bounds()).await, FsError::IsADirectory);
    std::fs::write(fx.root().join("inbox/file"), b"").unwrap();
    assert_err!(fx.fs.create_upload(&fx.path("/inbox/file/a.csv"), false, &bounds()).await, FsError::NotADirectory);
    // A directory appearing under the name before commit is not replaced.
    let upload = fx.fs.create_upload(&fx.path("/inbox/late"), false, &bounds()).await.unwrap();
    std::fs::create_dir(fx.root().join("inbox/late")).unwrap();
    assert!(upload.commit().await.map(Commit::published).is_err());
    assert_eq!(Fixture::disk_names(&fx.root().join("inbox")), ["d", "file", "late"]);
}

#[tokio::test]
async fn special_files_are_neither_listed_nor_opened() {
    use rustix::fs::{CWD, FileType, Mode, mknodat};
    let fx = Fixture::new();
    mknodat(CWD, fx.root().join("inbox/pipe"), FileType::Fifo, Mode::from_raw_mode(0o600), 0).unwrap();
    let pipe = fx.path("/inbox/pipe");
    assert!(fx.fs.read_dir(&fx.path("/inbox")).await.unwrap().is_empty());
    assert_err!(fx.fs.stat(&pipe).await, FsError::PermissionDenied);
    // Must not hang waiting for a writer.
    let opened = tokio::time::timeout(Duration::from_secs(5), fx.fs.open_read(&pipe)).await.unwrap();
    assert_err!(opened, FsError::PermissionDenied);
    assert_err!(fx.fs.create_upload(&pipe, false, &bounds()).await, FsError::PermissionDenied);
    assert_err!(fx.fs.remove_file(&pipe).await, FsError::PermissionDenied);
}

#[tokio::test]
async fn stale_upload_temporaries_are_swept() {
    let fx = Fixture::new();
    std::fs::create_dir(fx.root().join("inbox/sub")).unwrap();
    let stale = fx.root().join("inbox/sub/.passerelle-upload-0000");
    std::fs::write(&stale, b"left by a crash").unwrap();
    let old = std::fs::FileTimes::new().set_modified(UNIX_EPOCH + Duration::from_secs(1_000_000));
    std::fs::File::options().write(true).open(&stale).unwrap().set_times(old).unwrap();
    symlink(fx.outside(), fx.root().join("inbox/evil")).unwrap();
    std::fs::write(fx.outside().join(".passerelle-upload-ffff"), b"not ours").unwrap();
    let live = fx.fs.create_upload(&fx.path("/inbox/live.csv"), false, &bounds()).await.unwrap();
    live.write_at(0, Bytes::from_static(b"in progress")).await.unwrap();

    assert_eq!(fx.fs.remove_stale_uploads(Duration::from_secs(3600)).await.unwrap(), 1);
    assert!(!stale.exists());
    assert!(fx.outside().join(".passerelle-upload-ffff").exists());
    live.commit().await.map(Commit::published).unwrap();
    assert_eq!(Fixture::disk_names(&fx.root().join("inbox")), ["evil", "live.csv", "sub"]);
}

#[tokio::test]
async fn a_sparse_write_is_refused_and_spoils_the_upload() {
    let fx = Fixture::new();
    let upload = fx.fs.create_upload(&fx.path("/inbox/sparse.bin"), false, &bounds()).await.unwrap();
    upload.write_at(0, Bytes::from_static(b"head")).await.unwrap();
    let started = std::time::Instant::now();
    let refused = upload.write_at(4 + digest::WINDOW + 1, Bytes::from_static(b"x")).await.unwrap_err();
    assert!(matches!(refused, FsError::WriteRefused(WriteRefused::Gap { .. })), "{refused}");
    assert!(refused.client_text().contains("leaves a gap"), "{refused}");
    // Spoiled: even a write in order is refused now, and so is the commit.
    assert_err!(upload.write_at(4, Bytes::from_static(b"more")).await, FsError::WriteRefused(_));
    let gap =
        WriteRefused::Gap { offset: 4 + digest::WINDOW + 1, window: passerelle_config::ByteSize::new(digest::WINDOW) };
    assert_eq!(upload.failure(), Some(gap.to_string()));
    assert_err!(upload.commit().await.map(Commit::published), FsError::WriteRefused(_));
    assert!(started.elapsed() < Duration::from_secs(1));
    assert!(Fixture::disk_names(&fx.root().join("inbox")).is_empty(), "no file, no temporary");
}

#[tokio::test]
async fn writes_beyond_the_size_bound_are_refused() {
    let fx = Fixture::new();
    let small = UploadBounds::new(passerelle_config::ByteSize::new(10), passerelle_config::ByteSize::new(64 << 20));
    let upload = fx.fs.create_upload(&fx.path("/inbox/ten.bin"), false, &small).await.unwrap();
    upload.write_at(0, vec![1; 10].into()).await.unwrap();
    let refused = upload.write_at(10, Bytes::from_static(b"!")).await.unwrap_err();
    assert_eq!(refused.client_text(), "file too large: uploads are limited to 10 B (uploads.max_file_size)");
    assert_err!(upload.commit().await.map(Commit::published), FsError::WriteRefused(WriteRefused::TooLarge(_)));
    assert!(Fixture::disk_names(&fx.root().join("inbox")).is_empty());

    // Exactly at the bound is fine; far beyond is refused before any gap check.
    let upload = fx.fs.create_upload(&fx.path("/inbox/ten.bin"), false, &small).await.unwrap();
    assert_err!(
        upload.write_at(1 << 36, Bytes::from_static(b"x")).await,
        FsError::WriteRefused(WriteRefused::TooLarge(_))
    );
    let upload = fx.fs.create_upload(&fx.path("/inbox/ten.bin"), false, &small).await.unwrap();
    upload.write_at(5, vec![2; 5].into()).await.unwrap();
    upload.write_at(0, vec![1; 5].into()).await.unwrap();
    assert_eq!(upload.commit().await.map(Commit::published).unwrap().size, 10);
}

#[tokio::test]
async fn after_a_rewrite_writes_may_still_go_one_window_beyond_the_furthest() {
    let fx = Fixture::new();
    let upload = fx.fs.create_upload(&fx.path("/inbox/rewritten.bin"), false, &bounds()).await.unwrap();
    upload.write_at(0, vec![1; 100].into()).await.unwrap();
    upload.write_at(0, vec![2; 10].into()).await.unwrap();
    assert!(!upload.is_streaming_digest());
    upload.write_at(100 + digest::WINDOW, Bytes::from_static(b"z")).await.unwrap();
    assert_err!(upload.write_at(2 * digest::WINDOW + 102, Bytes::from_static(b"z")).await, FsError::WriteRefused(_));
}

#[tokio::test]
async fn directories_are_listed_in_batches() {
    let fx = Fixture::new();
    std::fs::create_dir(fx.root().join("inbox/many")).unwrap();
    for i in 0..(2 * cursor::BATCH + 7) {
        std::fs::write(fx.root().join(format!("inbox/many/f{i:04}")), b"").unwrap();
    }
    std::fs::write(fx.root().join("inbox/many/.passerelle-upload-00"), b"").unwrap();
    let cursor = fx.fs.open_dir(&fx.path("/inbox/many")).await.unwrap();
    let mut sizes = Vec::new();
    let mut names = Vec::new();
    loop {
        let batch = cursor.next_batch().await.unwrap();
        if batch.is_empty() {
            break;
        }
        sizes.push(batch.len());
        names.extend(batch.into_iter().map(|(name, _)| name));
    }
    assert_eq!(sizes, [cursor::BATCH, cursor::BATCH, 7]);
    names.sort();
    names.dedup();
    assert_eq!(names.len(), 2 * cursor::BATCH + 7, "every file once, no temporary");
    assert!(cursor.next_batch().await.unwrap().is_empty(), "the end stays the end");
}

/// The door's profile for the tests below: one integer column.
fn door_profile() -> Arc<passerelle_import::Profile> {
    let text = "[[import]]\nname = \"n\"\nmatch = \"*.csv\"\ntable = \"n\"\n[[import.columns]]\nname = \"n\"\ntype = \"integer\"\n";
    Arc::new(passerelle_import::Profiles::parse(text).unwrap().iter().next().unwrap().clone())
}

/// Writes `pieces` (offset, bytes) to an upload of `/inbox/<name>` validated at the door.
async fn door_upload(fx: &Fixture, name: &str, pieces: &[(u64, &'static [u8])]) -> Commit {
    let mut upload = fx.fs.create_upload(&fx.path(&format!("/inbox/{name}")), false, &bounds()).await.unwrap();
    upload.set_door(Door::Validate(door_profile()));
    for (offset, data) in pieces {
        upload.write_at(*offset, Bytes::from_static(data)).await.unwrap();
    }
    upload.commit().await.unwrap()
}

#[tokio::test]
async fn the_door_refuses_an_invalid_upload_streamed_or_read_back_and_publishes_a_valid_one() {
    let fx = Fixture::new();
    // In order: validated as the bytes arrive.
    let Commit::Refused(refused) = door_upload(&fx, "a.csv", &[(0, b"n\n1\n"), (4, b"x\n")]).await else {
        panic!("accepted")
    };
    assert_eq!((refused.errors[0].line, refused.errors[0].column.as_deref()), (Some(3), Some("n")));
    assert_eq!((refused.profile.as_deref(), refused.error_count, refused.size), (Some("n"), 1, 6));
    assert_eq!(refused.sha256, sha256_of(b"n\n1\nx\n"));
    // A rewrite stops the streaming: the file on disk is validated at the commit.
    let rewritten = door_upload(&fx, "b.csv", &[(0, b"n\n1\n2\n"), (4, b"y")]).await;
    let Commit::Refused(read_back) = rewritten else { panic!("accepted") };
    assert_eq!(read_back.errors[0].line, Some(3));
    assert_eq!(read_back.sha256, sha256_of(b"n\n1\ny\n"));
    drop((refused, read_back));
    assert_eq!(Fixture::disk_names(&fx.root().join("inbox")), Vec::<String>::new(), "nothing published or left");
    // Valid, streamed or read back: published.
    assert!(matches!(door_upload(&fx, "c.csv", &[(0, b"n\n1\n"), (4, b"2\n")]).await, Commit::Published(_)));
    assert!(matches!(door_upload(&fx, "d.csv", &[(0, b"n\nx\n"), (2, b"7")]).await, Commit::Published(_)));
    assert_eq!(Fixture::disk_names(&fx.root().join("inbox")), ["c.csv", "d.csv"]);
    // A refused upload leaves the file of that name as it was.
    let Commit::Refused(again) = door_upload(
        &fx,
        "c.csv",
        &[(
            0, b"n
z
",
        )],
    )
    .await
    else {
        panic!("accepted")
    };
    drop(again);
    assert_eq!(std::fs::read(fx.root().join("inbox/c.csv")).unwrap(), b"n\n1\n2\n");
    assert_eq!(Fixture::disk_names(&fx.root().join("inbox")), ["c.csv", "d.csv"]);
}
