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

/// A request's place in the order; held until it is served.
enum OrderGuard {
    Shared(#[expect(dead_code, reason = "held for its drop, never read")] OwnedRwLockReadGuard<()>),
    Exclusive(#[expect(dead_code, reason = "held for its drop, never read")] OwnedRwLockWriteGuard<()>),
}

/// A reply on its way to the writer: its place in the order, its bytes,
/// the in-flight permit it frees once sent, and a line for the client's
/// standard error sent just before it.
type Queued = (u64, Bytes, Option<OwnedSemaphorePermit>, Option<String>);

/// Why the channel's session ends early.
#[derive(Debug)]
enum Stop {
    /// The client broke the protocol: exit status 1.
    ProtocolError,
    /// The client stopped reading replies.
    Stuck,
}

/// Serves SFTP on `channel` until the client closes it or the connection
/// ends. `stall_timeout` bounds how long the reader may wait for room in the
/// in-flight window before the session is given up as stuck.
pub(super) async fn run(channel: Channel<Msg>, session: Arc<Session>, stall_timeout: Duration) {
    let (mut incoming, outgoing) = channel.split();
    // 0 when the client ended the session, 1 when it was cut for a protocol
    // error. Clients turn it into their own exit status (scp does).
    let exit_status = Arc::new(AtomicU32::new(0));
    let (replies, reply_rx) = mpsc::unbounded_channel::<Queued>();
    let writer = tokio::spawn(write_replies(outgoing, reply_rx, Arc::clone(&exit_status)));
    let mut dispatcher = Dispatcher {
        sftp: Arc::new(Sftp::new(session)),
        in_flight: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
        order: Arc::new(RwLock::new(())),
        replies,
        sequence: 0,
        initialized: false,
        stall_timeout,
    };
    let mut buf = BytesMut::with_capacity(64 * 1024);
    'session: loop {
        loop {
            let served = match next_request(&mut buf) {
                Ok(Some(request)) => dispatcher.dispatch(request).await,
                Ok(None) => break,
                Err(stop) => Err(stop),
            };
            if let Err(stop) = served {
                if matches!(stop, Stop::ProtocolError) {
                    exit_status.store(1, Ordering::Release);
                }
                break 'session;
            }
        }
        match incoming.wait().await {
            Some(ChannelMsg::Data { data }) => buf.extend_from_slice(&data),
            Some(ChannelMsg::Eof | ChannelMsg::Close) | None => break,
            Some(_) => {}
        }
    }
    drop(incoming);
    dispatcher.finish(writer).await;
}

/// The next whole request in `buf`, if one has arrived.
fn next_request(buf: &mut BytesMut) -> Result<Option<Request>, Stop> {
    let body = match codec::split_packet(buf) {
        Ok(Some(body)) => body,
        Ok(None) => return Ok(None),
        Err(e) => {
            warn!(error = %e, "sftp: bad packet; closing the session");
            return Err(Stop::ProtocolError);
        }
    };
    match codec::decode(body) {
        Ok(request) => Ok(Some(request)),
        Err(e) => {
            warn!(error = %e, "sftp: malformed request; closing the session");
            Err(Stop::ProtocolError)
        }
    }
}

/// Hands replies to SSH in request order, then ends the channel with the
/// session's exit status once every reply is out.
async fn write_replies(
    outgoing: russh::ChannelWriteHalf<Msg>,
    mut replies: mpsc::UnboundedReceiver<Queued>,
    exit_status: Arc<AtomicU32>,
) {
    let mut next = 0u64;
    let mut early = BTreeMap::new();
    while let Some((sequence, reply, permit, note)) = replies.recv().await {
        early.insert(sequence, (reply, permit, note));
        while let Some((reply, permit, note)) = early.remove(&next) {
            // SSH_EXTENDED_DATA_STDERR.
            if let Some(note) = note
                && outgoing.extended_data_bytes(1, note.into_bytes()).await.is_err()
            {
                return;
            }
            if outgoing.data_bytes(reply).await.is_err() {
                return;
            }
            drop(permit);
            next += 1;
        }
    }
    let _ = outgoing.exit_status(exit_status.load(Ordering::Acquire)).await;
    let _ = outgoing.eof().await;
    let _ = outgoing.close().await;
}

/// Admits decoded requests into the in-flight window and the order, and
/// serves them.
struct Dispatcher {
    sftp: Arc<Sftp>,
    in_flight: Arc<Semaphore>,
    order: Arc<RwLock<()>>,
    replies: mpsc::UnboundedSender<Queued>,
    /// The next request's place in the order.
    sequence: u64,
    /// Whether INIT was received.
    initialized: bool,
    stall_timeout: Duration,
}

impl Dispatcher {
    async fn dispatch(&mut self, request: Request) -> Result<(), Stop> {
        if !self.initialized {
            return self.init(request);
        }
        let barrier = Sftp::is_barrier(&request);
        let (permit, guard) = self.admit(barrier).await?;
        let this = self.sequence;
        self.sequence += 1;
        if barrier {
            // Nothing runs beside a barrier, so it runs here: a task to
            // spawn and wake would only add two thread switches.
            let reply = self.sftp.handle(request).await;
            let note = self.sftp.take_note();
            drop(guard);
            let _ = self.replies.send((this, reply, Some(permit), note));
            return Ok(());
        }
        let sftp = Arc::clone(&self.sftp);
        let replies = self.replies.clone();
        let mut work = Box::pin(async move {
            let reply = sftp.handle(request).await;
            drop(sftp);
            drop(guard);
            let _ = replies.send((this, reply, Some(permit), None));
        });
        // What finishes without waiting (reads of small files, lookups)
        // is served here; the rest goes on as a task, which polls it again
        // at once and so registers its own waker.
        if work.as_mut().poll(&mut Context::from_waker(Waker::noop())).is_pending() {
            tokio::spawn(work);
        }
        Ok(())
    }

