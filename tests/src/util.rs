//! Small helpers: ports, files, trees and polling.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A loopback TCP port that was free a moment ago, and never handed out
/// before by this test process: the kernel may give the same ephemeral port
/// to two binds in a row once the first is closed (a server was once
/// configured with one port for SFTP and FTPS that way).
pub fn free_port() -> u16 {
    static HANDED_OUT: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    for _ in 0..1000 {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
        let port = listener.local_addr().expect("local_addr").port();
        if !handed_out.contains(&port) {
            handed_out.push(port);
            return port;
        }
    }
    panic!("no ephemeral port left that this test process has not handed out already");
}

/// Polls `check` every 100 ms until it returns `Some`, or `None` after `timeout`.
pub fn wait_for<T>(timeout: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Writes `size` random bytes to `path`.
pub fn random_file(path: &Path, size: u64) {
    use std::io::Read as _;
    let mut source = std::fs::File::open("/dev/urandom").expect("/dev/urandom").take(size);
    let mut file = std::fs::File::create(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let copied = std::io::copy(&mut source, &mut file).expect("copy random bytes");
    assert_eq!(copied, size);
}

/// The permission bits (`0o777` part) of a file or directory.
pub fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).mode() & 0o777
}

/// The names in directory `dir` (not below it), sorted.
pub fn entry_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Every entry under `root` (files, directories and symlinks, which are not
/// followed), as paths relative to `root`, sorted.
pub fn tree(root: &Path) -> Vec<PathBuf> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.map_while(Result::ok) {
            let path = entry.path();
            out.push(path.strip_prefix(root).expect("under root").to_path_buf());
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                walk(root, &path, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

/// A time as every JSON output of the CLI writes it (RFC 3339, UTC, exactly
/// three fractional digits, `Z`), as Unix milliseconds; panics on any other form.
pub fn json_time_ms(value: &serde_json::Value) -> i64 {
    let text = value.as_str().unwrap_or_else(|| panic!("a time is a string: {value}"));
    let well_formed = text.len() == 24
        && text.ends_with('Z')
        && text.as_bytes()[19] == b'.'
        && text[20..23].bytes().all(|b| b.is_ascii_digit());
    assert!(well_formed, "not RFC 3339 UTC with milliseconds: {text}");
    let time = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|e| panic!("{text}: {e}"));
    i64::try_from(time.unix_timestamp_nanos() / 1_000_000).expect("in range")
}
