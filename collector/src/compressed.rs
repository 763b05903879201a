//! Compressed rotations: telling a gzip or zstd rotation of a log file by its name and first
//! bytes, and reading it as the bytes it was compressed from, at offsets in those bytes.
//!
//! Rotators compress old rotations (kubelet gzips every rotated container log but the newest:
//! `0.log.<YYYYMMDD-HHMMSS>` → `….gz.tmp` → `….gz`; logrotate's `compress` runs gzip; some
//! setups use zstd). A collector that was down, or behind, across two rotations finds the
//! unread part of a log only inside such a file. A [`Decoder`] reads it front to back through
//! `flate2` (every gzip member, as `gzip` itself does) or `zstd` (every frame); offsets are in
//! uncompressed bytes, so checkpoints, fingerprints and records mean the same as for the
//! file it was compressed from. Going back means decoding again from the start, going forward
//! decodes and drops: a compressed file is read once, front to back, and resuming inside one
//! decodes what comes before the offset once.
//!
//! A damaged archive (cut short, corrupt) yields everything that decodes; the first error is
//! kept and returned from then on, with how many compressed bytes did not decode.
//!
//! Owns the compression formats; it may not decide which files are read or where from.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// A compression format of rotated logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// gzip (RFC 1952), one or more members.
    Gzip,
    /// Zstandard (RFC 8878), one or more frames.
    Zstd,
}

/// gzip's magic bytes.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
/// A Zstandard frame's magic number, little-endian.
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// Suffixes of compressed files ringtail cannot read: never taken for text.
const OTHER_COMPRESSED: [&str; 5] = [".bz2", ".xz", ".lz4", ".zip", ".Z"];

/// Suffixes rotators give a file while they compress it; the finished file is renamed from it.
const IN_PROGRESS: [&str; 2] = [".tmp", ".part"];

impl Codec {
    /// The format a file name says (`.gz`, `.zst`), if any.
    pub fn of_name(name: &str) -> Option<Codec> {
        if name.ends_with(".gz") {
            Some(Codec::Gzip)
        } else if name.ends_with(".zst") {
            Some(Codec::Zstd)
        } else {
            None
        }
    }

    /// Whether the file's first bytes are this format's magic.
    pub fn sniff(self, head: &[u8]) -> bool {
        match self {
            Codec::Gzip => head.starts_with(&GZIP_MAGIC),
            Codec::Zstd => head.starts_with(&ZSTD_MAGIC),
        }
    }

    /// The name's suffix for this format.
    pub fn suffix(self) -> &'static str {
        match self {
            Codec::Gzip => ".gz",
            Codec::Zstd => ".zst",
        }
    }

    /// The path of the file this one was compressed from: `path` without its suffix.
    pub fn original(self, path: &Path) -> PathBuf {
        let name = path.as_os_str().to_string_lossy();
        match name.strip_suffix(self.suffix()) {
            Some(stripped) => PathBuf::from(stripped),
            None => path.to_path_buf(),
        }
    }

    /// The format's name, for logs.
    pub fn name(self) -> &'static str {
        match self {
            Codec::Gzip => "gzip",
            Codec::Zstd => "zstd",
        }
    }
}

/// Whether a file name is compressed in a way that is not read (`.bz2`, `.xz`, …) or is a
/// compression still in progress (`….gz.tmp`): such a file is never read as text.
pub fn never_text(name: &str) -> bool {
    if OTHER_COMPRESSED.iter().any(|s| name.ends_with(s)) {
        return true;
    }
    IN_PROGRESS.iter().any(|tmp| {
        name.strip_suffix(tmp).is_some_and(|stem| {
            Codec::of_name(stem).is_some() || OTHER_COMPRESSED.iter().any(|s| stem.ends_with(s))
        })
    })
}

/// Why a compressed file could not be decoded to its end.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The archive is damaged or cut short: everything before `at` was decoded.
    #[error(
        "{codec} archive is damaged at uncompressed offset {at} ({undecoded} compressed bytes of {size} did not decode): {source}"
    )]
    Damaged {
        /// The format.
        codec: &'static str,
        /// Uncompressed bytes decoded before the damage.
        at: u64,
        /// Compressed bytes that did not decode (what followed the last decoded data).
        undecoded: u64,
        /// The compressed file's size.
        size: u64,
        /// What the decoder said.
        #[source]
        source: io::Error,
    },
    /// The file could not be read.
    #[error("cannot read compressed file: {source}")]
    Io {
        /// What the OS said.
        #[source]
        source: io::Error,
    },
}

impl DecodeError {
    /// Compressed bytes that did not decode (0 for an I/O error).
    pub fn undecoded(&self) -> u64 {
        match self {
            DecodeError::Damaged { undecoded, .. } => *undecoded,
            DecodeError::Io { .. } => 0,
        }
    }
}

