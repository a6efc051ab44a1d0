//! Streaming encryption of whole files (archived originals) with AES-256-GCM
//! in the STREAM construction (Hoang, Reyhanitabar, Rogaway and Vizár,
//! "Online Authenticated-Encryption and its Nonce-Reuse Misuse-Resistance";
//! the nonce layout of the `aead-stream` crate's `StreamBE32`): the file is
//! cut into chunks of 64 KiB, each sealed on its own, so that a file of any
//! size is encrypted and decrypted with one chunk in memory.
//!
//! ```text
//! header (36 bytes): magic "PSRLARC\0" ‖ version 1 ‖ chunk size u32 BE
//!                    ‖ data key id (16 bytes) ‖ nonce prefix (7 random bytes)
//! chunks:            AES-256-GCM(chunk i) ‖ tag (16 bytes), i = 0, 1, ...
//!                    nonce = prefix ‖ i (u32 BE) ‖ 1 for the last chunk, else 0
//!                    associated data = the whole header
//! ```
//!
//! Every chunk but the last holds exactly 64 KiB; the last holds 0 to 64 KiB
//! (an empty file is one empty last chunk). The last-chunk flag makes a
//! truncated or extended file fail to decrypt, the counter makes reordered
//! chunks fail, and the header as associated data makes a changed key id or
//! prefix fail.

use std::fmt;
use std::io::{self, BufRead, BufReader, Read, Write};

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{AeadInOut, Nonce, Tag};
use rand::RngExt;

use crate::data_key::DataKey;

/// Opens every encrypted stream.
const MAGIC: [u8; 8] = *b"PSRLARC\0";
/// The format described above.
const VERSION: u8 = 1;
/// Plaintext bytes per chunk.
const CHUNK: usize = 64 * 1024;
/// AES-GCM tag length.
const TAG_LEN: usize = 16;
/// Length of the nonce prefix.
const PREFIX_LEN: usize = 7;
/// Length of the header.
const HEADER_LEN: usize = MAGIC.len() + 1 + 4 + KeyId::LEN + PREFIX_LEN;

/// The public identifier of a data key: 16 random bytes, written as 32 hex
/// digits in the catalog and in messages.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyId([u8; 16]);

impl KeyId {
    const LEN: usize = 16;

    /// A new random identifier.
    pub fn generate() -> Self {
        let mut bytes = [0u8; Self::LEN];
        rand::rng().fill(&mut bytes[..]);
        Self(bytes)
    }

