//! The SFTP request loop of one channel.
//!
//! ```text
//!  channel data ──► reader: frame, decode ──► in-flight permit ──► order lock ──► task: Sftp::handle
//!                   (this task, never waits                        (barrier ops       │ (a barrier runs
//!                    on a reply)                                    exclusive)        ▼  in the reader)
//!  channel data ◄── writer task ◄──────────────── reply + permit ◄────────────────────┘
//! ```
//!
//! Requests are read continuously and served concurrently: OpenSSH keeps 64
//! requests in flight, and serving them one by one (russh-sftp's loop) stalls
//! downloads. At most [`MAX_IN_FLIGHT`] requests are between decoding and
//! their reply being handed to SSH; that, times the packet size, bounds what
//! one session can hold in memory (16 MiB). Requests that change state
//! (open, close, remove, rename, …) are barriers: they wait for everything
//! before them and hold back everything after them, so a CLOSE never commits
//! an upload while WRITEs before it are still running. Since nothing runs
//! beside a barrier, the reader serves it itself.
//!
//! Replies leave in request order, whatever order the work finishes in: the
//! protocol allows any order, but paramiko's pipelined writes (and OpenSSH's
//! own server) count on the order of the requests. The reorder buffer holds
//! at most [`MAX_IN_FLIGHT`] replies, since each still holds its permit.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::task::{Context, Waker};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use russh::server::Msg;
use russh::{Channel, ChannelMsg};
use tokio::sync::{OwnedRwLockReadGuard, OwnedRwLockWriteGuard, OwnedSemaphorePermit, RwLock, Semaphore, mpsc};
use tracing::{debug, warn};

use super::codec::{self, Request};
use super::ops::{EXTENSIONS, Sftp};
use crate::engine::Session;

/// Requests decoded but whose reply has not yet been handed to SSH.
pub(super) const MAX_IN_FLIGHT: usize = 64;

/// A request's place in the order; held, never read, until it is served.
#[allow(dead_code)]
enum OrderGuard {
    Shared(OwnedRwLockReadGuard<()>),
    Exclusive(OwnedRwLockWriteGuard<()>),
}

/// Serves SFTP on `channel` until the client closes it or the connection
/// ends. `stall_timeout` bounds how long the reader may wait for room in the
/// in-flight window before the session is given up as stuck.
pub(super) async fn run(channel: Channel<Msg>, session: Arc<Session>, stall_timeout: Duration) {
    let (mut incoming, outgoing) = channel.split();
    let (reply_tx, mut reply_rx) = mpsc::unbounded_channel::<(u64, Bytes, Option<OwnedSemaphorePermit>)>();
    // 0 when the client ended the session, 1 when it was cut for a protocol
    // error. Clients turn it into their own exit status (scp does).
    let exit_status = Arc::new(AtomicU32::new(0));
    let writer_exit_status = Arc::clone(&exit_status);
    let writer = tokio::spawn(async move {
        let mut next = 0u64;
        let mut early = BTreeMap::new();
        while let Some((sequence, reply, permit)) = reply_rx.recv().await {
            early.insert(sequence, (reply, permit));
            while let Some((reply, permit)) = early.remove(&next) {
                if outgoing.data_bytes(reply).await.is_err() {
                    return;
                }
                drop(permit);
                next += 1;
            }
        }
        let _ = outgoing.exit_status(writer_exit_status.load(Ordering::Acquire)).await;
        let _ = outgoing.eof().await;
        let _ = outgoing.close().await;
    });

    let sftp = Arc::new(Sftp::new(session));
    let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let order = Arc::new(RwLock::new(()));
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let mut initialized = false;
    let mut sequence = 0u64;

    'session: loop {
        loop {
            let body = match codec::split_packet(&mut buf) {
                Ok(Some(body)) => body,
                Ok(None) => break,
                Err(e) => {
                    warn!(error = %e, "sftp: bad packet; closing the session");
                    exit_status.store(1, Ordering::Release);
                    break 'session;
                }
            };
            let request = match codec::decode(body) {
                Ok(request) => request,
                Err(e) => {
                    warn!(error = %e, "sftp: malformed request; closing the session");
                    exit_status.store(1, Ordering::Release);
                    break 'session;
                }
            };
            if !initialized {
                let Request::Init { version } = request else {
                    warn!("sftp: first packet is not INIT; closing the session");
                    exit_status.store(1, Ordering::Release);
                    break 'session;
                };
                debug!(client_version = version, "sftp: init");
                // Version 3 whatever the client offers: it is the only one
                // OpenSSH and the others speak, and the only one served.
                let _ = reply_tx.send((sequence, codec::version(EXTENSIONS), None));
                sequence += 1;
                initialized = true;
                continue;
            }
            let barrier = Sftp::is_barrier(&request);
            let admitted = tokio::time::timeout(stall_timeout, async {
                let permit = Arc::clone(&in_flight).acquire_owned().await.ok()?;
                let guard = if barrier {
                    OrderGuard::Exclusive(Arc::clone(&order).write_owned().await)
                } else {
                    OrderGuard::Shared(Arc::clone(&order).read_owned().await)
                };
                Some((permit, guard))
            })
            .await;
            let Ok(Some((permit, guard))) = admitted else {
                warn!("sftp: client stopped reading replies; closing the session");
                break 'session;
            };
            let this = sequence;
            sequence += 1;
            if barrier {
                // Nothing runs beside a barrier, so it runs here: a task to
                // spawn and wake would only add two thread switches.
                let reply = sftp.handle(request).await;
                drop(guard);
                let _ = reply_tx.send((this, reply, Some(permit)));
                continue;
            }
            let sftp = Arc::clone(&sftp);
            let reply_tx = reply_tx.clone();
            let mut work = Box::pin(async move {
                let reply = sftp.handle(request).await;
                drop(sftp);
                drop(guard);
                let _ = reply_tx.send((this, reply, Some(permit)));
            });
            // What finishes without waiting (reads of small files, lookups)
            // is served here; the rest goes on as a task, which polls it again
            // at once and so registers its own waker.
            if work.as_mut().poll(&mut Context::from_waker(Waker::noop())).is_pending() {
                tokio::spawn(work);
            }
        }
        match incoming.wait().await {
            Some(ChannelMsg::Data { data }) => buf.extend_from_slice(&data),
            Some(ChannelMsg::Eof | ChannelMsg::Close) | None => break,
            Some(_) => {}
        }
    }

    drop(incoming);
    // Let requests already running finish (they hold the order lock), then
    // discard what the client left open.
    drop(Arc::clone(&order).write_owned().await);
    sftp.abandon_open_handles();
    drop(sftp);
    drop(reply_tx);
    let abort = writer.abort_handle();
    if tokio::time::timeout(stall_timeout, writer).await.is_err() {
        debug!("sftp: replies not delivered before the session ended");
        abort.abort();
    }
}