/// Reads the file with `pread` from its own position, counting what it consumed: the
/// descriptor's shared offset is left alone.
struct Positional {
    file: Arc<File>,
    at: u64,
    consumed: Arc<AtomicU64>,
}

impl Read for Positional {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = loop {
            match self.file.read_at(buf, self.at) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other?,
            }
        };
        self.at += n as u64;
        self.consumed.store(self.at, Ordering::Relaxed);
        Ok(n)
    }
}

/// A compressed file read as its uncompressed bytes.
pub struct Decoder {
    codec: Codec,
    file: Arc<File>,
    stream: Box<dyn Read + Send>,
    /// Uncompressed bytes produced so far: the stream's position.
    position: u64,
    /// Compressed bytes the stream consumed so far.
    consumed: Arc<AtomicU64>,
    /// Compressed bytes consumed when the last decoded bytes came out.
    consumed_at_output: u64,
    /// The first error; every later read returns it again.
    failed: Option<(io::ErrorKind, String)>,
}

impl std::fmt::Debug for Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoder")
            .field("codec", &self.codec)
            .field("position", &self.position)
            .finish_non_exhaustive()
    }
}

/// Bytes decoded and dropped at a time while skipping to an offset.
const SKIP_CHUNK: usize = 64 * 1024;

impl Decoder {
    /// A decoder of `file` in format `codec`, at uncompressed offset 0.
    pub fn new(codec: Codec, file: File) -> Result<Self, DecodeError> {
        let file = Arc::new(file);
        let consumed = Arc::new(AtomicU64::new(0));
        let stream = Self::stream(codec, &file, &consumed)?;
        Ok(Self {
            codec,
            file,
            stream,
            position: 0,
            consumed,
            consumed_at_output: 0,
            failed: None,
        })
    }

    fn stream(
        codec: Codec,
        file: &Arc<File>,
        consumed: &Arc<AtomicU64>,
    ) -> Result<Box<dyn Read + Send>, DecodeError> {
        consumed.store(0, Ordering::Relaxed);
        let input = io::BufReader::with_capacity(
            SKIP_CHUNK,
            Positional {
                file: Arc::clone(file),
                at: 0,
                consumed: Arc::clone(consumed),
            },
        );
        Ok(match codec {
            Codec::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(input)),
            Codec::Zstd => Box::new(
                zstd::stream::read::Decoder::with_buffer(input)
                    .map_err(|source| DecodeError::Io { source })?,
            ),
        })
    }

    /// The format.
    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// Reads up to `buf.len()` uncompressed bytes at uncompressed `offset`; fewer only at the
    /// end of the data (0: the end). Bytes decoded before damage are returned first; the
    /// damage is the error of the next read.
    pub fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<usize, DecodeError> {
        if offset < self.position {
            // Going back: decode again from the start.
            self.stream = Self::stream(self.codec, &self.file, &self.consumed)?;
            self.position = 0;
            self.consumed_at_output = 0;
            self.failed = None;
        }
        let mut scratch = Vec::new();
        while self.position < offset {
            if scratch.is_empty() {
                scratch = vec![0u8; SKIP_CHUNK];
            }
            let want = usize::try_from(offset - self.position)
                .unwrap_or(usize::MAX)
                .min(SKIP_CHUNK);
            let n = self.fill(&mut scratch[..want])?;
            if n == 0 {
                // The offset lies past the end of the data: nothing more to read.
                return Ok(0);
            }
        }
        self.fill(buf)
    }

    /// Fills `buf` from the stream as far as it goes; remembers the first error.
    fn fill(&mut self, buf: &mut [u8]) -> Result<usize, DecodeError> {
        if let Some((kind, message)) = &self.failed {
            return Err(self.damaged(io::Error::new(*kind, message.clone())));
        }
        let mut filled = 0;
        while filled < buf.len() {
            match self.stream.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => {
                    filled += n;
                    self.position += n as u64;
                    self.consumed_at_output = self.consumed.load(Ordering::Relaxed);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.failed = Some((e.kind(), e.to_string()));
                    if filled > 0 {
                        return Ok(filled);
                    }
                    return Err(self.damaged(e));
                }
            }
        }
        Ok(filled)
    }

    /// The damage met so far, if any (a read that came back short may have stopped at it).
    pub fn damage(&self) -> Option<DecodeError> {
        self.failed
            .as_ref()
            .map(|(kind, message)| self.damaged(io::Error::new(*kind, message.clone())))
    }

    fn damaged(&self, source: io::Error) -> DecodeError {
        let size = self.file.metadata().map_or(0, |m| m.len());
        DecodeError::Damaged {
            codec: self.codec.name(),
            at: self.position,
            undecoded: size.saturating_sub(self.consumed_at_output).max(1),
            size,
            source,
        }
    }
}

