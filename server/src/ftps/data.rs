//! Data connections: accepted on the passive port, then checked before a
//! byte of data moves. A data connection must
//!
//! 1. come from the control connection's address (no port stealing): a
//!    connection from elsewhere is closed at once and the port goes on
//!    waiting, so that someone racing clients to the passive ports can
//!    neither get their data nor make their transfers fail,
//! 2. speak TLS (there is no plaintext data path: PROT P is the only level),
//! 3. resume the control connection's TLS session when
//!    `ftps.require_session_reuse` is on. The session cache belongs to one
//!    control connection ([`SessionTls`]), so a resumed handshake proves the
//!    data connection comes from the same TLS client; a full handshake, or
//!    a session of another connection, is refused, and leaves nothing in
//!    the cache to resume later. A refused connection is ended with a TLS
//!    close_notify, so that the client reads the 425 reply, not a TLS error.

use std::io;
use std::net::IpAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

use crate::engine::HandshakeFailure;

use super::handshake;
use super::passive::PassivePort;
use super::tls::{DataTls, SessionTls};

/// An established, checked data connection.
pub(crate) type DataStream = TlsStream<TcpStream>;

/// Why no data connection could be used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DataError {
    /// Nobody connected in time, or the handshake stalled.
    #[error("no data connection in time")]
    Timeout,
    /// Not TLS, or a TLS the policy refuses.
    #[error("TLS handshake failed on the data connection: {0}")]
    Handshake(HandshakeFailure),
    /// A full handshake where a resumption of the control session was required.
    #[error("data connection did not resume the control connection's TLS session")]
    NotResumed,
    /// The port could not be accepted on.
    #[error("accept failed: {0}")]
    Accept(io::Error),
}

/// Accepts the data connection for one transfer and runs its checks.
pub(crate) async fn accept(
    port: &PassivePort,
    client: IpAddr,
    tls: &SessionTls,
    require_reuse: bool,
    timeout: Duration,
) -> Result<DataStream, DataError> {
    tokio::time::timeout(timeout, async {
        let mut strangers = 0u32;
        let stream = loop {
            let (stream, from) = port.listener().accept().await.map_err(DataError::Accept)?;
            let from = from.ip().to_canonical();
            if from == client {
                break stream;
            }
            // Logged once per transfer: a flood of them must not flood the log.
            strangers += 1;
            if strangers == 1 {
                tracing::info!(client = %client, from = %from, "ftps: data connection from another address closed");
            }
        };
        let _ = stream.set_nodelay(true);
        let DataTls { stream, resumed_by } =
            tls.accept_data(stream).await.map_err(|e| DataError::Handshake(handshake::classify_data(&e)))?;
        match resumed_by {
            Some(by) => {
                tracing::debug!(client = %client, by = by.as_str(), "ftps: data connection resumed the control session")
            }
            None => tracing::debug!(client = %client, "ftps: data connection made a full TLS handshake"),
        }
        if require_reuse && resumed_by.is_none() {
            // Boxed: only a refused connection pays for its state, not
            // every connection's task.
            Box::pin(refuse(stream)).await;
            return Err(DataError::NotResumed);
        }
        Ok(stream)
    })
    .await
    .unwrap_or(Err(DataError::Timeout))
}

/// Most bytes of a refused data connection read and discarded.
const REFUSED_DRAIN_MAX: usize = 1024 * 1024;
/// Longest time a refused data connection is given to end cleanly.
const REFUSED_DRAIN_TIME: Duration = Duration::from_secs(2);

/// Ends a data connection whose TLS is up but refused, the TLS way: our
/// close_notify, then what the client still sends is read and discarded
/// until its own close_notify (bounded). Dropped at once instead, the
/// connection ends without close_notify, which OpenSSL 3 takes as a fatal
/// error: Python's ftplib then fails with `SSL: SHUTDOWN_WHILE_IN_INIT`, and
/// a client still sending gets a reset, before either reads the 425 reply
/// that says why.
async fn refuse(mut stream: DataStream) {
    let end = async {
        stream.shutdown().await?;
        let mut buf = vec![0; 16 * 1024];
        let mut left = REFUSED_DRAIN_MAX;
        while left > 0 {
            match stream.read(&mut buf).await? {
                0 => break,
                n => left = left.saturating_sub(n),
            }
        }
        io::Result::Ok(())
    };
    let _ = tokio::time::timeout(REFUSED_DRAIN_TIME, end).await;
}
