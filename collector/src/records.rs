//! From a file's bytes to its records: framing → decoding → multiline, for one file.
//!
//! A [`Records`] holds all the per-file state of that chain and drives it with nested
//! callbacks, so lines and entries stay borrowed from the chunk (or a join buffer) until the
//! caller's `emit` has consumed them — no allocation per line.

use std::time::Instant;

use crate::config::SourceConfig;
use crate::decode::{DecodeStats, Decoder, Entry};
use crate::framing::{FrameStats, Framer, Line};
use crate::multiline::{Multiline, MultilineStats};

/// Counters of the whole chain, added to by each call; the caller publishes and resets them.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CutStats {
    /// Framing counters.
    pub frame: FrameStats,
    /// Decoding counters.
    pub decode: DecodeStats,
    /// Multiline counters.
    pub multiline: MultilineStats,
}

/// The record-cutting state of one file.
#[derive(Debug)]
pub struct Records {
    framer: Framer,
    decoder: Decoder,
    multiline: Option<Multiline>,
}

impl Records {
    /// State for a file of `source` read from `offset`.
    pub fn new(source: &SourceConfig, offset: u64) -> Self {
        Self {
            framer: Framer::new(source.max_line_bytes, offset),
            decoder: Decoder::new(source.format, source.max_line_bytes),
            multiline: source.multiline.clone().map(Multiline::new),
        }
    }

    /// State from explicit parts (tests and benchmarks).
    pub fn from_parts(framer: Framer, decoder: Decoder, multiline: Option<Multiline>) -> Self {
        Self {
            framer,
            decoder,
            multiline,
        }
    }

    /// Feeds the next chunk of the file, which arrived at `now`; `emit` gets every finished
    /// record in order.
    pub fn push(
        &mut self,
        chunk: &[u8],
        now: Instant,
        stats: &mut CutStats,
        emit: &mut impl FnMut(Entry<'_>),
    ) {
        let Self {
            framer,
            decoder,
            multiline,
        } = self;
        let CutStats {
            frame,
            decode,
            multiline: ml,
        } = stats;
        match multiline {
            Some(m) => framer.push(chunk, frame, &mut |line| {
                decoder.push(line, decode, &mut |entry| m.push(entry, now, ml, emit))
            }),
            None => framer.push(chunk, frame, &mut |line| decoder.push(line, decode, emit)),
        }
    }

    /// The file will not continue where it was: emits everything pending — the unfinished last
    /// line, partial joins and the pending multi-line record. With `restart_at`, framing then
    /// starts again at that offset (truncation); without, the file is done.
    pub fn finish(
        &mut self,
        restart_at: Option<u64>,
        stats: &mut CutStats,
        emit: &mut impl FnMut(Entry<'_>),
    ) {
        let Self {
            framer,
            decoder,
            multiline,
        } = self;
        let CutStats {
            decode,
            multiline: ml,
            ..
        } = stats;
        let now = Instant::now();
        {
            let mut emit_entry = |entry: Entry<'_>| match multiline {
                Some(m) => m.push(entry, now, ml, emit),
                None => emit(entry),
            };
            let mut on_line = |line: Line<'_>| decoder.push(line, decode, &mut emit_entry);
            match restart_at {
                Some(offset) => framer.restart(offset, &mut on_line),
                None => framer.finish(&mut on_line),
            }
            decoder.finish(&mut emit_entry);
        }
        if let Some(m) = multiline {
            m.flush_all(ml, emit);
        }
    }

    /// Emits the pending multi-line records that have waited their timeout at `now`.
    pub fn flush_expired(
        &mut self,
        now: Instant,
        stats: &mut CutStats,
        emit: &mut impl FnMut(Entry<'_>),
    ) {
        if let Some(m) = &mut self.multiline {
            m.flush_expired(now, &mut stats.multiline, emit);
        }
    }

    /// Emits every pending multi-line record (shutdown: the lines are complete; partial lines
    /// are not emitted and are read again after a restart).
    pub fn flush_multiline(&mut self, stats: &mut CutStats, emit: &mut impl FnMut(Entry<'_>)) {
        if let Some(m) = &mut self.multiline {
            m.flush_all(&mut stats.multiline, emit);
        }
    }

    /// When the earliest pending multi-line record times out.
    pub fn deadline(&self) -> Option<Instant> {
        self.multiline.as_ref().and_then(Multiline::deadline)
    }

    /// File offset of the next byte expected.
    pub fn next_offset(&self) -> u64 {
        self.framer.next_offset()
    }

    /// The offset up to which the file is complete: the start of the oldest record still
    /// pending (unfinished line, partial join, multi-line record), or the next offset.
    pub fn complete_offset(&self) -> u64 {
        [
            self.framer.pending_start(),
            self.decoder.pending_start(),
            self.multiline.as_ref().and_then(Multiline::pending_start),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or_else(|| self.framer.next_offset())
    }
}
