//! SFTP version 3 wire format (draft-ietf-secsh-filexfer-02) plus the
//! OpenSSH extensions passerelle serves.
//!
//! A small codec of its own rather than russh-sftp's types: paths and handles
//! stay raw bytes (a non-UTF-8 name is the filesystem layer's decision, not a
//! decoding failure), WRITE payloads are slices of the receive buffer (no
//! copy), and every length is checked against the packet it came in, so a
//! hostile length can neither over-allocate nor desynchronise the stream.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Largest packet accepted from a client (length field value), as in
/// OpenSSH's `SFTP_MAX_MSG_LENGTH`: 256 KiB.
pub(crate) const MAX_PACKET: u32 = 256 * 1024;
/// Largest READ answered and WRITE accepted, as advertised through
/// `limits@openssh.com` (the packet minus room for headers, like OpenSSH).
pub(super) const MAX_DATA: u32 = MAX_PACKET - 1024;

/// Packet types.
pub(super) mod kind {
    pub(in crate::sftp) const INIT: u8 = 1;
    pub(in crate::sftp) const VERSION: u8 = 2;
    pub(in crate::sftp) const OPEN: u8 = 3;
    pub(in crate::sftp) const CLOSE: u8 = 4;
    pub(in crate::sftp) const READ: u8 = 5;
    pub(in crate::sftp) const WRITE: u8 = 6;
    pub(in crate::sftp) const LSTAT: u8 = 7;
    pub(in crate::sftp) const FSTAT: u8 = 8;
    pub(in crate::sftp) const SETSTAT: u8 = 9;
    pub(in crate::sftp) const FSETSTAT: u8 = 10;
    pub(in crate::sftp) const OPENDIR: u8 = 11;
    pub(in crate::sftp) const READDIR: u8 = 12;
    pub(in crate::sftp) const REMOVE: u8 = 13;
    pub(in crate::sftp) const MKDIR: u8 = 14;
    pub(in crate::sftp) const RMDIR: u8 = 15;
    pub(in crate::sftp) const REALPATH: u8 = 16;
    pub(in crate::sftp) const STAT: u8 = 17;
    pub(in crate::sftp) const RENAME: u8 = 18;
    pub(in crate::sftp) const READLINK: u8 = 19;
    pub(in crate::sftp) const SYMLINK: u8 = 20;
    pub(in crate::sftp) const STATUS: u8 = 101;
    pub(in crate::sftp) const HANDLE: u8 = 102;
    pub(in crate::sftp) const DATA: u8 = 103;
    pub(in crate::sftp) const NAME: u8 = 104;
    pub(in crate::sftp) const ATTRS: u8 = 105;
    pub(in crate::sftp) const EXTENDED: u8 = 200;
    pub(in crate::sftp) const EXTENDED_REPLY: u8 = 201;
}

/// `SSH_FXF_*` open flags.
pub(super) mod open_flags {
    pub(in crate::sftp) const WRITE: u32 = 0x02;
    pub(in crate::sftp) const APPEND: u32 = 0x04;
    pub(in crate::sftp) const CREAT: u32 = 0x08;
    pub(in crate::sftp) const TRUNC: u32 = 0x10;
    pub(in crate::sftp) const EXCL: u32 = 0x20;
}

/// `SSH_FX_*` status codes (version 3 defines 0 to 8).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum StatusCode {
    Ok = 0,
    Eof = 1,
    NoSuchFile = 2,
    PermissionDenied = 3,
    Failure = 4,
    BadMessage = 5,
    OpUnsupported = 8,
}

const ATTR_SIZE: u32 = 0x0000_0001;
const ATTR_UIDGID: u32 = 0x0000_0002;
const ATTR_PERMISSIONS: u32 = 0x0000_0004;
const ATTR_ACMODTIME: u32 = 0x0000_0008;
const ATTR_EXTENDED: u32 = 0x8000_0000;

/// File attributes as SFTP v3 carries them; absent fields are `None`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Attrs {
    pub(super) size: Option<u64>,
    pub(super) uid_gid: Option<(u32, u32)>,
    pub(super) permissions: Option<u32>,
    /// Access and modification times, seconds since the epoch.
    pub(super) times: Option<(u32, u32)>,
}

