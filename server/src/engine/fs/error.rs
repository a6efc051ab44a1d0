//! What can go wrong in a tenant's tree, in terms a protocol front-end can
//! translate into its own status codes (SFTP `SSH_FX_*`, FTP reply codes).
//!
//! Operating-system errors are folded into these few kinds on purpose: a
//! client learns that something is missing or refused, never why in detail
//! (a symlink planted by someone, a path that would leave the tree).

use std::io;

use passerelle_config::ByteSize;
use rustix::io::Errno;

/// Why a filesystem operation failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FsError {
    /// The path does not exist (or lies outside `/inbox` and `/outbox`).
    #[error("no such file or directory")]
    NotFound,
    /// The operation is not allowed at this path: writes outside `/inbox/…`,
    /// anything through a symlink, special files.
    #[error("permission denied")]
    PermissionDenied,
    /// The target exists (exclusive create, mkdir).
    #[error("already exists")]
    AlreadyExists,
    /// A directory was expected.
    #[error("not a directory")]
    NotADirectory,
    /// A file was expected.
    #[error("is a directory")]
    IsADirectory,
    /// `rmdir` of a directory that still holds entries.
    #[error("directory not empty")]
    DirectoryNotEmpty,
    /// The client's path was refused before touching the disk.
    #[error("invalid path: {0}")]
    InvalidPath(&'static str),
    /// The request is well-formed but not something this server does.
    #[error("not supported: {0}")]
    Unsupported(&'static str),
    /// The filesystem under the data directory is full (ENOSPC), or a
    /// filesystem quota of the server's account is (EDQUOT).
    #[error("no space left on the server's disk: upload refused; try again later")]
    NoSpace,
    /// The tenant's quota refuses the operation; the sentence names the
    /// tenant, its usage and the limit.
    #[error("{0}")]
    QuotaExceeded(String),
    /// Writing would leave less free space than the reserve kept for the
    /// catalog (`uploads.min_free_space`).
    #[error("the server is {0}: upload refused; try again later")]
    LowSpace(passerelle_tree::LowSpace),
    /// An upload's write broke one of its bounds; the upload cannot complete.
    #[error(transparent)]
    WriteRefused(#[from] WriteRefused),
    /// Opening one more file or directory would break a limit on open files.
    #[error(transparent)]
    TooManyOpen(#[from] TooManyOpen),
    /// The import pipeline refused an upload's content at its close (the
    /// verdict at the door); the sentence gives the first error and the
    /// receipt's path.
    #[error("{0}")]
    Rejected(String),
    /// Anything else; logged by the caller, shown to clients as a failure.
    #[error("i/o error: {0}")]
    Io(io::Error),
}

/// Why a write to an upload was refused. Once refused, the upload is
/// spoiled: later writes and the commit give the same answer, so that nothing
/// with a hole in it is ever published.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum WriteRefused {
    /// The write would end beyond `uploads.max_file_size`.
    #[error("file too large: uploads are limited to {0} (uploads.max_file_size)")]
    TooLarge(ByteSize),
    /// The write starts further beyond the bytes received in order than the
    /// streaming digest can hold back: it would make a sparse file.
    #[error("write at offset {offset} leaves a gap: writes must arrive in order (at most {window} ahead)")]
    Gap {
        /// Where the refused write started.
        offset: u64,
        /// How far ahead of the bytes received in order a write may start.
        window: ByteSize,
    },
}

/// Which limit on open files an open would break.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum TooManyOpen {
    /// `limits.max_open_files_per_session`.
    #[error("too many open files in this session (limit {0})")]
    Session(u32),
    /// `limits.max_open_files_per_user`, over the user's sessions on this node.
    #[error("too many open files for user {login} (limit {limit})")]
    User {
        /// The user.
        login: String,
        /// The limit.
        limit: u32,
    },
    /// The process's own share of its open-file limit (see `engine::nofile`).
    #[error("server busy: too many open files (limit {0})")]
    Server(u32),
}

impl FsError {
    /// The sentence a client is shown, the same over every protocol. It
    /// never holds a server path: an operating-system error is reduced to
    /// its kind, and logged here in full for the operator.
    pub(crate) fn client_text(&self) -> String {
        match self {
            Self::Io(err) => {
                tracing::warn!(error = %err, "i/o error in a tenant tree");
                format!("i/o error ({})", err.kind())
            }
            other => other.to_string(),
        }
    }
}

impl FsError {
    /// The same error again, for every later request on an upload that
    /// failed (an operating-system error keeps its kind and text).
    pub(crate) fn duplicate(&self) -> Self {
        match self {
            Self::NotFound => Self::NotFound,
            Self::PermissionDenied => Self::PermissionDenied,
            Self::AlreadyExists => Self::AlreadyExists,
            Self::NotADirectory => Self::NotADirectory,
            Self::IsADirectory => Self::IsADirectory,
            Self::DirectoryNotEmpty => Self::DirectoryNotEmpty,
            Self::InvalidPath(why) => Self::InvalidPath(why),
            Self::Unsupported(why) => Self::Unsupported(why),
            Self::NoSpace => Self::NoSpace,
            Self::LowSpace(low) => Self::LowSpace(*low),
            Self::QuotaExceeded(sentence) => Self::QuotaExceeded(sentence.clone()),
            Self::Rejected(sentence) => Self::Rejected(sentence.clone()),
            Self::WriteRefused(refused) => Self::WriteRefused(*refused),
            Self::TooManyOpen(too_many) => Self::TooManyOpen(too_many.clone()),
            Self::Io(err) => Self::Io(io::Error::new(err.kind(), err.to_string())),
        }
    }
}

impl From<io::Error> for FsError {
    fn from(err: io::Error) -> Self {
        if let Some(errno) = Errno::from_io_error(&err) {
            match errno {
                Errno::NOENT => return Self::NotFound,
                // ELOOP is what O_NOFOLLOW answers for a symlink: refusing it is
                // a policy decision, not a loop. EROFS: a read-only mount is a
                // refusal as far as a client is concerned.
                Errno::ACCESS | Errno::PERM | Errno::LOOP | Errno::ROFS => {
                    return Self::PermissionDenied;
                }
                Errno::EXIST => return Self::AlreadyExists,
                Errno::NOTDIR => return Self::NotADirectory,
                Errno::ISDIR => return Self::IsADirectory,
                Errno::NOTEMPTY => return Self::DirectoryNotEmpty,
                Errno::NOSPC | Errno::DQUOT => return Self::NoSpace,
                Errno::NAMETOOLONG => return Self::InvalidPath("name too long"),
                _ => return Self::Io(err),
            }
        }
        // No errno: cap-std's own refusals ("a path led outside of the
        // filesystem") carry only a kind.
        match err.kind() {
            io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => Self::NoSpace,
            io::ErrorKind::NotFound => Self::NotFound,
            io::ErrorKind::PermissionDenied => Self::PermissionDenied,
            io::ErrorKind::AlreadyExists => Self::AlreadyExists,
            _ => Self::Io(err),
        }
    }
}

impl From<tokio::task::JoinError> for FsError {
    fn from(err: tokio::task::JoinError) -> Self {
        // A blocking filesystem task panicked or the runtime is shutting down.
        Self::Io(io::Error::other(err))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(errno: Errno) -> FsError {
        FsError::from(io::Error::from(errno))
    }

    #[test]
    fn errno_values_map_to_client_facing_kinds() {
        assert!(matches!(map(Errno::NOENT), FsError::NotFound));
        assert!(matches!(map(Errno::ACCESS), FsError::PermissionDenied));
        assert!(matches!(map(Errno::PERM), FsError::PermissionDenied));
        assert!(matches!(map(Errno::LOOP), FsError::PermissionDenied));
        assert!(matches!(map(Errno::EXIST), FsError::AlreadyExists));
        assert!(matches!(map(Errno::NOTDIR), FsError::NotADirectory));
        assert!(matches!(map(Errno::ISDIR), FsError::IsADirectory));
        assert!(matches!(map(Errno::NOTEMPTY), FsError::DirectoryNotEmpty));
        assert!(matches!(map(Errno::NOSPC), FsError::NoSpace));
        assert!(matches!(map(Errno::DQUOT), FsError::NoSpace));
        assert!(matches!(map(Errno::IO), FsError::Io(_)));
    }

    #[test]
    fn a_full_disk_is_told_in_one_sentence() {
        assert_eq!(
            map(Errno::NOSPC).client_text(),
            "no space left on the server's disk: upload refused; try again later"
        );
        let low = FsError::LowSpace(passerelle_tree::LowSpace { free: 12 << 20, reserve: 256 << 20 });
        assert_eq!(
            low.duplicate().client_text(),
            "the server is low on disk space (12 MiB free, reserve 256 MiB): upload refused; try again later"
        );
        let kind_only = io::Error::new(io::ErrorKind::StorageFull, "full");
        assert!(matches!(FsError::from(kind_only), FsError::NoSpace));
    }

    #[test]
    fn cap_std_escape_errors_are_refusals() {
        let escape = io::Error::new(io::ErrorKind::PermissionDenied, "a path led outside of the filesystem");
        assert!(matches!(FsError::from(escape), FsError::PermissionDenied));
    }
}
