//! Transfers over a checked data connection (`data.rs`), with the control
//! connection watched meanwhile so that ABOR is served.
//!
//! An upload is committed only when the client ended the data connection
//! with a TLS close_notify: rustls reports a clean end of stream only then,
//! and anything else (a reset, a FIN without close_notify, a stall, ABOR) is
//! an aborted upload — recorded, no upload-completed event, and the hidden
//! temporary removed, so nothing partial is ever left to import.
//!
//! Reading and writing overlap: while one buffer goes to disk (or to the
//! network), the next one is filled.

use std::io;
use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::control::Control;
use super::data::{self, DataError, DataStream};
use super::line::{Command, Line};
use super::listing;
use super::passive::PassivePort;
use super::reply::Reply;
use super::session::{Next, fs_reply};
use super::tls::SessionTls;
use crate::engine::fs::{FsError, TenantPath};
use crate::engine::{DownloadEnd, IncomingFile, OutgoingFile, Session};

/// Bytes moved per step (the largest read the tenant filesystem serves).
const CHUNK: usize = 256 * 1024;

/// How long the client has to open the data connection after the 150 reply.
const DATA_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// Which listing a command wants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ListKind {
    /// `LIST`: `ls -l` lines.
    List,
    /// `NLST`: names only.
    Nlst,
    /// `MLSD`: RFC 3659 facts.
    Mlsd,
}

/// What a transfer moves; prepared (file opened, upload started) before the
/// 150 reply so that errors are answered without a data connection.
pub(super) enum Job {
    /// STOR.
    Upload(IncomingFile),
    /// RETR, from `offset` (REST).
    Download {
        /// The open file.
        file: OutgoingFile,
        /// First byte sent.
        offset: u64,
    },
    /// LIST, NLST, MLSD.
    Listing {
        /// The listing, CRLF-terminated lines.
        text: Vec<u8>,
    },
}

/// The passive port and the checks its connection must pass.
pub(super) struct DataSide<'a> {
    /// The port opened by PASV/EPSV.
    pub(super) port: PassivePort,
    /// The control connection's client address.
    pub(super) client: std::net::IpAddr,
    /// The control connection's TLS.
    pub(super) tls: &'a SessionTls,
    /// `ftps.require_session_reuse`.
    pub(super) require_reuse: bool,
    /// Longest pause in the data flow.
    pub(super) stall: Duration,
}

