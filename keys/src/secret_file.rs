//! Files holding secrets: created atomically with mode 0600, never
//! overwritten, and read only when nobody else can read or write them.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rand::RngExt;

use crate::KeyError;

/// Largest secret or public file this crate reads: keys and certificate
/// chains are a few kilobytes.
const MAX_FILE_SIZE: u64 = 1024 * 1024;

/// Permission bits that must be clear on a private file (as sshd checks).
const NOT_PRIVATE: u32 = 0o077;

/// Writes `contents` to a new file at `path` with mode 0600, atomically.
///
/// The parent directory is created with mode 0700 when absent. The data is
/// written to a temporary file in the same directory (0600 from its
/// creation), flushed to disk, then linked into place: a reader never sees a
/// partial file, and an existing file is never overwritten
/// ([`KeyError::AlreadyExists`]).
pub fn write_secret_file(path: &Path, contents: &[u8]) -> Result<(), KeyError> {
    write_new_file(path, contents, 0o600)
}

/// Writes a new public file (mode 0644) the same atomic, no-overwrite way as
/// [`write_secret_file`].
pub(crate) fn write_public_file(path: &Path, contents: &[u8]) -> Result<(), KeyError> {
    write_new_file(path, contents, 0o644)
}

/// Checks that `path` is a regular file (not a symlink) that neither group
/// nor others can read, write or execute, as sshd requires of host keys.
pub fn check_private_file_mode(path: &Path) -> Result<(), KeyError> {
    let meta = fs::symlink_metadata(path).map_err(|e| KeyError::io("inspect", path, e))?;
    check_private_metadata(path, &meta)
}

/// Reads a private file after [`check_private_file_mode`], race-free: the
/// checks apply to the file actually opened, not to whatever the path pointed
/// to a moment before. Files over 1 MiB are refused.
pub fn read_secret_file(path: &Path) -> Result<Vec<u8>, KeyError> {
    let before = fs::symlink_metadata(path).map_err(|e| KeyError::io("inspect", path, e))?;
    check_private_metadata(path, &before)?;
    let file = File::open(path).map_err(|e| KeyError::io("open", path, e))?;
    let opened = file.metadata().map_err(|e| KeyError::io("inspect", path, e))?;
    if opened.dev() != before.dev() || opened.ino() != before.ino() {
        // The path was swapped (for a symlink, say) between the checks.
        return Err(KeyError::NotRegularFile { path: path.to_path_buf() });
    }
    check_private_metadata(path, &opened)?;
    read_limited(path, file)
}

/// Reads a file that need not be private (a `.pub` file, a certificate).
pub(crate) fn read_public_file(path: &Path) -> Result<Vec<u8>, KeyError> {
    let file = File::open(path).map_err(|e| KeyError::io("open", path, e))?;
    read_limited(path, file)
}

/// Creates `dir` (and missing parents) with mode 0700 when absent.
pub(crate) fn create_private_dir(dir: &Path) -> Result<(), KeyError> {
    match fs::symlink_metadata(dir) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| KeyError::io("create directory", dir, e)),
        Err(e) => Err(KeyError::io("inspect", dir, e)),
    }
}

/// Refuses a directory that group or others can write to: they could replace
/// the keys in it.
pub(crate) fn check_private_dir(dir: &Path) -> Result<(), KeyError> {
    let meta = fs::metadata(dir).map_err(|e| KeyError::io("inspect", dir, e))?;
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(KeyError::InsecureDirectory { path: dir.to_path_buf(), mode });
    }
    Ok(())
}

/// Whether anything (even a dangling symlink) exists at `path`.
pub(crate) fn exists(path: &Path) -> Result<bool, KeyError> {
    match fs::symlink_metadata(path) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(KeyError::io("inspect", path, e)),
    }
}