    /// Reads the 32-hex-digit form; `None` when it is not one.
    pub fn parse(text: &str) -> Option<Self> {
        if text.len() != 2 * Self::LEN || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let mut bytes = [0u8; Self::LEN];
        for (i, byte) in bytes.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(Self(bytes))
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

/// Why an encrypted stream cannot be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StreamError {
    /// The stream does not start with the magic bytes.
    #[error("not a passerelle encrypted file (no header)")]
    NotEncrypted,
    /// The header names a format this build does not know.
    #[error("encrypted with format version {0}, unknown to this version of passerelle")]
    UnknownVersion(u8),
    /// A chunk failed authentication: changed, reordered, truncated or
    /// extended data, or the wrong key.
    #[error("damaged or altered at byte {offset} (chunk {chunk} fails authentication)")]
    Damaged {
        /// The chunk's number, from 0.
        chunk: u64,
        /// Where the chunk starts in the encrypted file.
        offset: u64,
    },
    /// Reading or writing failed.
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// The header of an encrypted stream, as read by [`read_header`].
#[derive(Debug, Clone)]
pub struct StreamHeader {
    bytes: [u8; HEADER_LEN],
}

impl StreamHeader {
    fn new(key_id: KeyId) -> Self {
        let mut bytes = [0u8; HEADER_LEN];
        let mut prefix = [0u8; PREFIX_LEN];
        rand::rng().fill(&mut prefix[..]);
        let chunk = u32::try_from(CHUNK).expect("64 KiB fits u32").to_be_bytes();
        let parts: [&[u8]; 5] = [&MAGIC, &[VERSION], &chunk, &key_id.0, &prefix];
        let mut at = 0;
        for part in parts {
            bytes[at..at + part.len()].copy_from_slice(part);
            at += part.len();
        }
        Self { bytes }
    }

    /// The data key the stream was encrypted with.
    pub fn key_id(&self) -> KeyId {
        let start = MAGIC.len() + 1 + 4;
        let mut id = [0u8; KeyId::LEN];
        id.copy_from_slice(&self.bytes[start..start + KeyId::LEN]);
        KeyId(id)
    }

    fn nonce(&self, chunk: u32, last: bool) -> Nonce<Aes256Gcm> {
        let mut nonce = [0u8; 12];
        nonce[..PREFIX_LEN].copy_from_slice(&self.bytes[HEADER_LEN - PREFIX_LEN..]);
        nonce[PREFIX_LEN..PREFIX_LEN + 4].copy_from_slice(&chunk.to_be_bytes());
        nonce[11] = u8::from(last);
        Nonce::<Aes256Gcm>::from(nonce)
    }
}

/// Encrypts everything `input` holds into `output` under `key` (whose
/// identifier `key_id` goes into the header), one chunk at a time. Returns
/// the number of plaintext bytes. `output` is not flushed to disk: the
/// caller syncs it.
pub fn encrypt(key: &DataKey, key_id: KeyId, input: impl Read, mut output: impl Write) -> io::Result<u64> {
    let header = StreamHeader::new(key_id);
    output.write_all(&header.bytes)?;
    let cipher = key.cipher();
    let mut input = BufReader::with_capacity(CHUNK, input);
    let mut buf = Vec::with_capacity(CHUNK);
    let mut total = 0u64;
    let mut index = 0u32;
    loop {
        let filled = read_up_to(&mut input, &mut buf, CHUNK)?;
        // A full chunk is the last one only when nothing follows it.
        let last = filled < CHUNK || input.fill_buf()?.is_empty();
        let tag = cipher
            .encrypt_inout_detached(&header.nonce(index, last), &header.bytes, (&mut buf[..filled]).into())
            .map_err(|_| io::Error::other("AES-GCM refused a chunk"))?;
        output.write_all(&buf[..filled])?;
        output.write_all(&tag)?;
        total += filled as u64;
        if last {
            output.flush()?;
            return Ok(total);
        }
        index = index.checked_add(1).ok_or_else(|| io::Error::other("file too large to encrypt (256 TiB)"))?;
    }
}

/// Reads and checks the header at the start of `input`, leaving `input` at
/// the first chunk.
pub fn read_header(input: &mut impl Read) -> Result<StreamHeader, StreamError> {
    let mut read = Vec::with_capacity(HEADER_LEN);
    let filled = read_up_to(input, &mut read, HEADER_LEN)?;
    let mut bytes = [0u8; HEADER_LEN];
    bytes[..filled].copy_from_slice(&read);
    if filled < MAGIC.len() + 1 || bytes[..MAGIC.len()] != MAGIC {
        return Err(StreamError::NotEncrypted);
    }
    let version = bytes[MAGIC.len()];
    let chunk = &bytes[MAGIC.len() + 1..MAGIC.len() + 5];
    if version != VERSION || filled < HEADER_LEN || chunk != u32::try_from(CHUNK).unwrap_or(0).to_be_bytes() {
        return Err(StreamError::UnknownVersion(version));
    }
    Ok(StreamHeader { bytes })
}

/// Decrypts the chunks that follow `header` in `input` into `output`,
/// checking each before writing it. Returns the number of plaintext bytes.
/// On [`StreamError::Damaged`] the chunks before the damaged one have been
/// written: the caller discards the output.
pub fn decrypt(
    key: &DataKey,
    header: &StreamHeader,
    input: impl Read,
    mut output: impl Write,
) -> Result<u64, StreamError> {
    let cipher = key.cipher();
    let mut input = BufReader::with_capacity(CHUNK + TAG_LEN, input);
    let mut buf = Vec::with_capacity(CHUNK + TAG_LEN);
    let mut total = 0u64;
    let mut index = 0u32;
    loop {
        let offset = HEADER_LEN as u64 + u64::from(index) * (CHUNK + TAG_LEN) as u64;
        let damaged = || StreamError::Damaged { chunk: u64::from(index), offset };
        let filled = read_up_to(&mut input, &mut buf, CHUNK + TAG_LEN)?;
        if filled < TAG_LEN {
            return Err(damaged());
        }
        let last = filled < CHUNK + TAG_LEN || input.fill_buf()?.is_empty();
        let (data, tag) = buf[..filled].split_at_mut(filled - TAG_LEN);
        let tag = Tag::<Aes256Gcm>::try_from(&*tag).map_err(|_| damaged())?;
        cipher
            .decrypt_inout_detached(&header.nonce(index, last), &header.bytes, (&mut *data).into(), &tag)
            .map_err(|_| damaged())?;
        output.write_all(data)?;
        total += data.len() as u64;
        if last {
            output.flush()?;
            return Ok(total);
        }
        index = index.checked_add(1).ok_or_else(damaged)?;
    }
}

/// Replaces `buf`'s content with the next `len` bytes of `input`, fewer
/// only where the input ends; returns how many. `buf` keeps its capacity:
/// no allocation per chunk.
fn read_up_to(input: &mut impl Read, buf: &mut Vec<u8>, len: usize) -> io::Result<usize> {
    buf.clear();
    input.take(len as u64).read_to_end(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(len: usize) {
        let key = DataKey::generate();
        let id = KeyId::generate();
        let plain: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        let mut sealed = Vec::new();
        assert_eq!(encrypt(&key, id, plain.as_slice(), &mut sealed).unwrap(), len as u64);
        let chunks = len.div_ceil(CHUNK).max(1);
        assert_eq!(sealed.len(), HEADER_LEN + len + chunks * TAG_LEN);
        let mut reader = sealed.as_slice();
        let header = read_header(&mut reader).unwrap();
        assert_eq!(header.key_id(), id);
        let mut out = Vec::new();
        assert_eq!(decrypt(&key, &header, reader, &mut out).unwrap(), len as u64);
        assert_eq!(out, plain);
    }

    #[test]
    fn files_of_every_shape_round_trip() {
        for len in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK, 3 * CHUNK + 17] {
            round_trip(len);
        }
    }

    fn sealed(len: usize) -> (DataKey, Vec<u8>) {
        let key = DataKey::generate();
        let mut out = Vec::new();
        encrypt(&key, KeyId::generate(), vec![7u8; len].as_slice(), &mut out).unwrap();
        (key, out)
    }

    fn open(key: &DataKey, sealed: &[u8]) -> Result<u64, StreamError> {
        let mut reader = sealed;
        let header = read_header(&mut reader)?;
        decrypt(key, &header, reader, io::sink())
    }

    #[test]
    fn any_flipped_byte_truncation_or_extension_fails() {
        let (key, good) = sealed(2 * CHUNK + 5);
        for at in [0, 9, 20, HEADER_LEN, HEADER_LEN + CHUNK + 3, good.len() - 1] {
            let mut bad = good.clone();
            bad[at] ^= 1;
            assert!(open(&key, &bad).is_err(), "flip at {at}");
        }
        let mut bad = good.clone();
        bad[HEADER_LEN + CHUNK + TAG_LEN + 1] ^= 0x80;
        assert!(matches!(open(&key, &bad), Err(StreamError::Damaged { chunk: 1, .. })));
        assert!(open(&key, &good[..HEADER_LEN + CHUNK + TAG_LEN]).is_err(), "cut at a chunk boundary");
        assert!(open(&key, &good[..good.len() - 1]).is_err(), "cut short");
        let mut longer = good.clone();
        longer.push(0);
        assert!(open(&key, &longer).is_err(), "extended");
        assert!(open(&DataKey::generate(), &good).is_err(), "another key");
        assert!(matches!(open(&key, b"plain,csv\n"), Err(StreamError::NotEncrypted)));
        assert_eq!(open(&key, &good).unwrap(), 2 * CHUNK as u64 + 5);
    }

    #[test]
    fn key_ids_print_and_parse_back() {
        let id = KeyId::generate();
        assert_eq!(KeyId::parse(&id.to_string()), Some(id));
        assert_eq!(KeyId::parse("zz"), None);
    }
}
