//! The SFTP operations, one request in, one reply out, against the engine's
//! session (tenant filesystem and audit). Nothing here touches the disk or
//! builds a path itself: every client path goes through `TenantFs::resolve`.
//!
//! Attribute changes: only times are applied (SETSTAT/FSETSTAT with
//! ACMODTIME). Size, permissions and ownership are accepted and ignored
//! without error, because OpenSSH `sftp put -p`, `scp -p` and other clients
//! send them as a matter of course and a failure would abort their transfer;
//! the areas' permissions are the server's to decide.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use bytes::{BufMut, Bytes, BytesMut};

use super::codec::{self, Attrs, NameEntry, Request, StatusCode, open_flags};
use super::listing::{self, system_time};
use crate::engine::fs::{FsError, TenantPath};
use crate::engine::{DirListing, DownloadEnd, IncomingFile, OutgoingFile, Overwrite, Session};

const NO_SYMLINKS: &str = "symlinks are not supported";
const NO_RESUME: &str = "resume/append is not supported; uploads are atomic";

/// Extensions announced in VERSION (name, version), all implemented below.
pub(super) const EXTENSIONS: &[(&str, &str)] = &[
    ("posix-rename@openssh.com", "1"),
    ("statvfs@openssh.com", "2"),
    ("fstatvfs@openssh.com", "2"),
    ("fsync@openssh.com", "1"),
    ("limits@openssh.com", "1"),
];

/// An open handle.
enum Open {
    Read(OutgoingFile),
    Write(WriteHandle),
    Dir(DirHandle),
}

struct WriteHandle {
    file: IncomingFile,
    /// Times set through FSETSTAT before CLOSE (`put -p`), applied after
    /// the upload is committed: the final file does not exist before.
    times: Mutex<Option<(u32, u32)>>,
}

struct DirHandle {
    path: TenantPath,
    /// Read one batch per READDIR, never whole.
    listing: DirListing,
}

/// How many refusals at the door a session remembers (see [`Sftp::refused`]).
const REMEMBERED_REFUSALS: usize = 16;

/// One SFTP session's state: the engine session and the open handles.
pub(super) struct Sftp {
    session: Arc<Session>,
    handles: Mutex<HashMap<Bytes, Arc<Open>>>,
    next_handle: AtomicU64,
    /// The last uploads of this session refused at their close, and why. A
    /// STAT of such a path answers "no such file" with the refusal's
    /// sentence: clients that ignore the CLOSE's status (paramiko) stat the
    /// file they just put, and so report why it is not there.
    refused: Mutex<VecDeque<(TenantPath, String)>>,
    /// A line for the client's standard error, sent with the reply of the
    /// request that set it (see [`Sftp::take_note`]).
    note: Mutex<Option<String>>,
}

/// The reply to one request.
type Response = Bytes;

impl Sftp {
    pub(super) fn new(session: Arc<Session>) -> Self {
        Self {
            session,
            handles: Mutex::new(HashMap::new()),
            next_handle: AtomicU64::new(1),
            refused: Mutex::new(VecDeque::new()),
            note: Mutex::new(None),
        }
    }

    /// Whether `request` must run alone: everything that changes which
    /// handles exist or what is on disk waits for earlier requests and holds
    /// back later ones, so a CLOSE never overtakes the WRITEs before it.
    /// Reads, writes and lookups run concurrently.
    pub(super) fn is_barrier(request: &Request) -> bool {
        match request {
            Request::Read { .. }
            | Request::Write { .. }
            | Request::Fstat { .. }
            | Request::Stat { .. }
            | Request::Lstat { .. }
            | Request::RealPath { .. }
            | Request::ReadDir { .. }
            | Request::ReadLink { .. }
            | Request::Symlink { .. }
            | Request::Unknown { .. } => false,
            Request::Extended { name, .. } => {
                !matches!(&name[..], b"statvfs@openssh.com" | b"fstatvfs@openssh.com" | b"limits@openssh.com")
            }
            _ => true,
        }
    }

