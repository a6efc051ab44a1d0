//! Blocking lookups inside the tenant root, one name at a time, never
//! following a symlink.
//!
//! cap-std already keeps every lookup beneath the root, but it follows
//! symlinks that stay inside. Clients cannot create symlinks here, so one in
//! the tree was planted by someone else: it is refused wherever it appears,
//! as a directory on the way (opened with `O_NOFOLLOW`) or as the final name
//! (looked at with `lstat`, then acted on with calls that do not follow).

use std::io;

use cap_fs_ext::DirExt as _;
use cap_std::fs::{Dir, Metadata};

use super::error::FsError;
use super::path::TenantPath;

/// Opens the directory at `components` (the root for an empty list).
pub(super) fn open_dir(root: &Dir, components: &[String]) -> Result<Dir, FsError> {
    let mut dir = root.try_clone()?;
    for name in components {
        dir = dir.open_dir_nofollow(name).map_err(|err| refine(&dir, name, err))?;
    }
    Ok(dir)
}

/// Opens the directory containing `path` and returns it with the last name.
/// The caller has checked that `path` is not the root.
pub(super) fn open_parent<'p>(root: &Dir, path: &'p TenantPath) -> Result<(Dir, &'p str), FsError> {
    let (name, parents) = path.components().split_last().ok_or(FsError::PermissionDenied)?;
    Ok((open_dir(root, parents)?, name))
}

/// `lstat` of an entry that must exist and be a regular file or a directory.
pub(super) fn plain_metadata(dir: &Dir, name: &str) -> Result<Metadata, FsError> {
    let meta = dir.symlink_metadata(name)?;
    if meta.is_file() || meta.is_dir() { Ok(meta) } else { Err(FsError::PermissionDenied) }
}

/// `lstat` of an entry that may be absent; present entries must be regular
/// files or directories.
pub(super) fn plain_metadata_if_exists(dir: &Dir, name: &str) -> Result<Option<Metadata>, FsError> {
    match plain_metadata(dir, name) {
        Ok(meta) => Ok(Some(meta)),
        Err(FsError::NotFound) => Ok(None),
        Err(err) => Err(err),
    }
}

/// Explains a failed no-follow open: a symlink (which `O_NOFOLLOW` reports as
/// `ELOOP`, or `ENOTDIR` with `O_DIRECTORY`) is a refusal, not a type error.
pub(super) fn refine(dir: &Dir, name: &str, err: io::Error) -> FsError {
    let err = FsError::from(err);
    if matches!(err, FsError::NotADirectory | FsError::PermissionDenied)
        && dir.symlink_metadata(name).is_ok_and(|meta| meta.is_symlink())
    {
        return FsError::PermissionDenied;
    }
    err
}
