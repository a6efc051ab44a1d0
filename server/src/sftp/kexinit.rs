//! What the client sent before its keys were in use: its identification
//! line and its plaintext packets up to SSH_MSG_NEWKEYS (RFC 4253 §4.2, §6,
//! §7). russh does not show them, yet a failed handshake is only
//! explainable with them ("client offers diffie-hellman-group14-sha1
//! only", "it began with GET / HTTP/1.1"), and only NEWKEYS tells that the
//! client finished its key exchange.
//!
//! ```text
//!  TCP stream ─► Tapped ─► GraceStream ─► russh
//!                  │ copies what russh reads, at most MAX_OBSERVED bytes,
//!                  ▼ until NEWKEYS, DISCONNECT or nonsense
//!               Observer ─► ClientHello { first bytes, identification, KEXINIT lists, NEWKEYS seen }
//! ```
//!
//! Every length read from the client is checked against the bytes kept
//! before use; nothing is allocated by a length the client gives.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The most bytes of a connection kept for the observation; past it the
/// observer stops looking (a KEXINIT is far smaller; RFC 4253 §6.1 only
/// asks for 35000-byte packets).
pub(crate) const MAX_OBSERVED: usize = 64 * 1024;
/// The longest identification line, CR LF included (RFC 4253 §4.2).
const MAX_ID_LINE: usize = 255;
/// How many of the client's first bytes are kept to show what it sent.
const FIRST_BYTES: usize = 32;

/// SSH message numbers the observer acts on (RFC 4250 §4.1.2).
const MSG_DISCONNECT: u8 = 1;
const MSG_KEXINIT: u8 = 20;
const MSG_NEWKEYS: u8 = 21;
/// Key exchange method specific messages (30 to 49): the client's key
/// exchange init among them, which the server answers with its host key.
const MSG_KEX_METHOD: std::ops::RangeInclusive<u8> = 30..=49;

/// The name-lists of the client's SSH_MSG_KEXINIT that the server matches
/// (RFC 4253 §7.1), client to server where there are two.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct KexInit {
    /// `kex_algorithms`.
    pub(crate) kex: Vec<String>,
    /// `server_host_key_algorithms`.
    pub(crate) host_key: Vec<String>,
    /// `encryption_algorithms_client_to_server`.
    pub(crate) ciphers: Vec<String>,
    /// `mac_algorithms_client_to_server`.
    pub(crate) macs: Vec<String>,
    /// `compression_algorithms_client_to_server`.
    pub(crate) compression: Vec<String>,
}

/// An SSH_MSG_DISCONNECT (RFC 4253 §11.1).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Disconnect {
    /// The reason code (9: host key not verifiable).
    pub(crate) code: u32,
    /// The description (lossy UTF-8, at most 255 bytes of it).
    pub(crate) description: String,
}

/// What the client sent before its new keys took effect, as far as it was
/// seen.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct ClientHello {
    /// Its first bytes (at most 32), whatever they are.
    pub(crate) first_bytes: Vec<u8>,
    /// Its identification line without the line end (lossy UTF-8), once a
    /// whole line arrived.
    pub(crate) identification: Option<String>,
    /// Its first SSH_MSG_KEXINIT, when well-formed.
    pub(crate) kexinit: Option<KexInit>,
    /// Whether it sent its key exchange init (the server's reply carries
    /// the host key).
    pub(crate) kex_started: bool,
    /// The SSH_MSG_DISCONNECT it sent before NEWKEYS, if any.
    pub(crate) disconnect: Option<Disconnect>,
    /// Whether it sent SSH_MSG_NEWKEYS: its side of the key exchange is done.
    pub(crate) newkeys: bool,
}

/// Where the observer is in the client's byte stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    /// Looking for the end of the identification line; bytes before
    /// `scanned` hold no LF.
    Identification { scanned: usize },
    /// The next plaintext packet starts at this offset.
    Packet { at: usize },
    /// Nothing more to learn (or too much to keep): no longer looking.
    Done,
}