    /// Serves one request (INIT is the dispatcher's).
    pub(super) async fn handle(&self, request: Request) -> Response {
        match request {
            Request::Init { .. } => codec::status(0, StatusCode::BadMessage, "duplicate INIT"),
            Request::Open { id, path, flags, .. } => self.open(id, &path, flags).await,
            Request::Close { id, handle } => self.close(id, &handle).await,
            Request::Read { id, handle, offset, len } => self.read(id, &handle, offset, len).await,
            Request::Write { id, handle, offset, data } => self.write(id, &handle, offset, data).await,
            Request::Stat { id, path } | Request::Lstat { id, path } => self.stat(id, &path).await,
            Request::Fstat { id, handle } => self.fstat(id, &handle).await,
            Request::SetStat { id, path, attrs } => self.setstat(id, &path, &attrs).await,
            Request::FSetStat { id, handle, attrs } => self.fsetstat(id, &handle, &attrs).await,
            Request::OpenDir { id, path } => self.opendir(id, &path).await,
            Request::ReadDir { id, handle } => self.readdir(id, &handle).await,
            Request::Remove { id, path } => self.remove(id, &path).await,
            Request::MkDir { id, path } => self.mkdir(id, &path).await,
            Request::RmDir { id, path } => self.rmdir(id, &path).await,
            Request::RealPath { id, path } => self.realpath(id, &path),
            Request::Rename { id, from, to } => self.rename(id, &from, &to, Overwrite::Refuse).await,
            Request::ReadLink { id, .. } | Request::Symlink { id } => {
                codec::status(id, StatusCode::OpUnsupported, NO_SYMLINKS)
            }
            Request::Extended { id, name, data } => self.extended(id, &name, data).await,
            Request::Unknown { id } => codec::status(id, StatusCode::OpUnsupported, "unsupported request"),
        }
    }

    fn resolve(&self, raw: &[u8]) -> Result<TenantPath, FsError> {
        // The session always stands at `/`: relative paths are relative to it.
        self.session.resolve(&TenantPath::root(), raw)
    }

    fn handle_of(&self, handle: &[u8]) -> Option<Arc<Open>> {
        self.handles.lock().unwrap_or_else(PoisonError::into_inner).get(handle).cloned()
    }

    /// Registers an open file or directory; the engine bounded how many a
    /// session holds when it opened them.
    fn insert(&self, id: u32, open: Open) -> Response {
        let mut handles = self.handles.lock().unwrap_or_else(PoisonError::into_inner);
        let key = Bytes::from(self.next_handle.fetch_add(1, Ordering::Relaxed).to_string());
        handles.insert(key.clone(), Arc::new(open));
        codec::handle(id, &key)
    }

    async fn open(&self, id: u32, raw: &[u8], flags: u32) -> Response {
        let path = match self.resolve(raw) {
            Ok(path) => path,
            Err(e) => return fs_status(id, &e),
        };
        if flags & (open_flags::WRITE | open_flags::APPEND) == 0 {
            return match self.session.open_download(&path).await {
                Ok(file) => self.insert(id, Open::Read(file)),
                Err(e) => fs_status(id, &e),
            };
        }
        // Writes: only whole-file atomic uploads; the file that was there (if
        // any) is replaced at CLOSE by exactly the bytes written. Appending
        // (`reput`, curl resume) would edit a file in place, which the import
        // pipeline must never see half-done: refused.
        //
        // CREAT without TRUNC is accepted as a whole-file upload too: it is
        // how OpenSSH's scp (SFTP mode) opens its target, truncating at the
        // end with an FSETSTAT of the size it wrote.
        if flags & open_flags::APPEND != 0 {
            return codec::status(id, StatusCode::OpUnsupported, NO_RESUME);
        }
        let exclusive = flags & open_flags::EXCL != 0 && flags & open_flags::CREAT != 0;
        if flags & open_flags::CREAT == 0 {
            // Without CREAT the file must exist; without TRUNC either, the
            // client means to edit it in place.
            match self.session.stat(&path).await {
                Ok(_) if flags & open_flags::TRUNC != 0 => {}
                Ok(_) => return codec::status(id, StatusCode::OpUnsupported, NO_RESUME),
                Err(e) => return fs_status(id, &e),
            }
        }
        self.forget_refusal(&path);
        match self.session.create_upload(&path, exclusive).await {
            Ok(file) => self.insert(id, Open::Write(WriteHandle { file, times: Mutex::new(None) })),
            Err(e) => fs_status(id, &e),
        }
    }