/// The first uncompressed bytes of `file` (as many as fit `buf`), decoded in format `codec`;
/// fewer when the data is shorter or damaged early.
pub fn head(codec: Codec, file: &File, buf: &mut [u8]) -> Result<usize, DecodeError> {
    let file = file
        .try_clone()
        .map_err(|source| DecodeError::Io { source })?;
    let mut decoder = Decoder::new(codec, file)?;
    match decoder.read_at(0, buf) {
        Ok(n) => Ok(n),
        // Damaged before the first byte: no head.
        Err(DecodeError::Damaged { .. }) => Ok(0),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;
    use std::io::Write;

    fn text(lines: usize) -> Vec<u8> {
        (0..lines)
            .flat_map(|i| format!("line {i:06} of a rotated log\n").into_bytes())
            .collect()
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn file_with(bytes: &[u8]) -> File {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(bytes).unwrap();
        f
    }

    fn read_all(decoder: &mut Decoder, from: u64, chunk: usize) -> (Vec<u8>, Option<DecodeError>) {
        let mut out = Vec::new();
        let mut buf = vec![0u8; chunk];
        let mut at = from;
        loop {
            match decoder.read_at(at, &mut buf) {
                Ok(0) => return (out, None),
                Ok(n) => {
                    out.extend_from_slice(&buf[..n]);
                    at += n as u64;
                }
                Err(e) => return (out, Some(e)),
            }
        }
    }

    #[test]
    fn names_and_magic() {
        assert_eq!(
            Codec::of_name("0.log.20261206-110000.gz"),
            Some(Codec::Gzip)
        );
        assert_eq!(Codec::of_name("app.log.2.zst"), Some(Codec::Zstd));
        assert_eq!(Codec::of_name("app.log.2"), None);
        assert!(never_text("0.log.20261206-110000.gz.tmp"));
        assert!(never_text("app.log.1.xz"));
        assert!(!never_text("app.log.1"));
        assert!(!never_text("app.log.tmp"));
        assert!(Codec::Gzip.sniff(&gzip(b"x")));
        assert!(!Codec::Zstd.sniff(&gzip(b"x")));
        assert_eq!(
            Codec::Gzip.original(Path::new("/l/0.log.20261206-110000.gz")),
            PathBuf::from("/l/0.log.20261206-110000")
        );
    }

    #[test]
    fn gzip_and_zstd_read_back_exactly_from_any_offset() {
        let data = text(20_000);
        let zstd = zstd::encode_all(&data[..], 3).unwrap();
        for (codec, bytes) in [(Codec::Gzip, gzip(&data)), (Codec::Zstd, zstd)] {
            let mut decoder = Decoder::new(codec, file_with(&bytes)).unwrap();
            let (all, err) = read_all(&mut decoder, 0, 4096);
            assert!(err.is_none());
            assert_eq!(all, data);
            // Resuming inside, and going back.
            for from in [123_457u64, 7, 300_000] {
                let (rest, err) = read_all(&mut decoder, from, 65_536);
                assert!(err.is_none());
                assert_eq!(rest, &data[from as usize..]);
            }
            let mut head_buf = [0u8; 256];
            let n = head(codec, &decoder.file, &mut head_buf).unwrap();
            assert_eq!(&head_buf[..n], &data[..256]);
        }
    }

    #[test]
    fn concatenated_gzip_members_are_one_stream() {
        let (a, b) = (text(100), text(50));
        let mut bytes = gzip(&a);
        bytes.extend(gzip(&b));
        let mut decoder = Decoder::new(Codec::Gzip, file_with(&bytes)).unwrap();
        let (all, err) = read_all(&mut decoder, 0, 1000);
        assert!(err.is_none());
        assert_eq!(all, [a, b].concat());
    }

    #[test]
    fn a_truncated_archive_yields_what_decodes_then_its_damage() {
        let data = text(50_000);
        let bytes = gzip(&data);
        let cut = &bytes[..bytes.len() / 2];
        let mut decoder = Decoder::new(Codec::Gzip, file_with(cut)).unwrap();
        let (got, err) = read_all(&mut decoder, 0, 65_536);
        assert!(!got.is_empty() && got.len() < data.len());
        assert_eq!(got, &data[..got.len()]);
        let err = err.unwrap();
        assert!(err.undecoded() > 0, "{err}");
        // The damage stays.
        assert!(decoder.read_at(got.len() as u64, &mut [0u8; 10]).is_err());
    }

    #[test]
    fn garbage_is_damage_from_the_start() {
        let mut decoder = Decoder::new(Codec::Gzip, file_with(b"not gzip at all\n")).unwrap();
        let (got, err) = read_all(&mut decoder, 0, 100);
        assert!(got.is_empty());
        assert_eq!(err.unwrap().undecoded(), 16);
        let mut buf = [0u8; 8];
        assert_eq!(head(Codec::Gzip, &decoder.file, &mut buf).unwrap(), 0);
    }
}
