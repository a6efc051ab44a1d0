//! Login grace time. russh has no timer for it (a pending key exchange even
//! keeps a disconnect from being processed), so the TCP stream itself is
//! wrapped: until authentication succeeds, reads fail once the deadline has
//! passed (tripping the connection's tripwire, for the defender) or once the
//! client's address is banned, and russh ends the connection on that error.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

use crate::engine::Tripwire;

/// Tells the stream that the client has authenticated.
#[derive(Clone, Default)]
pub(super) struct LoginFlag(Arc<AtomicBool>);

impl LoginFlag {
    pub(super) fn set(&self) {
        self.0.store(true, Ordering::Release);
    }

    pub(super) fn get(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// Resolves when the connection must be cut if it has not logged in yet.
pub(super) type Cut = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A stream whose reads fail after the grace time, or when `cut` resolves,
/// unless [`LoginFlag`] was set.
pub(super) struct GraceStream<S> {
    inner: S,
    /// Both `None` once logged in.
    deadline: Option<(Pin<Box<Sleep>>, Cut)>,
    logged_in: LoginFlag,
    tripwire: Tripwire,
}

impl<S> GraceStream<S> {
    pub(super) fn new(inner: S, grace: Duration, logged_in: LoginFlag, tripwire: Tripwire, cut: Cut) -> Self {
        Self { inner, deadline: Some((Box::pin(tokio::time::sleep(grace)), cut)), logged_in, tripwire }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for GraceStream<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        if self.deadline.is_some() {
            if self.logged_in.get() {
                self.deadline = None;
            } else if let Some((deadline, cut)) = self.deadline.as_mut() {
                if deadline.as_mut().poll(cx).is_ready() {
                    self.tripwire.trip("login grace time exceeded");
                    return Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, "login grace time exceeded")));
                }
                if cut.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Err(io::Error::new(io::ErrorKind::ConnectionAborted, "address banned")));
                }
            }
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for GraceStream<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;

    fn never() -> Cut {
        Box::pin(std::future::pending())
    }

    #[tokio::test]
    async fn reads_fail_after_the_grace_time_unless_logged_in() {
        let (client, server) = tokio::io::duplex(64);
        let tripwire = Tripwire::default();
        let mut stream =
            GraceStream::new(server, Duration::from_millis(50), LoginFlag::default(), tripwire.clone(), never());
        let mut buf = [0u8; 8];
        let err = stream.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(tripwire.tripped().is_some());
        drop(client);
    }

    #[tokio::test]
    async fn a_logged_in_stream_keeps_reading() {
        let (mut client, server) = tokio::io::duplex(64);
        let logged_in = LoginFlag::default();
        let mut stream =
            GraceStream::new(server, Duration::from_millis(50), logged_in.clone(), Tripwire::default(), never());
        logged_in.set();
        tokio::time::sleep(Duration::from_millis(100)).await;
        client.write_all(b"hi").await.unwrap();
        let mut buf = [0u8; 2];
        stream.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"hi");
    }

    #[tokio::test]
    async fn a_cut_fails_reads_before_login() {
        let (_client, server) = tokio::io::duplex(64);
        let cut: Cut = Box::pin(async {});
        let mut stream =
            GraceStream::new(server, Duration::from_secs(60), LoginFlag::default(), Tripwire::default(), cut);
        let mut buf = [0u8; 8];
        let err = stream.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionAborted);
    }
}