    async fn close(&self, id: u32, handle: &[u8]) -> Response {
        let removed = self.handles.lock().unwrap_or_else(PoisonError::into_inner).remove(handle);
        let Some(open) = removed else { return bad_handle(id) };
        // CLOSE is a barrier: no other request holds this handle any more.
        let open = match Arc::try_unwrap(open) {
            Ok(open) => open,
            Err(_) => return codec::status(id, StatusCode::Failure, "handle busy"),
        };
        match open {
            Open::Read(file) => {
                self.session.end_download(&file, DownloadEnd::Completed);
                ok(id)
            }
            Open::Dir(_) => ok(id),
            Open::Write(h) => {
                let times = *h.times.lock().unwrap_or_else(PoisonError::into_inner);
                let path = h.file.path().clone();
                match self.session.complete_upload(h.file).await {
                    Ok(()) => {
                        if let Some((atime, mtime)) = times {
                            // Audited by the session; the upload itself stands either way.
                            let _ = self.session.set_times(&path, system_time(atime), system_time(mtime)).await;
                        }
                        ok(id)
                    }
                    Err(e) => {
                        if let FsError::Rejected(sentence) = &e {
                            self.remember_refusal(path, sentence.clone());
                        }
                        fs_status(id, &e)
                    }
                }
            }
        }
    }

    /// The line for the client's standard error left by the last barrier
    /// request, if any. OpenSSH's `sftp` shows only a status code's name
    /// ("close remote: Failure"), never its text; what the SSH channel
    /// carries as standard error, its `ssh` prints, so `sftp -b` shows why.
    pub(super) fn take_note(&self) -> Option<String> {
        self.note.lock().unwrap_or_else(PoisonError::into_inner).take()
    }

    fn remember_refusal(&self, path: TenantPath, sentence: String) {
        *self.note.lock().unwrap_or_else(PoisonError::into_inner) =
            Some(format!("{}: {sentence}\n", path.to_client_string()));
        let mut refused = self.refused.lock().unwrap_or_else(PoisonError::into_inner);
        refused.retain(|(p, _)| *p != path);
        if refused.len() >= REMEMBERED_REFUSALS {
            refused.pop_front();
        }
        refused.push_back((path, sentence));
    }

    fn forget_refusal(&self, path: &TenantPath) {
        self.refused.lock().unwrap_or_else(PoisonError::into_inner).retain(|(p, _)| p != path);
    }

    /// Why the upload of `path` in this session was refused, if it was the last one.
    fn refusal(&self, path: &TenantPath) -> Option<String> {
        let refused = self.refused.lock().unwrap_or_else(PoisonError::into_inner);
        refused.iter().find(|(p, _)| p == path).map(|(_, sentence)| sentence.clone())
    }

    async fn read(&self, id: u32, handle: &[u8], offset: u64, len: u32) -> Response {
        let Some(open) = self.handle_of(handle) else { return bad_handle(id) };
        let Open::Read(file) = &*open else {
            return codec::status(id, StatusCode::Failure, "handle not open for reading");
        };
        match file.read_at(offset, len.min(codec::MAX_DATA)).await {
            Ok(data) if data.is_empty() => codec::status(id, StatusCode::Eof, "end of file"),
            Ok(data) => {
                file.sent(data.len());
                codec::data(id, &data)
            }
            Err(e) => fs_status(id, &e),
        }
    }

    async fn write(&self, id: u32, handle: &[u8], offset: u64, data: Bytes) -> Response {
        let Some(open) = self.handle_of(handle) else { return bad_handle(id) };
        let Open::Write(h) = &*open else {
            return codec::status(id, StatusCode::PermissionDenied, "handle not open for writing");
        };
        reply(id, h.file.write_at(offset, data).await)
    }

    async fn stat(&self, id: u32, raw: &[u8]) -> Response {
        let path = match self.resolve(raw) {
            Ok(path) => path,
            Err(e) => return fs_status(id, &e),
        };
        match self.session.stat(&path).await {
            Ok(stat) => codec::attrs(id, &listing::attrs(&stat)),
            Err(FsError::NotFound) if let Some(sentence) = self.refusal(&path) => {
                codec::status(id, StatusCode::NoSuchFile, &sentence)
            }
            Err(e) => fs_status(id, &e),
        }
    }

    async fn fstat(&self, id: u32, handle: &[u8]) -> Response {
        let Some(open) = self.handle_of(handle) else { return bad_handle(id) };
        let stat = match &*open {
            Open::Read(file) => file.stat().await,
            Open::Write(h) => h.file.stat().await,
            Open::Dir(h) => self.session.stat(&h.path).await,
        };
        match stat {
            Ok(stat) => codec::attrs(id, &listing::attrs(&stat)),
            Err(e) => fs_status(id, &e),
        }
    }