/// A decoded client request. Paths and handles are raw bytes.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Request {
    Init {
        version: u32,
    },
    Open {
        id: u32,
        path: Bytes,
        flags: u32,
        attrs: Attrs,
    },
    Close {
        id: u32,
        handle: Bytes,
    },
    Read {
        id: u32,
        handle: Bytes,
        offset: u64,
        len: u32,
    },
    Write {
        id: u32,
        handle: Bytes,
        offset: u64,
        data: Bytes,
    },
    Lstat {
        id: u32,
        path: Bytes,
    },
    Fstat {
        id: u32,
        handle: Bytes,
    },
    SetStat {
        id: u32,
        path: Bytes,
        attrs: Attrs,
    },
    FSetStat {
        id: u32,
        handle: Bytes,
        attrs: Attrs,
    },
    OpenDir {
        id: u32,
        path: Bytes,
    },
    ReadDir {
        id: u32,
        handle: Bytes,
    },
    Remove {
        id: u32,
        path: Bytes,
    },
    MkDir {
        id: u32,
        path: Bytes,
    },
    RmDir {
        id: u32,
        path: Bytes,
    },
    RealPath {
        id: u32,
        path: Bytes,
    },
    Stat {
        id: u32,
        path: Bytes,
    },
    Rename {
        id: u32,
        from: Bytes,
        to: Bytes,
    },
    ReadLink {
        id: u32,
        path: Bytes,
    },
    Symlink {
        id: u32,
    },
    /// `SSH_FXP_EXTENDED`: the extension name and its request-specific data.
    Extended {
        id: u32,
        name: Bytes,
        data: Bytes,
    },
    /// A packet type a client must not send (or that does not exist): it
    /// gets `SSH_FX_OP_UNSUPPORTED` when it carried a request id.
    Unknown {
        id: u32,
    },
}

/// A packet that cannot be decoded. The session ends on it: a stream whose
/// framing is in doubt cannot be trusted further.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum DecodeError {
    /// The length field is zero or above [`MAX_PACKET`].
    #[error("packet length {0} out of bounds")]
    Length(u32),
    /// A field runs past the end of its packet.
    #[error("truncated packet")]
    Truncated,
}

/// Takes one complete packet off the front of `buf`, or returns `Ok(None)`
/// when more bytes are needed. The length is checked before anything is
/// buffered beyond it.
pub(crate) fn split_packet(buf: &mut BytesMut) -> Result<Option<Bytes>, DecodeError> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
    if len == 0 || len > MAX_PACKET {
        return Err(DecodeError::Length(len));
    }
    let total = 4 + len as usize;
    if buf.len() < total {
        buf.reserve(total - buf.len());
        return Ok(None);
    }
    buf.advance(4);
    Ok(Some(buf.split_to(len as usize).freeze()))
}

/// Decodes the body of one packet (type byte onwards).
pub(crate) fn decode(mut body: Bytes) -> Result<Request, DecodeError> {
    let b = &mut body;
    let kind = get_u8(b)?;
    if kind == kind::INIT {
        // Extension pairs a client may append are ignored.
        return Ok(Request::Init { version: get_u32(b)? });
    }
    let id = get_u32(b)?;
    Ok(match kind {
        kind::OPEN => Request::Open { id, path: get_string(b)?, flags: get_u32(b)?, attrs: get_attrs(b)? },
        kind::CLOSE => Request::Close { id, handle: get_string(b)? },
        kind::READ => Request::Read { id, handle: get_string(b)?, offset: get_u64(b)?, len: get_u32(b)? },
        kind::WRITE => Request::Write { id, handle: get_string(b)?, offset: get_u64(b)?, data: get_string(b)? },
        kind::LSTAT => Request::Lstat { id, path: get_string(b)? },
        kind::FSTAT => Request::Fstat { id, handle: get_string(b)? },
        kind::SETSTAT => Request::SetStat { id, path: get_string(b)?, attrs: get_attrs(b)? },
        kind::FSETSTAT => Request::FSetStat { id, handle: get_string(b)?, attrs: get_attrs(b)? },
        kind::OPENDIR => Request::OpenDir { id, path: get_string(b)? },
        kind::READDIR => Request::ReadDir { id, handle: get_string(b)? },
        kind::REMOVE => Request::Remove { id, path: get_string(b)? },
        // The attributes of MKDIR (a mode) are ignored: areas set their own.
        kind::MKDIR => Request::MkDir { id, path: get_string(b)? },
        kind::RMDIR => Request::RmDir { id, path: get_string(b)? },
        kind::REALPATH => Request::RealPath { id, path: get_string(b)? },
        kind::STAT => Request::Stat { id, path: get_string(b)? },
        kind::RENAME => Request::Rename { id, from: get_string(b)?, to: get_string(b)? },
        kind::READLINK => Request::ReadLink { id, path: get_string(b)? },
        kind::SYMLINK => Request::Symlink { id },
        kind::EXTENDED => {
            let name = get_string(b)?;
            Request::Extended { id, name, data: std::mem::take(b) }
        }
        _ => Request::Unknown { id },
    })
}

