//! Line formats: turning framed lines into entries (message, stream, time).
//!
//! - `raw`: the line is the message.
//! - `cri` ([`cri`]): `<RFC3339 time> <stdout|stderr> <P|F> <message>`; `P` partials are joined
//!   with the following lines of the same stream up to the final `F`.
//! - `docker` ([`docker`]): json-file `{"log":…,"stream":…,"time":…}`; the runtime's 16 KiB
//!   splits (a `log` without a final `\n`) are joined.
//!
//! Joins are per stream — stdout and stderr of one container never merge — and bounded by
//! `max_line_bytes`: a joined message that would grow past it is cut and flagged `truncated`.
//! A line that does not parse is passed on as it is with an `error`, and counted; nothing is
//! dropped.
//!
//! Owns the line formats and choosing a decoder; it may not touch what comes after decoding
//! (multiline).

pub mod cri;
pub mod docker;
pub mod entry;
pub mod joins;

pub use entry::{DecodeStats, Entry, Stream};

use std::time::{Duration, Instant};

use crate::cut::framing::Line;

/// The line format of a source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One record per line, as is.
    Raw,
    /// Kubernetes CRI: `<time> <stream> <P|F> <message>`.
    Cri,
    /// Docker json-file: `{"log":…,"stream":…,"time":…}`.
    Docker,
}

/// A decoder for one file: the format's parser plus its per-stream join state.
#[derive(Debug)]
pub enum Decoder {
    /// Lines are messages.
    Raw,
    /// Kubernetes CRI.
    Cri(cri::CriDecoder),
    /// Docker json-file.
    Docker(docker::DockerDecoder),
}

impl Decoder {
    /// A decoder for `format`, joining partial lines up to `max_line_bytes`; a stream's
    /// partial line waits `partial_timeout` for its next piece.
    pub fn new(format: Format, max_line_bytes: usize, partial_timeout: Duration) -> Self {
        match format {
            Format::Raw => Decoder::Raw,
            Format::Cri => Decoder::Cri(cri::CriDecoder::new(max_line_bytes, partial_timeout)),
            Format::Docker => {
                Decoder::Docker(docker::DockerDecoder::new(max_line_bytes, partial_timeout))
            }
        }
    }

    /// Decodes one line, read by a read done at `read_at`; `emit` is called for the finished
    /// entry, if the line finishes one.
    pub fn push(
        &mut self,
        line: Line<'_>,
        read_at: Instant,
        stats: &mut DecodeStats,
        emit: &mut impl FnMut(Entry<'_>),
    ) {
        match self {
            Decoder::Raw => emit(Entry::raw(line)),
            Decoder::Cri(d) => d.push(line, read_at, stats, emit),
            Decoder::Docker(d) => d.push(line, read_at, stats, emit),
        }
    }

    /// The file was read to its end by a read started at `read_at`: emits each stream's
    /// partial message that waited `partial_timeout` ([`joins::Joins::flush_expired`]), with the
    /// time its last piece was read.
    pub fn flush_expired(
        &mut self,
        read_at: Instant,
        emit: &mut impl FnMut(Entry<'_>, Option<Instant>),
    ) {
        if let Some(joins) = self.joins_mut() {
            joins.flush_expired(read_at, emit);
        }
    }

    /// The file will not grow: emits every pending partial message as it is.
    pub fn finish(&mut self, emit: &mut impl FnMut(Entry<'_>)) {
        if let Some(joins) = self.joins_mut() {
            joins.finish(emit);
        }
    }

    /// Which streams have a partial message being joined (by [`Stream::index`]).
    pub fn joining(&self) -> [bool; Stream::COUNT] {
        self.joins()
            .map_or([false; Stream::COUNT], joins::Joins::joining)
    }

    /// File offset of the oldest pending partial message, if any.
    pub fn pending_start(&self) -> Option<u64> {
        self.joins().and_then(joins::Joins::pending_start)
    }

    /// The format's per-stream join state (`raw` has none).
    fn joins(&self) -> Option<&joins::Joins> {
        match self {
            Decoder::Raw => None,
            Decoder::Cri(d) => Some(&d.joins),
            Decoder::Docker(d) => Some(&d.joins),
        }
    }

    fn joins_mut(&mut self) -> Option<&mut joins::Joins> {
        match self {
            Decoder::Raw => None,
            Decoder::Cri(d) => Some(&mut d.joins),
            Decoder::Docker(d) => Some(&mut d.joins),
        }
    }
}
