//! The file transport: an append-only file of framed envelopes, for tests
//! and offline capture.
//!
//! Each frame is a 4-byte big-endian length followed by that many bytes of
//! one envelope's deterministic CBOR:
//!
//! ```text
//! frame = u32be(len) ‖ envelope CBOR (len bytes, 1 ≤ len ≤ MAX_ENVELOPE_BYTES)
//! ```
//!
//! The verifier's log uses the same length-prefix convention but adds a
//! record kind and a hash-chain check to each frame (`vouch_verifier::store`),
//! so the two are not byte-identical; the envelope bytes inside are. A capture
//! replays with `vouch publish --raw`. A frame is written with one
//! `write` call; if that fails, the file is truncated back to the last whole
//! frame. [`read_frames`] rejects a torn tail (a crash mid-write) with a
//! typed error rather than guessing.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use vouch_schema::SharedError;
use vouch_schema::limits::MAX_ENVELOPE_BYTES;

use super::{Outgoing, Transport, TransportError, TransportIo};

/// Bytes of the length prefix of a frame.
pub const FRAME_HEADER_BYTES: usize = 4;

/// Appends framed envelopes to a file. `flush` is `fsync` (data only).
#[derive(Debug)]
pub struct FileTransport {
    path: PathBuf,
    file: Option<File>,
    /// Length of the file up to the last whole frame.
    committed: u64,
    /// Reused frame buffer.
    buf: Vec<u8>,
}

impl FileTransport {
    /// Opens `path` for appending, creating it if needed. An existing file
    /// must end on a frame boundary; a torn tail is refused (see [`read_frames`]).
    pub fn create(path: impl AsRef<Path>) -> Result<Self, TransportError> {
        let path = path.as_ref().to_owned();
        let io = |e: std::io::Error| -> TransportError {
            TransportIo::File { path: path.clone(), source: e.into() }.into()
        };
        let file = OpenOptions::new().create(true).append(true).open(&path).map_err(io)?;
        let committed = file.metadata().map_err(io)?.len();
        if committed > 0 {
            // Appending after a torn frame would make everything after it unreadable.
            scan(&path).map_err(|e| TransportError::Io(e.into()))?;
        }
        Ok(FileTransport { path, file: Some(file), committed, buf: Vec::new() })
    }

    /// The file written to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn io(&self, e: std::io::Error) -> TransportError {
        TransportIo::File { path: self.path.clone(), source: e.into() }.into()
    }
}

impl Transport for FileTransport {
    fn send(&mut self, envelope: Outgoing) -> Result<(), TransportError> {
        let len = envelope.bytes.len();
        if len == 0 || len > MAX_ENVELOPE_BYTES {
            return Err(TransportIo::EnvelopeSize { len }.into());
        }
        let Some(file) = self.file.as_mut() else {
            return Err(TransportError::Closed);
        };
        self.buf.clear();
        self.buf.extend_from_slice(&(len as u32).to_be_bytes());
        self.buf.extend_from_slice(&envelope.bytes);
        match file.write_all(&self.buf) {
            Ok(()) => {
                self.committed += self.buf.len() as u64;
                Ok(())
            }
            Err(e) => {
                // Drop whatever part of the frame made it, so the file stays whole.
                let _ = file.set_len(self.committed);
                Err(self.io(e))
            }
        }
    }

    fn flush(&mut self, _deadline: Instant) -> Result<(), TransportError> {
        match &self.file {
            Some(file) => file.sync_data().map_err(|e| self.io(e)),
            None => Err(TransportError::Closed),
        }
    }

    fn close(&mut self, deadline: Instant) -> Result<(), TransportError> {
        if self.file.is_none() {
            return Ok(());
        }
        let result = self.flush(deadline);
        self.file = None;
        result
    }

    fn kind(&self) -> &'static str {
        "file"
    }
}

/// Why a frame file cannot be read back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The file could not be read.
    #[error("cannot read frames: {}: {source}", path.display())]
    Io {
        /// The frame file.
        path: PathBuf,
        /// The operating system's error.
        source: SharedError<std::io::Error>,
    },
    /// The file ends inside a frame (a torn write).
    #[error("torn frame at byte {offset}: {needed} bytes needed, {available} present")]
    TornTail {
        /// Where the incomplete frame starts.
        offset: u64,
        /// Bytes the frame (header included) needs.
        needed: u64,
        /// Bytes present from `offset` to the end.
        available: u64,
    },
    /// A length prefix of 0 or over [`MAX_ENVELOPE_BYTES`].
    #[error("frame at byte {offset} declares {len} bytes, not in 1..={MAX_ENVELOPE_BYTES}")]
    BadLength {
        /// Where the frame starts.
        offset: u64,
        /// The declared length.
        len: u32,
    },
}

