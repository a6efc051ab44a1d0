//! The process's open-file limit (`RLIMIT_NOFILE`): raised to its hard limit
//! at start, since the default soft limit (often 1024) is far below what a
//! file server with hundreds of sessions needs; and the share of it that
//! clients' open files may take, so that a reserve always stays for the
//! catalog's connections, the listeners, the connections' own sockets and
//! the files of uploads in progress.

use rustix::process::{Resource, getrlimit, setrlimit};
use tracing::{info, warn};

/// Descriptors never handed to clients' open files (catalog pool, listeners,
/// passive FTPS ports, logs), unless the limit is so low that half of it is
/// kept instead.
const RESERVE: u64 = 256;

/// Raises the soft open-file limit to the hard limit and logs both; a
/// refusal is logged and the limit left as it was.
pub(crate) fn raise() {
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        let raised = rustix::process::Rlimit { current: limit.maximum, maximum: limit.maximum };
        match setrlimit(Resource::Nofile, raised) {
            Ok(()) => limit = getrlimit(Resource::Nofile),
            Err(e) => warn!(error = %e, "could not raise the open-file limit to its hard limit"),
        }
    }
    let soft = limit.current.map_or_else(|| "unlimited".to_owned(), |n| n.to_string());
    let hard = limit.maximum.map_or_else(|| "unlimited".to_owned(), |n| n.to_string());
    info!(soft = %soft, hard = %hard, client_files = client_share(), "open-file limit");
}

/// How many files and directories clients may hold open in all, from the
/// current soft limit.
pub(super) fn client_share() -> u32 {
    share_of(getrlimit(Resource::Nofile).current)
}

/// The share of a soft limit of `soft` descriptors (`None`: unlimited):
/// what is left after the reserve, halved because an upload holds two
/// descriptors (its directory and its temporary).
fn share_of(soft: Option<u64>) -> u32 {
    let Some(soft) = soft else { return u32::MAX };
    let share = soft.saturating_sub(RESERVE.min(soft / 2)) / 2;
    u32::try_from(share).unwrap_or(u32::MAX).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reserve_is_kept_and_uploads_count_twice() {
        assert_eq!(share_of(Some(1024)), 384);
        assert_eq!(share_of(Some(1 << 20)), ((1 << 20) - 256) / 2);
        assert_eq!(share_of(Some(100)), 25);
        assert_eq!(share_of(Some(0)), 1);
        assert_eq!(share_of(None), u32::MAX);
    }
}