    /// The first request must be INIT.
    fn init(&mut self, request: Request) -> Result<(), Stop> {
        let Request::Init { version } = request else {
            warn!("sftp: first packet is not INIT; closing the session");
            return Err(Stop::ProtocolError);
        };
        debug!(client_version = version, "sftp: init");
        // Version 3 whatever the client offers: it is the only one
        // OpenSSH and the others speak, and the only one served.
        let _ = self.replies.send((self.sequence, codec::version(EXTENSIONS), None, None));
        self.sequence += 1;
        self.initialized = true;
        Ok(())
    }

    /// A place in the in-flight window, then in the order (alone for a
    /// barrier), within the stall timeout.
    async fn admit(&self, barrier: bool) -> Result<(OwnedSemaphorePermit, OrderGuard), Stop> {
        let admitted = tokio::time::timeout(self.stall_timeout, async {
            let permit = Arc::clone(&self.in_flight).acquire_owned().await.ok()?;
            let guard = if barrier {
                OrderGuard::Exclusive(Arc::clone(&self.order).write_owned().await)
            } else {
                OrderGuard::Shared(Arc::clone(&self.order).read_owned().await)
            };
            Some((permit, guard))
        })
        .await;
        match admitted {
            Ok(Some(admitted)) => Ok(admitted),
            _ => {
                warn!("sftp: client stopped reading replies; closing the session");
                Err(Stop::Stuck)
            }
        }
    }

    /// Lets requests already running finish (they hold the order lock),
    /// discards what the client left open, and lets the writer deliver the
    /// last replies.
    async fn finish(self, writer: tokio::task::JoinHandle<()>) {
        let Self { sftp, order, replies, stall_timeout, .. } = self;
        drop(order.write_owned().await);
        sftp.abandon_open_handles();
        drop(sftp);
        drop(replies);
        let abort = writer.abort_handle();
        if tokio::time::timeout(stall_timeout, writer).await.is_err() {
            debug!("sftp: replies not delivered before the session ended");
            abort.abort();
        }
    }
}