/// Reads every frame of a file written by [`FileTransport`], in order.
pub fn read_frames(path: impl AsRef<Path>) -> Result<Vec<Vec<u8>>, FrameError> {
    let mut bytes = Vec::new();
    File::open(path.as_ref())
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(|e| FrameError::Io { path: path.as_ref().to_owned(), source: e.into() })?;
    split_frames(&bytes)
}

/// Splits framed bytes into frames (see the module docs).
pub fn split_frames(bytes: &[u8]) -> Result<Vec<Vec<u8>>, FrameError> {
    let mut frames = Vec::new();
    let mut at = 0usize;
    while at < bytes.len() {
        let rest = &bytes[at..];
        let torn = |needed: usize| FrameError::TornTail {
            offset: at as u64,
            needed: needed as u64,
            available: rest.len() as u64,
        };
        let Some(header) = rest.first_chunk::<FRAME_HEADER_BYTES>() else {
            return Err(torn(FRAME_HEADER_BYTES));
        };
        let len = u32::from_be_bytes(*header);
        if len == 0 || len as usize > MAX_ENVELOPE_BYTES {
            return Err(FrameError::BadLength { offset: at as u64, len });
        }
        let end = FRAME_HEADER_BYTES + len as usize;
        let Some(body) = rest.get(FRAME_HEADER_BYTES..end) else {
            return Err(torn(end));
        };
        frames.push(body.to_vec());
        at += end;
    }
    Ok(frames)
}

/// Checks that a file is whole frames, reading only the length prefixes.
fn scan(path: &Path) -> Result<(), FrameError> {
    let io = |e: std::io::Error| FrameError::Io { path: path.to_owned(), source: e.into() };
    let mut file = File::open(path).map_err(io)?;
    let total = file.metadata().map_err(io)?.len();
    let mut at = 0u64;
    let mut header = [0u8; FRAME_HEADER_BYTES];
    while at < total {
        let available = total - at;
        let torn = |needed: u64| FrameError::TornTail { offset: at, needed, available };
        if available < FRAME_HEADER_BYTES as u64 {
            return Err(torn(FRAME_HEADER_BYTES as u64));
        }
        file.seek(SeekFrom::Start(at)).map_err(io)?;
        file.read_exact(&mut header).map_err(io)?;
        let len = u32::from_be_bytes(header);
        if len == 0 || len as usize > MAX_ENVELOPE_BYTES {
            return Err(FrameError::BadLength { offset: at, len });
        }
        let needed = FRAME_HEADER_BYTES as u64 + u64::from(len);
        if available < needed {
            return Err(torn(needed));
        }
        at += needed;
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn out(bytes: &[u8]) -> Outgoing {
        Outgoing { partition: 0, bytes: bytes.to_vec() }
    }

    #[test]
    fn frames_round_trip_and_append() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let mut t = FileTransport::create(&path).unwrap();
        t.send(out(b"one")).unwrap();
        t.send(out(b"two!")).unwrap();
        t.flush(Instant::now()).unwrap();
        t.close(Instant::now()).unwrap();
        assert_eq!(t.send(out(b"x")), Err(TransportError::Closed));
        let mut t = FileTransport::create(&path).unwrap();
        t.send(out(b"three")).unwrap();
        t.close(Instant::now()).unwrap();
        let frames = read_frames(&path).unwrap();
        assert_eq!(frames, vec![b"one".to_vec(), b"two!".to_vec(), b"three".to_vec()]);
        let raw = std::fs::read(&path).unwrap();
        assert_eq!(&raw[..7], &[0, 0, 0, 3, b'o', b'n', b'e']);
    }

    #[test]
    fn torn_tail_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, [0, 0, 0, 3, b'a', b'b', b'c', 0, 0, 0, 9, b'x']).unwrap();
        assert_eq!(
            read_frames(&path),
            Err(FrameError::TornTail { offset: 7, needed: 13, available: 5 })
        );
        assert!(FileTransport::create(&path).is_err());
        std::fs::write(&path, [0, 0, 0, 3, b'a', b'b', b'c', 0, 0]).unwrap();
        assert!(matches!(read_frames(&path), Err(FrameError::TornTail { offset: 7, .. })));
        std::fs::write(&path, [0, 0, 0, 0]).unwrap();
        assert_eq!(read_frames(&path), Err(FrameError::BadLength { offset: 0, len: 0 }));
        let mut t = FileTransport::create(dir.path().join("g")).unwrap();
        assert!(t.send(out(b"")).is_err());
    }
}
