//! PROXY protocol v1 and v2 (HAProxy's), for every front-end. A connection
//! from a trusted proxy must open with a header, read here with a bounded
//! buffer and a deadline; its source address becomes the client's address.
//! Any other connection is served as it is, but its first bytes are watched
//! as they are read: a PROXY header from an untrusted source fails the read.
//! Watching instead of waiting keeps protocols where the server speaks first
//! (FTP) from stalling.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use ppp::{HeaderResult, PartialResult as _, v1, v2};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::Tripwire;

/// A trusted proxy must have sent its whole header within this time.
pub(crate) const HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// A v2 header with TLVs (TLS details, unique ID…) fits easily; a v1 header
/// is at most 107 bytes.
const MAX_HEADER: usize = 1024;

const V1_SIGNATURE: &[u8] = b"PROXY";
const V2_SIGNATURE: &[u8] = b"\r\n\r\n\0\r\nQUIT\n";

/// Why a connection was dropped while its PROXY header was read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ProxyError {
    /// No complete header within [`HEADER_TIMEOUT`].
    #[error("no PROXY header from the trusted proxy within {HEADER_TIMEOUT:?}")]
    Timeout,
    /// The bytes are not a PROXY header, or one too long.
    #[error("malformed PROXY header: {0}")]
    Malformed(String),
    /// The connection failed or closed first.
    #[error("connection lost while reading the PROXY header: {0}")]
    Io(#[from] io::Error),
}

/// The client's address as every check and record should see it: an
/// IPv4-mapped IPv6 address (dual-stack listener) is the IPv4 address.
pub(crate) fn canonical(peer: SocketAddr) -> SocketAddr {
    match peer.ip() {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), peer.port()),
            None => peer,
        },
        IpAddr::V4(_) => peer,
    }
}

/// Reads the PROXY header a trusted proxy sends first. Returns the client's
/// address (`None` for a proxy's own health check: v1 `UNKNOWN`, v2 `LOCAL`
/// or a non-IP family) and the bytes read past the header.
pub(crate) async fn read_header<S: AsyncRead + Unpin>(
    stream: &mut S,
) -> Result<(Option<SocketAddr>, Vec<u8>), ProxyError> {
    tokio::time::timeout(HEADER_TIMEOUT, read_header_untimed(stream)).await.map_err(|_| ProxyError::Timeout)?
}

async fn read_header_untimed<S: AsyncRead + Unpin>(
    stream: &mut S,
) -> Result<(Option<SocketAddr>, Vec<u8>), ProxyError> {
    let mut buf = vec![0u8; MAX_HEADER];
    let mut len = 0;
    loop {
        let n = stream.read(&mut buf[len..]).await?;
        if n == 0 {
            return Err(ProxyError::Io(io::ErrorKind::UnexpectedEof.into()));
        }
        len += n;
        let parsed = HeaderResult::parse(&buf[..len]);
        if parsed.is_incomplete() {
            if len == MAX_HEADER {
                return Err(ProxyError::Malformed("header too long".into()));
            }
            continue;
        }
        let (source, used) = match parsed {
            HeaderResult::V1(Ok(header)) => (v1_source(&header.addresses), header.header.len()),
            HeaderResult::V2(Ok(header)) => (v2_source(&header), header.len()),
            HeaderResult::V1(Err(e)) => return Err(ProxyError::Malformed(e.to_string())),
            HeaderResult::V2(Err(e)) => return Err(ProxyError::Malformed(e.to_string())),
        };
        return Ok((source.map(canonical), buf[used..len].to_vec()));
    }
}

fn v1_source(addresses: &v1::Addresses) -> Option<SocketAddr> {
    match addresses {
        v1::Addresses::Tcp4(a) => Some(SocketAddr::new(a.source_address.into(), a.source_port)),
        v1::Addresses::Tcp6(a) => Some(SocketAddr::new(a.source_address.into(), a.source_port)),
        v1::Addresses::Unknown => None,
    }
}

fn v2_source(header: &v2::Header<'_>) -> Option<SocketAddr> {
    if header.command == v2::Command::Local {
        return None;
    }
    match header.addresses {
        v2::Addresses::IPv4(a) => Some(SocketAddr::new(a.source_address.into(), a.source_port)),
        v2::Addresses::IPv6(a) => Some(SocketAddr::new(a.source_address.into(), a.source_port)),
        v2::Addresses::Unspecified | v2::Addresses::Unix(_) => None,
    }
}

/// The client's TCP stream as a front-end reads it: first the bytes read past
/// a PROXY header, then the socket; for untrusted sources, the first bytes
/// are checked for a PROXY signature, which trips `tripwire` and fails the read.
pub(crate) struct ClientStream {
    inner: TcpStream,
    pending: Vec<u8>,
    offset: usize,
    /// First bytes of an untrusted connection, kept until they cannot be a
    /// PROXY signature any more (then `None`).
    sniffed: Option<Vec<u8>>,
    tripwire: Tripwire,
}

impl ClientStream {
    /// A stream from a trusted proxy whose header was read; `pending` follows it.
    pub(crate) fn proxied(inner: TcpStream, pending: Vec<u8>, tripwire: Tripwire) -> Self {
        Self { inner, pending, offset: 0, sniffed: None, tripwire }
    }