fn check_private_metadata(path: &Path, meta: &fs::Metadata) -> Result<(), KeyError> {
    if !meta.file_type().is_file() {
        return Err(KeyError::NotRegularFile { path: path.to_path_buf() });
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & NOT_PRIVATE != 0 {
        return Err(KeyError::InsecureMode { path: path.to_path_buf(), mode });
    }
    Ok(())
}

fn read_limited(path: &Path, file: File) -> Result<Vec<u8>, KeyError> {
    let mut contents = Vec::new();
    file.take(MAX_FILE_SIZE + 1).read_to_end(&mut contents).map_err(|e| KeyError::io("read", path, e))?;
    if contents.len() as u64 > MAX_FILE_SIZE {
        return Err(KeyError::FileTooLarge { path: path.to_path_buf(), limit: MAX_FILE_SIZE });
    }
    Ok(contents)
}

/// Removes the temporary file unless it was successfully linked into place.
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

fn write_new_file(path: &Path, contents: &[u8], mode: u32) -> Result<(), KeyError> {
    let name = path.file_name().ok_or_else(|| KeyError::Io {
        action: "create",
        path: path.to_path_buf(),
        source: io::Error::new(io::ErrorKind::InvalidInput, "the path has no file name"),
    })?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    create_private_dir(dir)?;
    if exists(path)? {
        return Err(KeyError::AlreadyExists { path: path.to_path_buf() });
    }

    let suffix: u64 = rand::rng().random();
    let mut temp_name = std::ffi::OsString::from(".");
    temp_name.push(name);
    temp_name.push(format!(".tmp-{suffix:016x}"));
    let temp = TempFile(dir.join(temp_name));

    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temp.0)
        .map_err(|e| KeyError::io("create", &temp.0, e))?;
    if mode != 0o600 {
        // The umask may have narrowed the creation mode: set it exactly.
        file.set_permissions(fs::Permissions::from_mode(mode))
            .map_err(|e| KeyError::io("set the mode of", &temp.0, e))?;
    }
    file.write_all(contents).and_then(|()| file.sync_all()).map_err(|e| KeyError::io("write", &temp.0, e))?;
    drop(file);

    // link(2) fails when the target exists, unlike rename(2): no overwrite.
    match fs::hard_link(&temp.0, path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            return Err(KeyError::AlreadyExists { path: path.to_path_buf() });
        }
        Err(e) => return Err(KeyError::io("create", path, e)),
    }
    drop(temp);
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| KeyError::io("flush directory", dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_file_is_0600_and_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/dir/secret");
        write_secret_file(&path, b"s3cret").unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o600);
        let parent_mode = fs::metadata(path.parent().unwrap()).unwrap().permissions().mode() & 0o7777;
        assert_eq!(parent_mode, 0o700);
        assert_eq!(read_secret_file(&path).unwrap(), b"s3cret");

        let err = write_secret_file(&path, b"other").unwrap_err();
        assert!(matches!(err, KeyError::AlreadyExists { .. }), "{err}");
        assert_eq!(fs::read(&path).unwrap(), b"s3cret");
        // No temporary file is left behind.
        assert_eq!(fs::read_dir(path.parent().unwrap()).unwrap().count(), 1);
    }

    #[test]
    fn public_file_is_0644() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.pub");
        write_public_file(&path, b"pub").unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o644);
    }

    #[test]
    fn readable_by_group_is_refused_with_chmod_hint() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        write_secret_file(&path, b"k").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        let err = read_secret_file(&path).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains(&format!("chmod 600 {}", path.display())), "{msg}");
        assert!(check_private_file_mode(&path).is_err());
    }

    #[test]
    fn symlink_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("k");
        write_secret_file(&target, b"k").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(matches!(read_secret_file(&link), Err(KeyError::NotRegularFile { .. })));
        assert!(matches!(check_private_file_mode(&link), Err(KeyError::NotRegularFile { .. })));
        // Nor is a symlink followed when writing.
        assert!(matches!(write_secret_file(&link, b"x"), Err(KeyError::AlreadyExists { .. })));
    }
}
