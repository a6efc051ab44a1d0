//! Fuzz entry points: one function per parser of untrusted bytes, each
//! taking arbitrary bytes and panicking only on a bug (a broken invariant,
//! an overflow, a path outside the tenant tree). The coverage-guided targets
//! under `fuzz/` and the corpus replay test (`server/tests/fuzz_corpus.rs`)
//! both call them through [`TARGETS`], so a crash found by the fuzzer is
//! replayed by `cargo test` exactly as it was found.
//!
//! Not a stable interface: hidden from the docs, and for these two callers
//! only.

use std::cell::RefCell;
use std::io::Write as _;
use std::path::{Component, Path, PathBuf};
use std::pin::Pin;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use bytes::BytesMut;
use passerelle_import::{Discard, Profile, Profiles};
use tokio::io::{AsyncRead, ReadBuf};

use crate::engine::fs::{TenantFs, TenantPath};
use crate::ftps::common::{Protection, answer};
use crate::ftps::line::{Command, Line, LineReader, MAX_LINE};
use crate::sftp::codec::{self, MAX_PACKET};
use crate::sftp::kexinit::{self, Observer};

/// A fuzz entry point: arbitrary bytes in, a panic only on a bug.
pub type Target = fn(&[u8]);

/// Every target by name; the name is the directory of its corpus
/// (`tests/fuzz-corpus/<name>/`) and of its `fuzz/` binary.
pub const TARGETS: &[(&str, Target)] = &[
    ("sftp_packets", sftp_packets),
    ("ftp_control", ftp_control),
    ("proxy_header", proxy_header),
    ("tenant_path", tenant_path),
    ("authorized_key", authorized_key),
    ("config_toml", config_toml),
    ("import_profile", import_profile),
    ("csv_validate", csv_validate),
    ("ssh_kexinit", ssh_kexinit),
];

/// SFTP: the byte stream of a session, split into packets and decoded as
/// the server does.
pub fn sftp_packets(data: &[u8]) {
    let mut buf = BytesMut::from(data);
    while let Ok(Some(body)) = codec::split_packet(&mut buf) {
        assert!(body.len() <= MAX_PACKET as usize, "a packet longer than the limit was taken");
        // Every request decodes or fails cleanly; the result is not used.
        let _decoded = codec::decode(body);
    }
}

/// SSH: what a client sends before its keys are in use (identification
/// line, plaintext packets), delivered in pieces of a size set by the first
/// byte; the observer learns the same whatever the split, and keeps no more
/// than its bound.
pub fn ssh_kexinit(data: &[u8]) {
    let Some((&chunk, stream)) = data.split_first() else { return };
    let mut split = Observer::default();
    for piece in stream.chunks(usize::from(chunk.max(1))) {
        split.feed(piece);
    }
    let mut whole = Observer::default();
    whole.feed(stream);
    assert_eq!(split.hello(), whole.hello(), "the observation depends on how the bytes were split");
    assert!(whole.hello().first_bytes.len() <= 32);
    let identification = whole.hello().identification.as_ref().map_or(0, String::len);
    assert!(identification <= 3 * 255, "an identification line longer than the bound");
    // A KEXINIT payload alone parses or fails cleanly.
    let _lists = kexinit::parse_kexinit(stream);
}

/// FTP control connection: the first byte sets how many bytes each read
/// returns (framing must not depend on it), the rest is the client's
/// stream; every line is parsed and answered as before and after login.
pub fn ftp_control(data: &[u8]) {
    let Some((&chunk, stream)) = data.split_first() else { return };
    let mut reader = LineReader::new(Chunked::new(stream, chunk));
    let mut protection = Protection::default();
    block_on(async {
        while let Ok(line) = reader.next().await {
            let bytes = match line {
                Line::Command(bytes) => bytes,
                Line::TooLong => continue,
                Line::Closed => break,
            };
            assert!(bytes.len() <= MAX_LINE && !bytes.contains(&b'\n'), "a line was not bounded");
            let Some(cmd) = Command::parse(&bytes) else { continue };
            assert!((1..=4).contains(&cmd.verb.len()) && cmd.verb.bytes().all(|b| b.is_ascii_uppercase()));
            if let Some(reply) = answer(&cmd, &mut protection) {
                assert_one_reply(&reply.encode());
            }
        }
    });
}

