//! Login grace time. russh has no timer for it (a pending key exchange even
//! keeps a disconnect from being processed), so the TCP stream itself is
//! wrapped: until authentication succeeds, reads fail once the deadline has
//! passed, and russh ends the connection on that error.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// Tells the stream that the client has authenticated.
#[derive(Clone, Default)]
pub(super) struct LoggedIn(Arc<AtomicBool>);

impl LoggedIn {
    pub(super) fn set(&self) {
        self.0.store(true, Ordering::Release);
    }

    fn get(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// A stream whose reads fail after the grace time unless [`LoggedIn`] was set.
pub(super) struct GraceStream<S> {
    inner: S,
    deadline: Option<Pin<Box<Sleep>>>,
    logged_in: LoggedIn,
}

impl<S> GraceStream<S> {
    pub(super) fn new(inner: S, grace: Duration, logged_in: LoggedIn) -> Self {
        Self { inner, deadline: Some(Box::pin(tokio::time::sleep(grace))), logged_in }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for GraceStream<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        if self.deadline.is_some() {
            if self.logged_in.get() {
                self.deadline = None;
            } else if let Some(deadline) = self.deadline.as_mut()
                && deadline.as_mut().poll(cx).is_ready()
            {
                return Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, "login grace time exceeded")));
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

    #[tokio::test]
    async fn reads_fail_after_the_grace_time_unless_logged_in() {
        let (client, server) = tokio::io::duplex(64);
        let mut stream = GraceStream::new(server, Duration::from_millis(50), LoggedIn::default());
        let mut buf = [0u8; 8];
        let err = stream.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        drop(client);
    }

    #[tokio::test]
    async fn a_logged_in_stream_keeps_reading() {
        let (mut client, server) = tokio::io::duplex(64);
        let logged_in = LoggedIn::default();
        let mut stream = GraceStream::new(server, Duration::from_millis(50), logged_in.clone());
        logged_in.set();
        tokio::time::sleep(Duration::from_millis(100)).await;
        client.write_all(b"hi").await.unwrap();
        let mut buf = [0u8; 2];
        stream.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"hi");
    }
}