    async fn setstat(&self, id: u32, raw: &[u8], attrs: &Attrs) -> Response {
        let path = match self.resolve(raw) {
            Ok(path) => path,
            Err(e) => return fs_status(id, &e),
        };
        let result = match attrs.times {
            Some((atime, mtime)) => self.session.set_times(&path, system_time(atime), system_time(mtime)).await,
            // Nothing we apply: succeed if the file is there (see module docs).
            None => self.session.stat(&path).await.map(|_| ()),
        };
        reply(id, result)
    }

    async fn fsetstat(&self, id: u32, handle: &[u8], attrs: &Attrs) -> Response {
        let Some(open) = self.handle_of(handle) else { return bad_handle(id) };
        let Some((atime, mtime)) = attrs.times else { return ok(id) };
        match &*open {
            Open::Write(h) => {
                *h.times.lock().unwrap_or_else(PoisonError::into_inner) = Some((atime, mtime));
                ok(id)
            }
            Open::Read(file) => self.set_times(id, file.path(), atime, mtime).await,
            Open::Dir(h) => self.set_times(id, &h.path, atime, mtime).await,
        }
    }

    async fn set_times(&self, id: u32, path: &TenantPath, atime: u32, mtime: u32) -> Response {
        reply(id, self.session.set_times(path, system_time(atime), system_time(mtime)).await)
    }

    async fn opendir(&self, id: u32, raw: &[u8]) -> Response {
        let path = match self.resolve(raw) {
            Ok(path) => path,
            Err(e) => return fs_status(id, &e),
        };
        match self.session.open_dir(&path).await {
            Ok(listing) => self.insert(id, Open::Dir(DirHandle { path, listing })),
            Err(e) => fs_status(id, &e),
        }
    }

    async fn readdir(&self, id: u32, handle: &[u8]) -> Response {
        let Some(open) = self.handle_of(handle) else { return bad_handle(id) };
        let Open::Dir(h) = &*open else { return bad_handle(id) };
        let batch = match h.listing.next_batch().await {
            Ok(batch) => batch,
            Err(e) => return fs_status(id, &e),
        };
        if batch.is_empty() {
            return codec::status(id, StatusCode::Eof, "end of directory");
        }
        let now = SystemTime::now();
        let owner = self.session.login().as_str();
        let entries: Vec<NameEntry> = batch
            .iter()
            .map(|(name, stat)| NameEntry {
                name: name.clone(),
                long_name: stat.long_name(name, owner, now),
                attrs: listing::attrs(stat),
            })
            .collect();
        codec::name(id, &entries)
    }

    async fn remove(&self, id: u32, raw: &[u8]) -> Response {
        let path = match self.resolve(raw) {
            Ok(path) => path,
            Err(e) => return fs_status(id, &e),
        };
        reply(id, self.session.remove(&path).await)
    }

    async fn mkdir(&self, id: u32, raw: &[u8]) -> Response {
        let path = match self.resolve(raw) {
            Ok(path) => path,
            Err(e) => return fs_status(id, &e),
        };
        reply(id, self.session.mkdir(&path).await)
    }

    async fn rmdir(&self, id: u32, raw: &[u8]) -> Response {
        let path = match self.resolve(raw) {
            Ok(path) => path,
            Err(e) => return fs_status(id, &e),
        };
        reply(id, self.session.rmdir(&path).await)
    }

    fn realpath(&self, id: u32, raw: &[u8]) -> Response {
        match self.resolve(raw) {
            Ok(path) => {
                let name = path.to_client_string();
                codec::name(id, &[NameEntry { long_name: name.clone(), name, attrs: Attrs::default() }])
            }
            Err(e) => fs_status(id, &e),
        }
    }

    /// SFTP v3 RENAME refuses an existing target; `posix-rename@openssh.com`
    /// replaces it.
    async fn rename(&self, id: u32, from: &[u8], to: &[u8], overwrite: Overwrite) -> Response {
        let (from, to) = match (self.resolve(from), self.resolve(to)) {
            (Ok(from), Ok(to)) => (from, to),
            (Err(e), _) | (_, Err(e)) => return fs_status(id, &e),
        };
        reply(id, self.session.rename(&from, &to, overwrite).await)
    }