/// Follows the client's bytes as they are read, keeping at most
/// [`MAX_OBSERVED`] of them, and only until the observation is complete.
#[derive(Debug)]
pub(crate) struct Observer {
    kept: Vec<u8>,
    stage: Stage,
    hello: ClientHello,
}

impl Default for Observer {
    fn default() -> Self {
        Self { kept: Vec::new(), stage: Stage::Identification { scanned: 0 }, hello: ClientHello::default() }
    }
}

impl Observer {
    /// Takes the next bytes the client sent.
    pub(crate) fn feed(&mut self, bytes: &[u8]) {
        let first = FIRST_BYTES.saturating_sub(self.hello.first_bytes.len()).min(bytes.len());
        self.hello.first_bytes.extend_from_slice(&bytes[..first]);
        if self.stage == Stage::Done {
            return;
        }
        let room = MAX_OBSERVED - self.kept.len();
        self.kept.extend_from_slice(&bytes[..room.min(bytes.len())]);
        self.advance();
        if self.stage != Stage::Done && self.kept.len() >= MAX_OBSERVED {
            self.stage = Stage::Done;
        }
        if self.stage == Stage::Done {
            // What was learnt is in `hello`; the raw bytes are no longer needed.
            self.kept = Vec::new();
        }
    }

    /// Whether the observer stopped looking (the first bytes to show
    /// included, whatever the split).
    pub(crate) fn done(&self) -> bool {
        self.stage == Stage::Done && self.hello.first_bytes.len() >= FIRST_BYTES
    }

    /// What was learnt so far.
    pub(crate) fn hello(&self) -> &ClientHello {
        &self.hello
    }

    fn advance(&mut self) {
        loop {
            match self.stage {
                Stage::Identification { scanned } => match self.identification(scanned) {
                    Some(stage) => self.stage = stage,
                    None => return,
                },
                Stage::Packet { at } => match self.packet(at) {
                    Some(stage) => self.stage = stage,
                    None => return,
                },
                Stage::Done => return,
            }
        }
    }

    /// The next stage once the identification line is decided, `None` while
    /// more bytes are needed.
    fn identification(&mut self, scanned: usize) -> Option<Stage> {
        let kept = &self.kept;
        let shown = kept.len().min(4);
        if kept[..shown] != b"SSH-"[..shown] {
            // Not SSH (RFC 4253 §4.2 lets only servers send other lines first).
            return Some(Stage::Done);
        }
        let window = &kept[scanned..kept.len().min(MAX_ID_LINE)];
        let Some(lf) = window.iter().position(|&b| b == b'\n').map(|i| scanned + i) else {
            if kept.len() >= MAX_ID_LINE {
                return Some(Stage::Done);
            }
            self.stage = Stage::Identification { scanned: kept.len() };
            return None;
        };
        let line = kept[..lf].strip_suffix(b"\r").unwrap_or(&kept[..lf]);
        let line = String::from_utf8_lossy(line).into_owned();
        let is_v2 = line.starts_with("SSH-2.0-") || line.starts_with("SSH-1.99-");
        self.hello.identification = Some(line);
        Some(if is_v2 { Stage::Packet { at: lf + 1 } } else { Stage::Done })
    }

    /// The next stage once the packet at `at` is read whole, `None` while
    /// more bytes are needed.
    fn packet(&mut self, at: usize) -> Option<Stage> {
        let header = self.kept.get(at..at.checked_add(5)?)?;
        let length = usize::try_from(u32::from_be_bytes([header[0], header[1], header[2], header[3]])).ok()?;
        let padding = usize::from(header[4]);
        let Some(end) =
            at.checked_add(4).and_then(|start| start.checked_add(length)).filter(|&end| end <= MAX_OBSERVED)
        else {
            return Some(Stage::Done);
        };
        let Some(payload_length) = length.checked_sub(padding + 1).filter(|&n| n > 0) else {
            return Some(Stage::Done);
        };
        if self.kept.len() < end {
            return None;
        }
        let payload = &self.kept[at + 5..at + 5 + payload_length];
        match payload[0] {
            MSG_KEXINIT if self.hello.kexinit.is_none() => self.hello.kexinit = parse_kexinit(payload),
            MSG_NEWKEYS => {
                self.hello.newkeys = true;
                return Some(Stage::Done);
            }
            MSG_DISCONNECT => {
                self.hello.disconnect = Some(parse_disconnect(payload).unwrap_or_default());
                return Some(Stage::Done);
            }
            kind if MSG_KEX_METHOD.contains(&kind) => self.hello.kex_started = true,
            _ => {}
        }
        Some(Stage::Packet { at: end })
    }
}

