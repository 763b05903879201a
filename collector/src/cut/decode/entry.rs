//! What decoding produces: an [`Entry`] (message, stream, time, offset), borrowed from a
//! framed line or a join buffer; a [`Held`] entry, built from pieces that may still come; and
//! the decoders' counters.
//!
//! Owns the entry's shape; it may not parse.

use std::time::{Duration, Instant};

use crate::cut::framing::Line;

/// Which output stream of a container an entry came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stream {
    /// Standard output.
    Stdout = 0,
    /// Standard error.
    Stderr = 1,
    /// Not known (raw files, malformed lines).
    Unknown = 2,
}

impl Stream {
    /// Number of streams; per-stream state is an array of this size.
    pub const COUNT: usize = 3;
    /// Every stream, in [`Stream::index`] order.
    pub const ALL: [Stream; Stream::COUNT] = [Stream::Stdout, Stream::Stderr, Stream::Unknown];

    /// The name used in records, when known.
    pub fn name(self) -> Option<&'static str> {
        match self {
            Stream::Stdout => Some("stdout"),
            Stream::Stderr => Some("stderr"),
            Stream::Unknown => None,
        }
    }

    /// Index into per-stream arrays.
    pub fn index(self) -> usize {
        self as usize
    }

    pub(crate) fn parse(name: &[u8]) -> Option<Self> {
        match name {
            b"stdout" => Some(Stream::Stdout),
            b"stderr" => Some(Stream::Stderr),
            _ => None,
        }
    }
}

/// One decoded entry, borrowing from a framed line or a join buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry<'a> {
    /// File offset of the first byte of the entry's first line.
    pub offset: u64,
    /// The message.
    pub message: &'a [u8],
    /// The stream, when the format has one.
    pub stream: Stream,
    /// The time as written in the file (RFC 3339), empty when the format has none.
    pub time: &'a [u8],
    /// The message was cut to a size limit.
    pub truncated: bool,
    /// Why the line did not parse in its format; the message is then the whole line.
    pub error: Option<&'static str>,
}

impl<'a> Entry<'a> {
    /// An entry for a raw line.
    pub fn raw(line: Line<'a>) -> Self {
        Self {
            offset: line.offset,
            message: line.bytes,
            stream: Stream::Unknown,
            time: &[],
            truncated: line.truncated,
            error: None,
        }
    }

    pub(crate) fn malformed(line: Line<'a>, error: &'static str) -> Self {
        Self {
            error: Some(error),
            ..Self::raw(line)
        }
    }
}

/// An entry being built from pieces that may still come — a CRI/docker partial line's
/// pieces, a multi-line record's lines — owned, one per stream of a file.
#[derive(Debug, Default)]
pub struct Held {
    /// Whether an entry is held.
    pub active: bool,
    /// File offset of its first piece.
    pub offset: u64,
    /// Its time (its first piece's).
    pub time: Vec<u8>,
    /// Its message so far.
    pub message: Vec<u8>,
    /// A piece of it was cut to a size limit.
    pub truncated: bool,
    /// When the read that brought its last piece was done (the reader's clock): every piece
    /// was written before it.
    pub last: Option<Instant>,
}

impl Held {
    /// Starts holding an entry at `offset` with `time` and no message yet, its first piece
    /// read by `read_at`.
    pub fn begin(&mut self, offset: u64, time: &[u8], read_at: Instant) {
        self.active = true;
        self.offset = offset;
        self.time.clear();
        self.time.extend_from_slice(time);
        self.message.clear();
        self.truncated = false;
        self.last = Some(read_at);
    }

    /// An entry is held and its last piece was read `timeout` or more before `read_at`.
    pub fn expired(&self, read_at: Instant, timeout: Duration) -> bool {
        self.active
            && self
                .last
                .is_some_and(|last| read_at.saturating_duration_since(last) >= timeout)
    }

    /// Emits the held entry as `stream`'s, if there is one, with when its last piece was
    /// read; then keeps at most `keep` bytes of the message's buffer, so that one huge entry
    /// does not pin its memory for the life of the file. Returns whether one was emitted.
    pub fn emit(
        &mut self,
        stream: Stream,
        keep: usize,
        emit: impl FnOnce(Entry<'_>, Option<Instant>),
    ) -> bool {
        if !self.active {
            return false;
        }
        emit(
            Entry {
                offset: self.offset,
                message: &self.message,
                stream,
                time: &self.time,
                truncated: self.truncated,
                error: None,
            },
            self.last,
        );
        self.active = false;
        self.message.clear();
        if self.message.capacity() > keep {
            self.message.shrink_to(keep);
        }
        true
    }
}

/// Counters of a decoder, added to by each call; the caller publishes and resets them.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DecodeStats {
    /// Lines that did not parse.
    pub malformed: u64,
    /// Joined messages cut at `max_line_bytes`.
    pub truncated: u64,
    /// Bytes dropped from joined messages that were cut.
    pub truncated_bytes: u64,
}