    /// A stream straight from its client, which must not send a PROXY header.
    pub(crate) fn direct(inner: TcpStream, tripwire: Tripwire) -> Self {
        Self { inner, pending: Vec::new(), offset: 0, sniffed: Some(Vec::new()), tripwire }
    }

    /// The socket, e.g. to set options.
    pub(crate) fn socket(&self) -> &TcpStream {
        &self.inner
    }

    /// Looks at newly read bytes; `true` when they open a PROXY header.
    fn sniff(&mut self, fresh: &[u8]) -> bool {
        let Some(seen) = self.sniffed.as_mut() else { return false };
        let room = V2_SIGNATURE.len() - seen.len();
        seen.extend_from_slice(&fresh[..fresh.len().min(room)]);
        let could_be = |signature: &[u8]| {
            let n = seen.len().min(signature.len());
            seen[..n] == signature[..n]
        };
        let header = (seen.len() >= V1_SIGNATURE.len() && seen.starts_with(V1_SIGNATURE))
            || (seen.len() >= V2_SIGNATURE.len() && seen.starts_with(V2_SIGNATURE));
        if header || !(could_be(V1_SIGNATURE) || could_be(V2_SIGNATURE)) {
            self.sniffed = None;
        }
        header
    }
}

impl AsyncRead for ClientStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        if self.offset < self.pending.len() {
            let n = buf.remaining().min(self.pending.len() - self.offset);
            let start = self.offset;
            buf.put_slice(&self.pending[start..start + n]);
            self.offset += n;
            if self.offset == self.pending.len() {
                self.pending = Vec::new();
                self.offset = 0;
            }
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if self.sniffed.is_some() && matches!(polled, Poll::Ready(Ok(()))) && self.sniff(&buf.filled()[before..]) {
            self.tripwire.trip("PROXY header from an untrusted source");
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "PROXY header from an untrusted source",
            )));
        }
        polled
    }
}

impl AsyncWrite for ClientStream {
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
    use tokio::io::AsyncWriteExt as _;
    use tokio::net::TcpListener;

    use super::*;

    async fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (client, server)
    }

    #[tokio::test]
    async fn a_v1_header_gives_the_client_address_and_keeps_what_follows() {
        let (mut client, mut server) = pair().await;
        client.write_all(b"PROXY TCP4 192.0.2.7 127.0.0.1 5555 22\r\nSSH-2.0-x\r\n").await.unwrap();
        let (source, rest) = read_header(&mut server).await.unwrap();
        assert_eq!(source, Some("192.0.2.7:5555".parse().unwrap()));
        let mut stream = ClientStream::proxied(server, rest, Tripwire::default());
        let mut line = [0u8; 11];
        stream.read_exact(&mut line).await.unwrap();
        assert_eq!(&line, b"SSH-2.0-x\r\n");
    }

    #[tokio::test]
    async fn a_v2_header_gives_the_client_address() {
        let (mut client, mut server) = pair().await;
        let mut header = V2_SIGNATURE.to_vec();
        header.extend_from_slice(&[0x21, 0x11, 0, 12, 198, 51, 100, 4, 127, 0, 0, 1, 0x1f, 0x90, 0, 22]);
        client.write_all(&header).await.unwrap();
        let (source, rest) = read_header(&mut server).await.unwrap();
        assert_eq!(source, Some("198.51.100.4:8080".parse().unwrap()));
        assert!(rest.is_empty());
    }

    #[tokio::test]
    async fn garbage_instead_of_a_header_is_refused() {
        let (mut client, mut server) = pair().await;
        client.write_all(b"SSH-2.0-OpenSSH_9.9\r\n").await.unwrap();
        assert!(matches!(read_header(&mut server).await, Err(ProxyError::Malformed(_))));
    }

    #[tokio::test]
    async fn an_untrusted_header_fails_the_read_and_trips() {
        let (mut client, server) = pair().await;
        client.write_all(b"PROXY TCP4 192.0.2.7 127.0.0.1 5555 22\r\n").await.unwrap();
        let tripwire = Tripwire::default();
        let mut stream = ClientStream::direct(server, tripwire.clone());
        let mut buf = [0u8; 64];
        assert!(stream.read(&mut buf).await.is_err());
        assert!(tripwire.tripped().is_some());
    }

    #[tokio::test]
    async fn a_direct_client_reads_through() {
        let (mut client, server) = pair().await;
        client.write_all(b"SSH-2.0-x\r\n").await.unwrap();
        let tripwire = Tripwire::default();
        let mut stream = ClientStream::direct(server, tripwire.clone());
        let mut line = [0u8; 11];
        stream.read_exact(&mut line).await.unwrap();
        assert_eq!(&line, b"SSH-2.0-x\r\n");
        assert!(tripwire.tripped().is_none());
    }

    #[test]
    fn ipv4_mapped_addresses_are_ipv4() {
        let mapped: SocketAddr = "[::ffff:192.0.2.1]:22".parse().unwrap();
        assert_eq!(canonical(mapped), "192.0.2.1:22".parse().unwrap());
    }
}