/// A cursor over an SSH payload (RFC 4251 §5 types).
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn skip(&mut self, n: usize) -> Option<()> {
        self.0 = self.0.get(n..)?;
        Some(())
    }

    fn u32(&mut self) -> Option<u32> {
        let bytes = self.0.get(..4)?;
        let value = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        self.skip(4)?;
        Some(value)
    }

    /// A `string`: its length is checked against what is left.
    fn string(&mut self) -> Option<&'a [u8]> {
        let length = usize::try_from(self.u32()?).ok()?;
        let bytes = self.0.get(..length)?;
        self.skip(length)?;
        Some(bytes)
    }

    fn name_list(&mut self) -> Option<Vec<String>> {
        let bytes = self.string()?;
        if bytes.is_empty() {
            return Some(Vec::new());
        }
        Some(bytes.split(|&b| b == b',').map(|name| String::from_utf8_lossy(name).into_owned()).collect())
    }
}

/// The name-lists of an SSH_MSG_KEXINIT payload (message number included);
/// `None` when it is cut short.
pub(crate) fn parse_kexinit(payload: &[u8]) -> Option<KexInit> {
    let mut r = Reader(payload);
    r.skip(1 + 16)?; // message number, cookie
    let kex = r.name_list()?;
    let host_key = r.name_list()?;
    let ciphers = r.name_list()?;
    r.string()?; // ciphers server to client
    let macs = r.name_list()?;
    r.string()?; // MACs server to client
    let compression = r.name_list()?;
    Some(KexInit { kex, host_key, ciphers, macs, compression })
}

/// An SSH_MSG_DISCONNECT payload; `None` when it is cut short.
fn parse_disconnect(payload: &[u8]) -> Option<Disconnect> {
    let mut r = Reader(payload);
    r.skip(1)?;
    let code = r.u32()?;
    let description = r.string()?;
    let description = String::from_utf8_lossy(&description[..description.len().min(MAX_ID_LINE)]).into_owned();
    Some(Disconnect { code, description })
}

/// The observation of one connection, shared between the stream that feeds
/// it and the front-end that reads it when the connection ends.
#[derive(Clone, Debug, Default)]
pub(super) struct KexWatch(Arc<Mutex<Observer>>);

impl KexWatch {
    /// `inner`, observed by this watch.
    pub(super) fn tap<S>(&self, inner: S) -> Tapped<S> {
        Tapped { inner, watch: self.clone(), done: false }
    }

    /// What the client has sent so far.
    pub(super) fn hello(&self) -> ClientHello {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).hello().clone()
    }
}

/// A stream whose reads are shown to a [`KexWatch`] until it stops looking;
/// writes pass through.
pub(super) struct Tapped<S> {
    inner: S,
    watch: KexWatch,
    /// Set once the observer is done, so later reads take no lock.
    done: bool,
}