    async fn extended(&self, id: u32, name: &[u8], mut data: Bytes) -> Response {
        match name {
            b"posix-rename@openssh.com" => {
                let (Ok(from), Ok(to)) = (codec::get_string(&mut data), codec::get_string(&mut data)) else {
                    return codec::status(id, StatusCode::BadMessage, "malformed posix-rename");
                };
                self.rename(id, &from, &to, Overwrite::Replace).await
            }
            b"statvfs@openssh.com" => {
                let Ok(raw) = codec::get_string(&mut data) else {
                    return codec::status(id, StatusCode::BadMessage, "malformed statvfs");
                };
                match self.resolve(&raw) {
                    Ok(path) => self.statvfs(id, &path).await,
                    Err(e) => fs_status(id, &e),
                }
            }
            b"fstatvfs@openssh.com" => {
                let Ok(handle) = codec::get_string(&mut data) else {
                    return codec::status(id, StatusCode::BadMessage, "malformed fstatvfs");
                };
                let Some(open) = self.handle_of(&handle) else { return bad_handle(id) };
                let path = match &*open {
                    Open::Read(file) => file.path().clone(),
                    Open::Write(h) => h.file.path().parent(),
                    Open::Dir(h) => h.path.clone(),
                };
                self.statvfs(id, &path).await
            }
            b"fsync@openssh.com" => {
                let Ok(handle) = codec::get_string(&mut data) else {
                    return codec::status(id, StatusCode::BadMessage, "malformed fsync");
                };
                let Some(open) = self.handle_of(&handle) else { return bad_handle(id) };
                match &*open {
                    Open::Write(h) => reply(id, h.file.sync().await),
                    // Nothing to flush for a file only read.
                    _ => ok(id),
                }
            }
            b"limits@openssh.com" => {
                let mut body = BytesMut::with_capacity(32);
                body.put_u64(u64::from(codec::MAX_PACKET));
                body.put_u64(u64::from(codec::MAX_DATA));
                body.put_u64(u64::from(codec::MAX_DATA));
                body.put_u64(u64::from(self.session.max_open_files()));
                extended_reply(id, &body)
            }
            _ => codec::status(id, StatusCode::OpUnsupported, "unsupported extension"),
        }
    }

    async fn statvfs(&self, id: u32, path: &TenantPath) -> Response {
        match self.session.statvfs(path).await {
            Ok(s) => {
                let mut body = BytesMut::with_capacity(88);
                body.put_u64(s.block_size); // f_bsize
                body.put_u64(s.block_size); // f_frsize
                body.put_u64(s.blocks);
                body.put_u64(s.blocks_free);
                body.put_u64(s.blocks_available);
                body.put_u64(s.files);
                body.put_u64(s.files_free);
                body.put_u64(s.files_free); // f_favail
                body.put_u64(0); // f_fsid: not disclosed
                body.put_u64(0); // f_flag
                body.put_u64(s.name_max);
                extended_reply(id, &body)
            }
            Err(e) => fs_status(id, &e),
        }
    }

    /// Ends the session: uploads still open were interrupted (the client
    /// never closed them) and are discarded without an upload-completed
    /// event; downloads still open are recorded as interrupted.
    pub(super) fn abandon_open_handles(&self) {
        let handles: Vec<Arc<Open>> =
            self.handles.lock().unwrap_or_else(PoisonError::into_inner).drain().map(|(_, h)| h).collect();
        for open in handles {
            match &*open {
                Open::Write(h) => self.session.abandon_upload(&h.file),
                Open::Read(file) => self.session.end_download(file, DownloadEnd::Interrupted),
                Open::Dir(_) => {}
            }
            // Dropping the last reference of an upload removes its temporary.
        }
    }
}

fn ok(id: u32) -> Response {
    codec::status(id, StatusCode::Ok, "")
}

fn bad_handle(id: u32) -> Response {
    codec::status(id, StatusCode::Failure, "invalid handle")
}

fn reply(id: u32, result: Result<(), FsError>) -> Response {
    match result {
        Ok(()) => ok(id),
        Err(e) => fs_status(id, &e),
    }
}

fn extended_reply(id: u32, body: &[u8]) -> Response {
    codec::Encoder::new(codec::kind::EXTENDED_REPLY, 4 + body.len()).u32(id).raw(body).finish()
}

/// The status for a filesystem error, with the engine's wording for it.
pub(super) fn fs_status(id: u32, e: &FsError) -> Response {
    let code = match e {
        FsError::NotFound => StatusCode::NoSuchFile,
        FsError::PermissionDenied => StatusCode::PermissionDenied,
        FsError::Unsupported(_) => StatusCode::OpUnsupported,
        _ => StatusCode::Failure,
    };
    codec::status(id, code, &e.client_text())
}