/// Why a transfer did not complete.
#[derive(Debug, thiserror::Error)]
enum TransferError {
    #[error("{0}")]
    Data(#[from] DataError),
    #[error("data connection broken: {0}")]
    Cut(io::Error),
    #[error("data connection stalled")]
    Stall,
    #[error("{0}")]
    Fs(#[from] FsError),
}

impl TransferError {
    fn reply(&self) -> Reply {
        match self {
            Self::Data(e) => Reply::new(425, format!("cannot use the data connection: {e}")),
            Self::Cut(_) | Self::Stall => Reply::new(426, format!("{self}; transfer aborted")),
            Self::Fs(e) => fs_reply(e),
        }
    }
}

/// How watching the control connection during a transfer ended.
enum Watched<T> {
    /// The transfer ended; a command that arrived meanwhile waits.
    Done(T, Option<Vec<u8>>),
    /// ABOR.
    Aborted,
    /// The control connection is gone.
    Gone,
}

/// Runs `work` while reading the control connection: ABOR cancels it, one
/// other command is kept for afterwards (bounded: no more is read until then).
async fn watch<T>(control: &mut Control, work: impl Future<Output = T>) -> Watched<T> {
    tokio::pin!(work);
    let mut pending = None;
    loop {
        let line = tokio::select! {
            out = &mut work => return Watched::Done(out, pending),
            line = control.next(), if pending.is_none() => line,
        };
        match line {
            Ok(Line::Command(bytes)) => {
                if Command::parse(&bytes).is_some_and(|c| c.verb == "ABOR") {
                    return Watched::Aborted;
                }
                pending = Some(bytes);
            }
            Ok(Line::TooLong) => {
                if control.reply(Reply::new(500, "command line too long")).await.is_err() {
                    return Watched::Gone;
                }
            }
            Ok(Line::Closed) | Err(_) => return Watched::Gone,
        }
    }
}

/// Runs one transfer: 150, data connection, bytes, final reply.
pub(super) async fn run(session: &Session, control: &mut Control, data: DataSide<'_>, job: Job) -> Next {
    let opening = Reply::new(150, "opening the TLS data connection");
    if control.reply(opening).await.is_err() {
        if let Job::Upload(file) = &job {
            session.abandon_upload(file);
        }
        return Next::Close;
    }
    match job {
        Job::Upload(file) => {
            let work = async {
                let mut stream = connect(&data).await?;
                receive(&mut stream, &file, data.stall).await
            };
            let watched = watch(control, work).await;
            let (reply, pending) = match watched {
                Watched::Done(Ok(()), pending) => {
                    let moved = file.received();
                    match session.complete_upload(file).await {
                        Ok(()) => (Reply::new(226, format!("upload of {moved} bytes committed")), pending),
                        Err(e) => (fs_reply(&e), pending),
                    }
                }
                Watched::Done(Err(e), pending) => {
                    session.abandon_upload(&file);
                    (e.reply(), pending)
                }
                Watched::Aborted => {
                    session.abandon_upload(&file);
                    return aborted(control).await;
                }
                Watched::Gone => {
                    session.abandon_upload(&file);
                    return Next::Close;
                }
            };
            finish(control, reply, pending).await
        }
        Job::Download { file, offset } => {
            let work = async {
                let mut stream = connect(&data).await?;
                send_file(&mut stream, &file, offset, data.stall).await
            };
            let watched = watch(control, work).await;
            let end = match &watched {
                Watched::Done(Ok(()), _) => DownloadEnd::Completed,
                _ => DownloadEnd::Interrupted,
            };
            session.end_download(&file, end);
            match watched {
                Watched::Done(Ok(()), pending) => finish(control, Reply::new(226, "transfer complete"), pending).await,
                Watched::Done(Err(e), pending) => finish(control, e.reply(), pending).await,
                Watched::Aborted => aborted(control).await,
                Watched::Gone => Next::Close,
            }
        }
        Job::Listing { text } => {
            let work = async {
                let mut stream = connect(&data).await?;
                write(&mut stream, &text, data.stall).await?;
                close(&mut stream, data.stall).await
            };
            match watch(control, work).await {
                Watched::Done(Ok(()), pending) => finish(control, Reply::new(226, "listing sent"), pending).await,
                Watched::Done(Err(e), pending) => finish(control, e.reply(), pending).await,
                Watched::Aborted => aborted(control).await,
                Watched::Gone => Next::Close,
            }
        }
    }
}

/// Sends the final reply; then the loop handles the command that arrived
/// during the transfer, if any.
async fn finish(control: &mut Control, reply: Reply, pending: Option<Vec<u8>>) -> Next {
    match (control.reply(reply).await, pending) {
        (Err(_), _) => Next::Close,
        (Ok(()), Some(line)) => Next::Pending(line),
        (Ok(()), None) => Next::Continue,
    }
}

/// ABOR during a transfer: 426 for the transfer, 226 for the ABOR (RFC 959).
async fn aborted(control: &mut Control) -> Next {
    if control.reply(Reply::new(426, "transfer aborted")).await.is_err()
        || control.reply(Reply::new(226, "ABOR done")).await.is_err()
    {
        return Next::Close;
    }
    Next::Continue
}

async fn connect(data: &DataSide<'_>) -> Result<DataStream, TransferError> {
    let stream = data::accept(&data.port, data.client, data.tls, data.require_reuse, DATA_CONNECT_TIMEOUT).await;
    if let Err(e) = &stream {
        tracing::info!(client = %data.client, error = %e, "ftps: data connection refused");
    }
    Ok(stream?)
}

/// Reads the upload until the client's close_notify.
async fn receive(stream: &mut DataStream, file: &IncomingFile, stall: Duration) -> Result<(), TransferError> {
    let mut current = fill(stream, stall).await?;
    let mut offset = 0u64;
    while !current.is_empty() {
        let len = current.len() as u64;
        let (written, next) = tokio::join!(file.write_at(offset, current), fill(stream, stall));
        written?;
        offset += len;
        current = next?;
    }
    // Our own close_notify; the upload is complete whatever happens to it.
    let _ = close(stream, Duration::from_secs(2)).await;
    Ok(())
}

/// The next chunk of the stream, shorter only where it ends; empty only at a
/// clean end (rustls returns an error for an end without close_notify). A
/// buffer of its own each time, handed to the upload as it is.
async fn fill(stream: &mut DataStream, stall: Duration) -> Result<Bytes, TransferError> {
    let mut buf = BytesMut::with_capacity(CHUNK);
    while buf.len() < CHUNK {
        match tokio::time::timeout(stall, stream.read_buf(&mut buf)).await {
            Err(_) => return Err(TransferError::Stall),
            Ok(Ok(0)) => break,
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(TransferError::Cut(e)),
        }
    }
    Ok(buf.freeze())
}

/// Sends a file from `offset`, then close_notify.
async fn send_file(
    stream: &mut DataStream,
    file: &OutgoingFile,
    mut offset: u64,
    stall: Duration,
) -> Result<(), TransferError> {
    let chunk = u32::try_from(CHUNK).unwrap_or(u32::MAX);
    let mut current = file.read_at(offset, chunk).await?;
    while !current.is_empty() {
        let after = offset + current.len() as u64;
        let (written, next) = tokio::join!(write(stream, &current, stall), file.read_at(after, chunk));
        written?;
        file.sent(current.len());
        offset = after;
        current = next?;
    }
    close(stream, stall).await
}

async fn write(stream: &mut DataStream, data: &[u8], stall: Duration) -> Result<(), TransferError> {
    match tokio::time::timeout(stall, stream.write_all(data)).await {
        Err(_) => Err(TransferError::Stall),
        Ok(Err(e)) => Err(TransferError::Cut(e)),
        Ok(Ok(())) => Ok(()),
    }
}

/// close_notify and FIN: how the client knows the data is complete.
async fn close(stream: &mut DataStream, stall: Duration) -> Result<(), TransferError> {
    match tokio::time::timeout(stall, stream.shutdown()).await {
        Err(_) => Err(TransferError::Stall),
        Ok(Err(e)) => Err(TransferError::Cut(e)),
        Ok(Ok(())) => Ok(()),
    }
}

/// The lines of a listing of `path` (a directory, or a single file for LIST
/// and NLST).
pub(super) async fn listing_lines(
    session: &Session,
    path: &TenantPath,
    kind: ListKind,
) -> Result<Vec<String>, FsError> {
    let stat = session.stat(path).await?;
    let now = SystemTime::now();
    let owner = session.login().as_str();
    if !stat.is_dir {
        let name = path.file_name().unwrap_or_default();
        return match kind {
            ListKind::List => Ok(vec![listing::list_line(name, &stat, owner, now)]),
            ListKind::Nlst => Ok(vec![name.to_owned()]),
            ListKind::Mlsd => Err(FsError::NotADirectory),
        };
    }
    let entries = session.read_dir(path).await?;
    let mut lines = Vec::with_capacity(entries.len());
    for (name, stat) in &entries {
        lines.push(match kind {
            ListKind::List => listing::list_line(name, stat, owner, now),
            ListKind::Nlst => name.clone(),
            ListKind::Mlsd => {
                let child = session.resolve(path, name.as_bytes())?;
                listing::facts(name, stat, &child)
            }
        });
    }
    Ok(lines)
}