/// A reply is lines ending in CRLF, with no other CR or LF: a client's
/// bytes echoed in it cannot forge a second reply.
fn assert_one_reply(wire: &[u8]) {
    let text = std::str::from_utf8(wire).expect("replies are UTF-8");
    let lines: Vec<&str> = text.split_terminator("\r\n").collect();
    assert!(text.ends_with("\r\n") && !lines.is_empty(), "unterminated reply {text:?}");
    assert!(lines.iter().all(|l| !l.contains(['\r', '\n'])), "reply injection: {text:?}");
}

/// PROXY protocol v1/v2 header from a trusted proxy, delivered in reads of
/// a size set by the first byte.
pub fn proxy_header(data: &[u8]) {
    let Some((&chunk, stream)) = data.split_first() else { return };
    let mut reader = Chunked::new(stream, chunk);
    if let Ok((_source, rest)) = block_on(crate::engine::proxy::read_header(&mut reader)) {
        // What was read past the header is handed on, in order: it ends
        // exactly where reading stopped.
        let consumed = stream.len() - reader.rest.len();
        assert!(stream[..consumed].ends_with(&rest), "the bytes after the header were not kept as sent");
    }
}

/// Tenant paths: the input is a working directory and a client path,
/// separated by the first NUL. Whatever they are, a resolved path is plain
/// names below the tenant root, and resolving it again gives itself.
pub fn tenant_path(data: &[u8]) {
    let fs = tenant_fs();
    let (cwd_raw, raw) = match data.iter().position(|&b| b == 0) {
        Some(nul) => (&data[..nul], &data[nul + 1..]),
        None => (&b"/"[..], data),
    };
    let cwd = fs.resolve(&TenantPath::root(), cwd_raw).unwrap_or_else(|_| TenantPath::root());
    let Ok(path) = fs.resolve(&cwd, raw) else { return };
    let shown = path.to_client_string();
    let root = Path::new("/srv/tenant");
    let on_disk: PathBuf = root.join(shown.trim_start_matches('/'));
    assert!(
        on_disk.starts_with(root)
            && on_disk.components().skip(root.components().count()).all(|c| matches!(c, Component::Normal(_))),
        "{raw:?} from {cwd} resolved outside the tree: {shown:?}"
    );
    assert!(!shown.chars().any(char::is_control), "control character kept in {shown:?}");
    let again = fs.resolve(&TenantPath::root(), shown.as_bytes());
    assert_eq!(again.as_ref().ok(), Some(&path), "{shown:?} does not resolve to itself");
}

/// The filesystem behind [`tenant_path`]: resolution never touches it, but
/// only an opened tree resolves.
fn tenant_fs() -> &'static TenantFs {
    static FS: OnceLock<TenantFs> = OnceLock::new();
    FS.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("passerelle-fuzz-tree-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("inbox")).expect("create the fuzz tree");
        std::fs::create_dir_all(dir.join("outbox")).expect("create the fuzz tree");
        TenantFs::open(&dir).expect("open the fuzz tree")
    })
}

/// One `authorized_keys` line, as an admin or a tenant gives it.
pub fn authorized_key(data: &[u8]) {
    let line = String::from_utf8_lossy(data);
    if let Ok(key) = passerelle_keys::AuthorizedKey::parse(&line) {
        let again = passerelle_keys::AuthorizedKey::parse(&key.to_openssh()).expect("a key's own line parses");
        assert_eq!(again.fingerprint(), key.fingerprint());
        let _label = (key.ssh_keygen_line(), key.bits(), key.type_label());
    }
}