fn need(b: &Bytes, n: usize) -> Result<(), DecodeError> {
    if b.remaining() < n { Err(DecodeError::Truncated) } else { Ok(()) }
}

fn get_u8(b: &mut Bytes) -> Result<u8, DecodeError> {
    need(b, 1)?;
    Ok(b.get_u8())
}

pub(super) fn get_u32(b: &mut Bytes) -> Result<u32, DecodeError> {
    need(b, 4)?;
    Ok(b.get_u32())
}

pub(super) fn get_u64(b: &mut Bytes) -> Result<u64, DecodeError> {
    need(b, 8)?;
    Ok(b.get_u64())
}

/// A length-prefixed string, as a slice of the packet (no copy).
pub(super) fn get_string(b: &mut Bytes) -> Result<Bytes, DecodeError> {
    let len = get_u32(b)? as usize;
    need(b, len)?;
    Ok(b.split_to(len))
}

fn get_attrs(b: &mut Bytes) -> Result<Attrs, DecodeError> {
    let flags = get_u32(b)?;
    let mut attrs = Attrs::default();
    if flags & ATTR_SIZE != 0 {
        attrs.size = Some(get_u64(b)?);
    }
    if flags & ATTR_UIDGID != 0 {
        attrs.uid_gid = Some((get_u32(b)?, get_u32(b)?));
    }
    if flags & ATTR_PERMISSIONS != 0 {
        attrs.permissions = Some(get_u32(b)?);
    }
    if flags & ATTR_ACMODTIME != 0 {
        attrs.times = Some((get_u32(b)?, get_u32(b)?));
    }
    if flags & ATTR_EXTENDED != 0 {
        // Skipped, but walked so that a bogus count is caught: each pair
        // takes at least 8 bytes, which bounds the loop by the packet size.
        let count = get_u32(b)?;
        for _ in 0..count {
            get_string(b)?;
            get_string(b)?;
        }
    }
    Ok(attrs)
}

/// Builds one outgoing packet: the length is filled in by [`Encoder::finish`].
pub(super) struct Encoder {
    buf: BytesMut,
}

impl Encoder {
    /// Starts a packet of type `kind`; `capacity` is a hint for the body.
    pub(super) fn new(kind: u8, capacity: usize) -> Self {
        let mut buf = BytesMut::with_capacity(5 + capacity);
        buf.put_u32(0);
        buf.put_u8(kind);
        Self { buf }
    }

    pub(super) fn u32(mut self, v: u32) -> Self {
        self.buf.put_u32(v);
        self
    }

    #[cfg(test)]
    pub(super) fn u64(mut self, v: u64) -> Self {
        self.buf.put_u64(v);
        self
    }

    pub(super) fn string(mut self, s: &[u8]) -> Self {
        // Every string we send is far below 4 GiB (bounded by MAX_DATA or a
        // directory batch); saturate rather than wrap if that ever changed.
        self.buf.put_u32(u32::try_from(s.len()).unwrap_or(u32::MAX));
        self.buf.put_slice(s);
        self
    }

