//! A small filesystem of its own under a test's data directory: a tmpfs,
//! which a test fills in a moment, and which goes away with the test.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::tools::Outcome;

/// A tmpfs mounted for one installation; unmounted when dropped, whether
/// the test passed or panicked.
#[derive(Debug)]
pub(crate) struct SmallDisk {
    mount_point: PathBuf,
}

impl SmallDisk {
    /// Mounts a tmpfs of `size_mib` MiB (mode 0700, as passerelle wants its
    /// data directory) at `at`, creating the directory. Mounting needs root:
    /// the tests that fill a disk fail, never skip, without it.
    pub(crate) fn mount(at: &Path, size_mib: u32) -> Self {
        assert!(
            rustix::process::geteuid().is_root(),
            "this test mounts a small tmpfs as the data directory, which needs root (CI and the development \
             machine run the tests as root); run it as root"
        );
        std::fs::create_dir_all(at).unwrap_or_else(|e| panic!("{}: {e}", at.display()));
        let out = Outcome::from(
            Command::new("mount")
                .args(["-t", "tmpfs", "-o", &format!("size={size_mib}m,mode=0700"), "tmpfs"])
                .arg(at)
                .output()
                .expect("run mount"),
        );
        assert!(out.success(), "mount -t tmpfs at {} failed: {}", at.display(), out.stderr);
        Self { mount_point: at.to_owned() }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        // Lazily if a process still holds a file there: the mount must not
        // outlive the test either way.
        for args in [&[][..], &["-l"][..]] {
            match Command::new("umount").args(args).arg(&self.mount_point).output() {
                Ok(out) if out.status.success() => return,
                Ok(out) => eprintln!(
                    "umount {args:?} {}: {}",
                    self.mount_point.display(),
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
                Err(e) => eprintln!("umount {}: {e}", self.mount_point.display()),
            }
        }
    }
}