impl<S: AsyncRead + Unpin> AsyncRead for Tapped<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if !self.done && matches!(polled, Poll::Ready(Ok(()))) {
            let mut observer = self.watch.0.lock().unwrap_or_else(PoisonError::into_inner);
            observer.feed(&buf.filled()[before..]);
            let done = observer.done();
            drop(observer);
            self.done = done;
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tapped<S> {
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

    /// A plaintext binary packet around `payload` (padding to a multiple of 8).
    fn packet(payload: &[u8]) -> Vec<u8> {
        let padding = 8 - (payload.len() + 5) % 8 + 8;
        let length = u32::try_from(payload.len() + padding + 1).unwrap();
        let mut out = length.to_be_bytes().to_vec();
        out.push(u8::try_from(padding).unwrap());
        out.extend_from_slice(payload);
        out.extend(std::iter::repeat_n(0, padding));
        out
    }

    fn string(bytes: &[u8]) -> Vec<u8> {
        let mut out = u32::try_from(bytes.len()).unwrap().to_be_bytes().to_vec();
        out.extend_from_slice(bytes);
        out
    }

    fn kexinit(kex: &str, key: &str, cipher: &str, mac: &str) -> Vec<u8> {
        let mut out = vec![MSG_KEXINIT];
        out.extend_from_slice(&[7; 16]);
        for list in [kex, key, cipher, cipher, mac, mac, "none", "none", "", ""] {
            out.extend(string(list.as_bytes()));
        }
        out.push(0);
        out.extend_from_slice(&[0; 4]);
        out
    }

    fn client_stream() -> Vec<u8> {
        let mut stream = b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n".to_vec();
        stream.extend(packet(&kexinit("diffie-hellman-group14-sha1", "ssh-dss", "aes128-cbc,3des-cbc", "hmac-sha1")));
        stream.extend(packet(&[30, 0, 0, 0, 1, 9]));
        stream.extend(packet(&[MSG_NEWKEYS]));
        stream.extend_from_slice(b"\x8f\x01encrypted from here on");
        stream
    }

    fn observe(chunks: impl IntoIterator<Item = Vec<u8>>) -> Observer {
        let mut observer = Observer::default();
        for chunk in chunks {
            observer.feed(&chunk);
        }
        observer
    }

    #[test]
    fn a_whole_key_exchange_is_read_in_any_split() {
        let stream = client_stream();
        for chunk in [1, 2, 3, 7, 64, stream.len()] {
            let observer = observe(stream.chunks(chunk).map(<[u8]>::to_vec));
            let hello = observer.hello();
            assert!(observer.done(), "chunk {chunk}");
            assert_eq!(hello.identification.as_deref(), Some("SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3"));
            let kexinit = hello.kexinit.as_ref().expect("kexinit");
            assert_eq!(kexinit.kex, ["diffie-hellman-group14-sha1"]);
            assert_eq!(kexinit.host_key, ["ssh-dss"]);
            assert_eq!(kexinit.ciphers, ["aes128-cbc", "3des-cbc"]);
            assert_eq!(kexinit.macs, ["hmac-sha1"]);
            assert_eq!(kexinit.compression, ["none"]);
            assert!(hello.kex_started && hello.newkeys && hello.disconnect.is_none());
            assert_eq!(hello.first_bytes, stream[..FIRST_BYTES]);
            assert!(observer.kept.is_empty(), "the bytes are let go once done");
        }
    }

    #[test]
    fn a_cut_stream_tells_how_far_the_client_got() {
        let identification = b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n".len();
        let kexinit_end = identification
            + packet(&kexinit("diffie-hellman-group14-sha1", "ssh-dss", "aes128-cbc,3des-cbc", "hmac-sha1")).len();
        let stream = client_stream();
        let observer = observe([stream[..kexinit_end - 1].to_vec()]);
        assert!(!observer.done());
        assert!(observer.hello().identification.is_some() && observer.hello().kexinit.is_none());
        let observer = observe([stream[..kexinit_end].to_vec()]);
        assert!(observer.hello().kexinit.is_some() && !observer.hello().kex_started && !observer.hello().newkeys);
    }

    #[test]
    fn not_ssh_is_decided_from_the_first_bytes() {
        let observer = observe([b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec()]);
        assert_eq!(observer.stage, Stage::Done);
        assert_eq!(observer.hello().identification, None);
        assert_eq!(observer.hello().first_bytes, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    }

    #[test]
    fn ssh1_is_seen_and_not_followed() {
        let observer = observe([b"SSH-1.5-OldClient\n".to_vec(), packet(&[MSG_NEWKEYS])]);
        assert_eq!(observer.stage, Stage::Done);
        assert_eq!(observer.hello().identification.as_deref(), Some("SSH-1.5-OldClient"));
        assert!(!observer.hello().newkeys);
    }

    #[test]
    fn an_endless_identification_line_stops_the_observer() {
        let mut line = b"SSH-2.0-".to_vec();
        line.extend(std::iter::repeat_n(b'x', 10_000));
        let observer = observe(line.chunks(100).map(<[u8]>::to_vec));
        assert_eq!(observer.stage, Stage::Done);
        assert_eq!(observer.hello().identification, None);
    }

    #[test]
    fn a_disconnect_before_newkeys_is_kept() {
        let mut payload = vec![MSG_DISCONNECT, 0, 0, 0, 3];
        payload.extend(string(b"no matching cipher"));
        payload.extend(string(b""));
        let mut stream = b"SSH-2.0-x\r\n".to_vec();
        stream.extend(packet(&payload));
        let observer = observe([stream]);
        let disconnect = Disconnect { code: 3, description: "no matching cipher".into() };
        assert_eq!(observer.hello().disconnect, Some(disconnect));
        assert_eq!(observer.stage, Stage::Done);
    }

    #[test]
    fn hostile_lengths_stop_the_observer_without_allocating() {
        for header in [
            [0xff, 0xff, 0xff, 0xff, 4],
            [0, 1, 0, 0, 4], // 65536 bytes announced: more than is ever kept
            [0, 0, 0, 4, 200],
            [0, 0, 0, 1, 0], // no room for a payload
        ] {
            let mut stream = b"SSH-2.0-x\r\n".to_vec();
            stream.extend_from_slice(&header);
            let observer = observe([stream]);
            assert_eq!(observer.stage, Stage::Done, "{header:?}");
            assert!(observer.kept.capacity() <= MAX_OBSERVED);
        }
    }

    #[test]
    fn a_flood_of_small_packets_is_bounded() {
        let mut stream = b"SSH-2.0-x\r\n".to_vec();
        let ignore = packet(&[2, 0, 0, 0, 0]);
        while stream.len() < 2 * MAX_OBSERVED {
            stream.extend_from_slice(&ignore);
        }
        let observer = observe(stream.chunks(4096).map(<[u8]>::to_vec));
        assert_eq!(observer.stage, Stage::Done);
        assert!(observer.kept.is_empty());
        assert!(!observer.hello().newkeys);
    }

    #[test]
    fn a_truncated_kexinit_is_no_kexinit() {
        let full = kexinit("curve25519-sha256", "ssh-ed25519", "aes256-gcm@openssh.com", "hmac-sha2-256");
        assert!(parse_kexinit(&full).is_some());
        // Past the client-to-server compression list, nothing more is read.
        let unread = string(b"none").len() + 2 * string(b"").len() + 1 + 4;
        for cut in 0..full.len() - unread {
            assert_eq!(parse_kexinit(&full[..cut]), None, "cut at {cut}");
        }
        let mut lying = full[..17].to_vec();
        lying.extend_from_slice(&[0x7f, 0xff, 0xff, 0xff, b'a']);
        assert_eq!(parse_kexinit(&lying), None);
    }

    #[tokio::test]
    async fn the_tap_sees_what_is_read_and_passes_it_on() {
        let (mut client, server) = tokio::io::duplex(1024);
        let watch = KexWatch::default();
        let mut tapped = watch.tap(server);
        let stream = client_stream();
        client.write_all(&stream).await.unwrap();
        drop(client);
        let mut read = Vec::new();
        tapped.read_to_end(&mut read).await.unwrap();
        assert_eq!(read, stream);
        assert!(watch.hello().newkeys);
        assert!(tapped.done);
    }
}