    /// Bytes as they are, without a length prefix.
    pub(super) fn raw(mut self, bytes: &[u8]) -> Self {
        self.buf.put_slice(bytes);
        self
    }

    pub(super) fn attrs(mut self, a: &Attrs) -> Self {
        let mut flags = 0;
        if a.size.is_some() {
            flags |= ATTR_SIZE;
        }
        if a.uid_gid.is_some() {
            flags |= ATTR_UIDGID;
        }
        if a.permissions.is_some() {
            flags |= ATTR_PERMISSIONS;
        }
        if a.times.is_some() {
            flags |= ATTR_ACMODTIME;
        }
        self.buf.put_u32(flags);
        if let Some(size) = a.size {
            self.buf.put_u64(size);
        }
        if let Some((uid, gid)) = a.uid_gid {
            self.buf.put_u32(uid);
            self.buf.put_u32(gid);
        }
        if let Some(p) = a.permissions {
            self.buf.put_u32(p);
        }
        if let Some((atime, mtime)) = a.times {
            self.buf.put_u32(atime);
            self.buf.put_u32(mtime);
        }
        self
    }

    /// Fills in the length and hands the packet over.
    pub(super) fn finish(mut self) -> Bytes {
        let len = u32::try_from(self.buf.len() - 4).unwrap_or(u32::MAX);
        self.buf[..4].copy_from_slice(&len.to_be_bytes());
        self.buf.freeze()
    }
}

/// `SSH_FXP_STATUS`.
pub(super) fn status(id: u32, code: StatusCode, message: &str) -> Bytes {
    Encoder::new(kind::STATUS, 16 + message.len())
        .u32(id)
        .u32(code as u32)
        .string(message.as_bytes())
        .string(b"en")
        .finish()
}

/// `SSH_FXP_HANDLE`.
pub(super) fn handle(id: u32, handle: &[u8]) -> Bytes {
    Encoder::new(kind::HANDLE, 8 + handle.len()).u32(id).string(handle).finish()
}

/// `SSH_FXP_DATA`.
pub(super) fn data(id: u32, data: &[u8]) -> Bytes {
    Encoder::new(kind::DATA, 8 + data.len()).u32(id).string(data).finish()
}

/// `SSH_FXP_ATTRS`.
pub(super) fn attrs(id: u32, attrs: &Attrs) -> Bytes {
    Encoder::new(kind::ATTRS, 40).u32(id).attrs(attrs).finish()
}

/// One entry of an `SSH_FXP_NAME` reply.
pub(super) struct NameEntry {
    pub(super) name: String,
    pub(super) long_name: String,
    pub(super) attrs: Attrs,
}

/// `SSH_FXP_NAME`.
pub(super) fn name(id: u32, entries: &[NameEntry]) -> Bytes {
    let size: usize = entries.iter().map(|e| e.name.len() + e.long_name.len() + 48).sum();
    let count = u32::try_from(entries.len()).unwrap_or(u32::MAX);
    let mut enc = Encoder::new(kind::NAME, 8 + size).u32(id).u32(count);
    for e in entries {
        enc = enc.string(e.name.as_bytes()).string(e.long_name.as_bytes()).attrs(&e.attrs);
    }
    enc.finish()
}