/// The configuration file: loaded (merged with the defaults, checked) from
/// a file holding the input, as `passerelle --config` reads it.
pub fn config_toml(data: &[u8]) {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let path = std::env::temp_dir().join(format!(
        "passerelle-fuzz-config-{}-{}.toml",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let written = std::fs::File::create(&path).and_then(|mut file| file.write_all(data));
    if written.is_ok() {
        let sources = passerelle_config::Sources { file: Some(&path), ..Default::default() };
        if let Err(error) = passerelle_config::Config::load(sources) {
            assert!(!error.to_string().is_empty());
        }
    }
    // Best effort: a leftover file in the temporary directory harms nothing.
    let _removed = std::fs::remove_file(&path);
}

/// An import profile file, as a tenant's `profiles.toml`.
pub fn import_profile(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match Profiles::parse(text) {
        Ok(profiles) => {
            for profile in profiles.iter() {
                let _matches = profiles.matching(profile.pattern());
            }
        }
        Err(error) => assert!(!error.to_string().contains('\n'), "a profile error on several lines: {error}"),
    }
}

/// A CSV file validated against a profile with every column type; the
/// first byte picks the encoding, delimiter, header and mode settings.
pub fn csv_validate(data: &[u8]) {
    let Some((&which, file)) = data.split_first() else { return };
    let profiles = csv_profiles();
    let profile = &profiles[usize::from(which) % profiles.len()];
    let report = passerelle_import::validate(file, profile, &mut Discard).expect("reading a slice cannot fail");
    assert!(report.bytes <= file.len() as u64);
    assert!(report.delivered <= report.rows);
    assert!(report.errors.len() as u64 <= report.error_count);
}

/// One profile per combination of the settings that change how a file is
/// read. Its columns cover every type and option.
fn csv_profiles() -> &'static [Profile] {
    static PROFILES: OnceLock<Vec<Profile>> = OnceLock::new();
    PROFILES.get_or_init(|| {
        let mut profiles = Vec::new();
        for encoding in ["auto", "utf-8", "windows-1252"] {
            for delimiter in ["auto", ";", ",", "\\t", "|"] {
                for header in [true, false] {
                    for (mode, max_bytes) in [("append", "1GiB"), ("upsert", "4KiB")] {
                        let key = if mode == "upsert" { "key = [\"id\"]" } else { "" };
                        let text = format!(
                            "[[import]]\nname = \"p\"\nmatch = \"*.csv\"\ntable = \"t\"\nencoding = \"{encoding}\"\n\
                             delimiter = \"{delimiter}\"\nheader = {header}\nmode = \"{mode}\"\n{key}\n\
                             max_bytes = \"{max_bytes}\"\n{CSV_COLUMNS}"
                        );
                        let parsed = Profiles::parse(&text).expect("the fuzz profiles are valid");
                        profiles.push(parsed.get("p").expect("profile p").clone());
                    }
                }
            }
        }
        profiles
    })
}

/// Every column type, with non-default formats and separators.
const CSV_COLUMNS: &str = r#"columns = [
    { name = "id", type = "integer", required = true },
    { name = "label", type = "text" },
    { name = "amount", type = "decimal", decimal_separator = "," },
    { name = "rate", type = "decimal" },
    { name = "active", type = "boolean" },
    { name = "born", type = "date", format = "%d/%m/%Y" },
    { name = "day", type = "date" },
    { name = "seen", type = "timestamp", format = "%Y-%m-%d %H:%M" },
    { name = "mail", type = "email" },
]
"#;

/// Runs `future` to completion on this thread's runtime (timers enabled,
/// for the PROXY header deadline).
fn block_on<F: Future>(future: F) -> F::Output {
    thread_local! {
        static RUNTIME: RefCell<Option<tokio::runtime::Runtime>> = const { RefCell::new(None) };
    }
    RUNTIME.with(|cell| {
        let mut runtime = cell.borrow_mut();
        let runtime = runtime.get_or_insert_with(|| {
            tokio::runtime::Builder::new_current_thread().enable_time().build().expect("a current-thread runtime")
        });
        runtime.block_on(future)
    })
}

/// Bytes read at most `chunk` (at least 1) at a time, then end of stream:
/// a network peer that splits its writes anywhere.
struct Chunked<'a> {
    rest: &'a [u8],
    chunk: usize,
}

impl<'a> Chunked<'a> {
    fn new(bytes: &'a [u8], chunk: u8) -> Self {
        Self { rest: bytes, chunk: usize::from(chunk.max(1)) }
    }
}

impl AsyncRead for Chunked<'_> {
    fn poll_read(mut self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let n = self.chunk.min(self.rest.len()).min(buf.remaining());
        let (now, later) = self.rest.split_at(n);
        buf.put_slice(now);
        self.rest = later;
        Poll::Ready(Ok(()))
    }
}
