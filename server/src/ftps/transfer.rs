//! Transfers over a checked data connection (`data.rs`), with the control
//! connection watched meanwhile so that ABOR is served, and the session's
//! end signal so that an administrator's change cuts a transfer too.
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
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::channel::{Context, Control, Malformed, Next};
use super::data::{self, DataError, DataStream};
use super::line::{Command, Line};
use super::listing::Listing;
use super::passive::PassivePort;
use super::reply::{Reply, fs_reply};
use super::tls::SessionTls;
use crate::engine::fs::FsError;
use crate::engine::{DownloadEnd, Ending, Engine, IncomingFile, OutgoingFile, Protocol, Session};

/// Bytes moved per step (the largest read the tenant filesystem serves).
const CHUNK: usize = 256 * 1024;

/// Most bytes read and discarded after a refused upload (see [`drain`]).
const DRAIN_MAX: usize = 64 * 1024 * 1024;
/// Longest time spent discarding them.
const DRAIN_TIME: Duration = Duration::from_secs(5);

/// How long the client has to open the data connection after the 150 reply.
const DATA_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

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
    /// LIST, NLST, MLSD: sent a batch at a time.
    Listing(Listing),
}

/// The passive port and the checks its connection must pass.
pub(super) struct DataSide<'a> {
    /// The port opened by PASV/EPSV.
    port: PassivePort,
    /// The control connection's client address.
    client: IpAddr,
    /// The control connection's client, where failed data handshakes are reported.
    peer: SocketAddr,
    engine: Engine,
    /// The control connection's TLS.
    tls: &'a SessionTls,
    /// `ftps.require_session_reuse`.
    require_reuse: bool,
    /// Longest pause in the data flow.
    stall: Duration,
}

impl<'a> DataSide<'a> {
    /// The data side of the connection `ctx`, on `port`.
    pub(super) fn new(ctx: &'a Context, port: PassivePort) -> Self {
        let config = ctx.engine.config();
        Self {
            port,
            client: ctx.peer.ip().to_canonical(),
            peer: ctx.peer,
            engine: ctx.engine.clone(),
            tls: &ctx.tls,
            require_reuse: config.ftps.require_session_reuse,
            stall: config.limits.idle_timeout,
        }
    }
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
    /// An administrator's change ended the session; what to tell the client.
    Ended(String),
}

/// Runs `work` while reading the control connection: ABOR cancels it, one
/// other command is kept for afterwards (bounded: no more is read until
/// then); the session's end cancels it too.
async fn watch<T>(control: &mut Control, mut ending: Ending, work: impl Future<Output = T>) -> Watched<T> {
    tokio::pin!(work);
    let mut pending = None;
    loop {
        let line = tokio::select! {
            out = &mut work => return Watched::Done(out, pending),
            line = control.next(), if pending.is_none() => line,
            reason = ending.ended() => return Watched::Ended(reason),
        };
        match line {
            Ok(Line::Command(bytes)) => {
                if Command::parse(&bytes).is_some_and(|c| c.verb == "ABOR") {
                    return Watched::Aborted;
                }
                pending = Some(bytes);
            }
            Ok(Line::TooLong) => {
                if control.reply(Malformed::TooLong.reply()).await.is_err() {
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
        Job::Upload(file) => upload(session, control, &data, file).await,
        Job::Download { file, offset } => download(session, control, &data, &file, offset).await,
        Job::Listing(listing) => send_listing(session, control, &data, listing).await,
    }
}

/// STOR: committed if the whole upload arrived, abandoned otherwise.
async fn upload(session: &Session, control: &mut Control, data: &DataSide<'_>, file: IncomingFile) -> Next {
    let work = async {
        let mut stream = connect(data).await?;
        receive(&mut stream, &file, data.stall).await
    };
    let watched = watch(control, session.ending(), work).await;
    let moved = file.received();
    let watched = match watched {
        Watched::Done(Ok(()), pending) => {
            Watched::Done(session.complete_upload(file).await.map_err(Into::into), pending)
        }
        ended => {
            session.abandon_upload(&file);
            ended
        }
    };
    conclude(control, watched, Reply::new(226, format!("upload of {moved} bytes committed"))).await
}

/// RETR from `offset`; the download is recorded as completed or interrupted.
async fn download(
    session: &Session,
    control: &mut Control,
    data: &DataSide<'_>,
    file: &OutgoingFile,
    offset: u64,
) -> Next {
    let work = async {
        let mut stream = connect(data).await?;
        send_file(&mut stream, file, offset, data.stall).await
    };
    let watched = watch(control, session.ending(), work).await;
    let end = match &watched {
        Watched::Done(Ok(()), _) => DownloadEnd::Completed,
        _ => DownloadEnd::Interrupted,
    };
    session.end_download(file, end);
    conclude(control, watched, Reply::new(226, "transfer complete")).await
}

/// LIST, NLST, MLSD: the listing batch by batch, then close_notify.
async fn send_listing(session: &Session, control: &mut Control, data: &DataSide<'_>, mut listing: Listing) -> Next {
    let work = async {
        let mut stream = connect(data).await?;
        loop {
            let text = listing.next_text(session).await?;
            if text.is_empty() {
                break;
            }
            write(&mut stream, &text, data.stall).await?;
        }
        close(&mut stream, data.stall).await
    };
    let watched = watch(control, session.ending(), work).await;
    conclude(control, watched, Reply::new(226, "listing sent")).await
}

/// The replies that end a watched transfer: `done` if it completed, the
/// error's reply if it failed, those of ABOR if aborted.
async fn conclude(control: &mut Control, watched: Watched<Result<(), TransferError>>, done: Reply) -> Next {
    match watched {
        Watched::Done(result, pending) => finish(control, result.map_or_else(|e| e.reply(), |()| done), pending).await,
        Watched::Aborted => aborted(control).await,
        Watched::Gone => Next::Close,
        Watched::Ended(reason) => {
            // The transfer's own end first (RFC 959: 426), then the session's.
            let _ = control.reply(Reply::new(426, "transfer aborted")).await;
            control.last_reply(Reply::new(421, reason)).await;
            Next::Close
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
    match &stream {
        Err(DataError::Handshake(failure)) => data.engine.handshake_failed(data.peer, Protocol::Ftps, failure),
        Err(e) => tracing::info!(client = %data.client, error = %e, "ftps: data connection refused"),
        Ok(_) => {}
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
        if let Err(e) = written {
            drain(stream).await;
            return Err(e.into());
        }
        offset += len;
        current = next?;
    }
    // Our own close_notify; the upload is complete whatever happens to it.
    let _ = close(stream, Duration::from_secs(2)).await;
    Ok(())
}

/// After a refused upload, reads (and discards) what the client still sends,
/// for a little while: a client that finishes sending then reads the
/// refusal on the control connection, where a reset of the data connection
/// under its feet would hide it. One that sends more is cut off.
async fn drain(stream: &mut DataStream) {
    let mut buf = vec![0; CHUNK];
    let mut left = DRAIN_MAX;
    let discard = async {
        while left > 0 {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_TIME, discard).await;
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