/// `SSH_FXP_VERSION` with the extensions passerelle implements.
pub(super) fn version(extensions: &[(&str, &str)]) -> Bytes {
    let mut enc = Encoder::new(kind::VERSION, 128).u32(3);
    for (name, data) in extensions {
        enc = enc.string(name.as_bytes()).string(data.as_bytes());
    }
    enc.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(kind: u8, body: impl FnOnce(Encoder) -> Encoder) -> Bytes {
        body(Encoder::new(kind, 64)).finish()
    }

    fn decode_one(wire: &[u8]) -> Result<Request, DecodeError> {
        let mut buf = BytesMut::from(wire);
        let body = split_packet(&mut buf)?.expect("complete packet");
        assert!(buf.is_empty());
        decode(body)
    }

    #[test]
    fn write_request_round_trips_without_copying_semantics_changing() {
        let wire = packet(kind::WRITE, |e| e.u32(7).string(b"h1").u64(1 << 40).string(b"payload"));
        assert_eq!(
            decode_one(&wire).unwrap(),
            Request::Write {
                id: 7,
                handle: Bytes::from_static(b"h1"),
                offset: 1 << 40,
                data: Bytes::from_static(b"payload")
            }
        );
    }

    #[test]
    fn open_with_attributes_decodes_every_field() {
        let attrs = Attrs { size: Some(5), uid_gid: Some((1, 2)), permissions: Some(0o644), times: Some((10, 20)) };
        let wire = packet(kind::OPEN, |e| e.u32(1).string(b"/inbox/a.csv").u32(0x1a).attrs(&attrs));
        assert_eq!(
            decode_one(&wire).unwrap(),
            Request::Open { id: 1, path: Bytes::from_static(b"/inbox/a.csv"), flags: 0x1a, attrs }
        );
    }

    #[test]
    fn non_utf8_paths_are_kept_as_bytes() {
        let wire = packet(kind::STAT, |e| e.u32(3).string(b"/inbox/\xff\xfe"));
        assert_eq!(decode_one(&wire).unwrap(), Request::Stat { id: 3, path: Bytes::from_static(b"/inbox/\xff\xfe") });
    }

    #[test]
    fn partial_packets_wait_for_more_bytes() {
        let wire = packet(kind::REALPATH, |e| e.u32(9).string(b"."));
        let mut buf = BytesMut::new();
        for (i, byte) in wire.iter().enumerate() {
            assert_eq!(split_packet(&mut buf).unwrap(), None, "complete after {i} bytes?");
            buf.put_u8(*byte);
        }
        let body = split_packet(&mut buf).unwrap().unwrap();
        assert_eq!(decode(body).unwrap(), Request::RealPath { id: 9, path: Bytes::from_static(b".") });
    }

    #[test]
    fn oversized_and_empty_packets_are_rejected_before_buffering() {
        let mut buf = BytesMut::from(&(MAX_PACKET + 1).to_be_bytes()[..]);
        assert_eq!(split_packet(&mut buf), Err(DecodeError::Length(MAX_PACKET + 1)));
        let mut buf = BytesMut::from(&0u32.to_be_bytes()[..]);
        assert_eq!(split_packet(&mut buf), Err(DecodeError::Length(0)));
    }

    #[test]
    fn lengths_running_past_the_packet_are_truncation_errors() {
        // A string claiming 1000 bytes inside a 20-byte packet.
        let wire = packet(kind::STAT, |e| e.u32(3).u32(1000).u32(0));
        assert_eq!(decode_one(&wire), Err(DecodeError::Truncated));
        // An attribute extension count far beyond the packet.
        let wire = packet(kind::SETSTAT, |e| e.u32(3).string(b"/x").u32(ATTR_EXTENDED).u32(u32::MAX));
        assert_eq!(decode_one(&wire), Err(DecodeError::Truncated));
    }

    #[test]
    fn unknown_types_keep_their_id() {
        let wire = packet(250, |e| e.u32(77));
        assert_eq!(decode_one(&wire).unwrap(), Request::Unknown { id: 77 });
    }

    #[test]
    fn status_encoding_matches_the_draft_layout() {
        let wire = status(5, StatusCode::NoSuchFile, "no");
        let expected: &[u8] =
            &[0, 0, 0, 21, 101, 0, 0, 0, 5, 0, 0, 0, 2, 0, 0, 0, 2, b'n', b'o', 0, 0, 0, 2, b'e', b'n'];
        assert_eq!(&wire[..], expected);
    }

    #[test]
    fn attrs_round_trip() {
        let attrs = Attrs { size: Some(1 << 33), uid_gid: None, permissions: Some(0o100644), times: Some((1, 2)) };
        let mut body = Encoder::new(kind::ATTRS, 0).attrs(&attrs).finish().slice(5..);
        assert_eq!(get_attrs(&mut body).unwrap(), attrs);
        assert!(body.is_empty());
    }
}
