//! Cutting: from a file's bytes to its records — framing → decoding → multiline — for one file.
//!
//! - [`framing`]: bytes into lines, with bounded memory.
//! - [`decode`]: `raw`, `cri` and `docker` lines into entries, partial lines joined.
//! - [`multiline`]: entries joined into multi-line records (stack traces).
//!
//! A [`Records`] holds all the per-file state of that chain and drives it with nested
//! callbacks, so lines and entries stay borrowed from the chunk (or a join buffer) until the
//! caller's `emit` has consumed them — no allocation per line. [`CutSettings`] is what a
//! source says about cutting its files.
//!
//! Owns the bytes-to-records rules; it may not touch files, queues or encodings: bytes come in
//! as slices and records leave through `emit`.

pub mod decode;
pub mod framing;
pub mod multiline;

use std::sync::Arc;
use std::time::{Duration, Instant};

use decode::{DecodeStats, Decoder, Entry, Format};
use framing::{FrameStats, Framer, Line};
use multiline::{Multiline, MultilineRules, MultilineStats};

/// 16× the kubelet's 16 KiB CRI split, so big JSON log lines survive joining, while one
/// stream's partial-line state stays bounded.
pub const DEFAULT_MAX_LINE_BYTES: usize = 256 * 1024;
/// An unfinished line waits this long for more data once its file (a CRI/docker partial: its
/// stream) has nothing more to read: a container's last output without a newline (its runtime
/// writes a CRI `P` record) appears seconds after it exits, not never; a line written in
/// pieces slower than this is cut in two (counted). Time spent behind a backlog does not
/// count: what is on disk is read first.
pub const DEFAULT_PARTIAL_TIMEOUT: Duration = Duration::from_secs(5);

/// How a source's files are cut into records.
#[derive(Debug, Clone)]
pub struct CutSettings {
    /// Line format.
    pub format: Format,
    /// Longest line (and joined partial line) kept; longer ones are cut and flagged.
    pub max_line_bytes: usize,
    /// How long an unfinished line (no newline yet, or a CRI/docker partial without its
    /// end) may wait for more data, once its file has nothing more to read, before it is
    /// emitted as it is. The reader times it (it knows when nothing more is to be read) and
    /// tells the worker ([`crate::work::item::WorkItem::Idle`]); a partial also goes out
    /// while the file's other stream goes on, once a read to the file's end shows its own
    /// stream had nothing for this long ([`Records::flush_expired`]).
    pub partial_timeout: Duration,
    /// Multi-line joining, if configured.
    pub multiline: Option<Arc<MultilineRules>>,
}

impl CutSettings {
    /// How long a file with nothing more to read waits before what is pending at its end is
    /// emitted: `partial_timeout` for an unfinished line, the multi-line `timeout` (when
    /// joining) for a pending record. The reader times both ([`crate::work::item::WorkItem::Idle`]).
    pub fn idle_timeouts(&self) -> (Duration, Option<Duration>) {
        (
            self.partial_timeout,
            self.multiline.as_ref().map(|m| m.timeout),
        )
    }

    /// Lines of `format`, every other setting at its default.
    pub fn new(format: Format) -> Self {
        Self {
            format,
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
            partial_timeout: DEFAULT_PARTIAL_TIMEOUT,
            multiline: None,
        }
    }
}

/// Counters of the whole chain, added to by each call; the caller publishes and resets them.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CutStats {
    /// Unfinished lines emitted as they were: their file (a partial: its stream) had nothing
    /// more for `partial_timeout`.
    pub partial_flushed: u64,
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
    /// Boxed: most files have none, and a file's state is kept for as long as it is followed.
    multiline: Option<Box<Multiline>>,
}

impl Records {
    /// State for a file cut with `settings`, read from `offset`.
    pub fn new(settings: &CutSettings, offset: u64) -> Self {
        Self {
            framer: Framer::new(settings.max_line_bytes, offset),
            decoder: Decoder::new(
                settings.format,
                settings.max_line_bytes,
                settings.partial_timeout,
            ),
            multiline: settings
                .multiline
                .clone()
                .map(|m| Box::new(Multiline::new(m))),
        }
    }

    /// State from explicit parts (tests and benchmarks).
    pub fn from_parts(framer: Framer, decoder: Decoder, multiline: Option<Multiline>) -> Self {
        Self {
            framer,
            decoder,
            multiline: multiline.map(Box::new),
        }
    }

    /// Feeds the next chunk of the file, whose lines were written by `read_at` (the reader's
    /// clock: see [`multiline`]); `emit` gets every finished record in order.
    pub fn push(
        &mut self,
        chunk: &[u8],
        read_at: Instant,
        stats: &mut CutStats,
        emit: &mut impl FnMut(Entry<'_>),
    ) {
        let Self {
            framer,
            decoder,
            multiline,
            ..
        } = self;
        let CutStats {
            frame,
            decode,
            multiline: ml,
            ..
        } = stats;
        match multiline {
            Some(m) => framer.push(chunk, frame, &mut |line| {
                decoder.push(line, read_at, decode, &mut |entry| {
                    m.push(entry, read_at, ml, emit)
                })
            }),
            None => framer.push(chunk, frame, &mut |line| {
                decoder.push(line, read_at, decode, emit)
            }),
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
            ..
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
            let mut on_line = |line: Line<'_>| decoder.push(line, now, decode, &mut emit_entry);
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

    /// The file had nothing more to read for `partial_timeout`: emits the unfinished line or
    /// partial join pending now as it is (counted); cutting goes on where it was.
    pub fn flush_unfinished(&mut self, stats: &mut CutStats, emit: &mut impl FnMut(Entry<'_>)) {
        let Self {
            framer,
            decoder,
            multiline,
        } = self;
        let CutStats {
            decode,
            multiline: ml,
            partial_flushed,
            ..
        } = stats;
        // The line was read before now: timing it from now only delays its record.
        let now = Instant::now();
        let mut emit_entry = |entry: Entry<'_>| {
            *partial_flushed += 1;
            match multiline {
                Some(m) => m.push(entry, now, ml, emit),
                None => emit(entry),
            }
        };
        let next = framer.next_offset();
        framer.restart(next, &mut |line| {
            decoder.push(line, now, decode, &mut emit_entry)
        });
        decoder.finish(&mut emit_entry);
    }

    /// The file was read to its end by a read started at `read_at`, and everything read was
    /// pushed: emits each stream's partial line whose last piece came `partial_timeout` or
    /// more before it, as it is (counted, as when the whole file is quiet:
    /// [`Decoder::flush_expired`]), then each stream's pending multi-line record whose last
    /// line came the multi-line `timeout` or more before it ([`Multiline::flush_expired`]),
    /// unless a partial line of that stream is still being joined (the stream wrote it).
    ///
    /// Nothing expires while the read ended in an unfinished line: it may be the piece or
    /// line a pending record waits for, still being written (the whole-file idle notice
    /// covers a line that is never finished).
    pub fn flush_expired(
        &mut self,
        read_at: Instant,
        stats: &mut CutStats,
        emit: &mut impl FnMut(Entry<'_>),
    ) {
        let Self {
            framer,
            decoder,
            multiline,
        } = self;
        if framer.pending_start().is_some() {
            return;
        }
        let CutStats {
            multiline: ml,
            partial_flushed,
            ..
        } = stats;
        decoder.flush_expired(read_at, &mut |entry, last| {
            *partial_flushed += 1;
            match multiline {
                Some(m) => m.push(entry, last.unwrap_or(read_at), ml, emit),
                None => emit(entry),
            }
        });
        if let Some(m) = multiline {
            m.flush_expired(read_at, decoder.joining(), ml, emit);
        }
    }

    /// Emits every pending multi-line record: its file had nothing more to read for the
    /// multi-line `timeout`, or the collector shuts down (the lines are complete; partial
    /// lines are not emitted and are read again after a restart).
    pub fn flush_multiline(&mut self, stats: &mut CutStats, emit: &mut impl FnMut(Entry<'_>)) {
        if let Some(m) = &mut self.multiline {
            m.flush_all(&mut stats.multiline, emit);
        }
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
            self.multiline.as_deref().and_then(Multiline::pending_start),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or_else(|| self.framer.next_offset())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(format: Format) -> Records {
        Records::from_parts(
            Framer::new(1024, 0),
            Decoder::new(format, 1024, std::time::Duration::from_secs(5)),
            None,
        )
    }

    fn collect(out: &mut Vec<(u64, String)>) -> impl FnMut(Entry<'_>) + '_ {
        |e| out.push((e.offset, String::from_utf8_lossy(e.message).into_owned()))
    }

    #[test]
    fn an_unfinished_line_is_emitted_when_its_file_is_idle_and_reading_goes_on() {
        let t0 = Instant::now();
        let mut stats = CutStats::default();
        let mut out = Vec::new();
        // CRI: a last `P` record (output without a newline) waits for its `F`.
        let mut cri = records(Format::Cri);
        let p = b"2026-01-01T00:00:00Z stdout F one\n2026-01-01T00:00:01Z stdout P no end\n";
        cri.push(p, t0, &mut stats, &mut collect(&mut out));
        assert_eq!(out, vec![(0, "one".to_string())]);
        assert_eq!(cri.complete_offset(), 34);
        cri.flush_unfinished(&mut stats, &mut collect(&mut out));
        assert_eq!(out[1], (34, "no end".to_string()));
        assert_eq!(stats.partial_flushed, 1);
        assert_eq!(cri.complete_offset(), p.len() as u64);
        // Its late end is a record of its own; nothing is lost or repeated.
        let f = b"2026-01-01T00:00:09Z stdout F  after all\n";
        cri.push(f, t0, &mut stats, &mut collect(&mut out));
        assert_eq!(out[2], (p.len() as u64, " after all".to_string()));

        // Raw: bytes without a newline, then more of the file.
        let mut out = Vec::new();
        let mut raw = records(Format::Raw);
        raw.push(b"whole\nhalf", t0, &mut stats, &mut collect(&mut out));
        raw.flush_unfinished(&mut stats, &mut collect(&mut out));
        // Nothing unfinished: nothing emitted, nothing counted.
        raw.flush_unfinished(&mut stats, &mut collect(&mut out));
        raw.push(b" more\n", t0, &mut stats, &mut collect(&mut out));
        assert_eq!(
            out,
            vec![
                (0, "whole".to_string()),
                (6, "half".to_string()),
                (10, " more".to_string())
            ]
        );
        assert_eq!(stats.partial_flushed, 2);
        assert_eq!(raw.complete_offset(), 16);
    }

    #[test]
    fn a_streams_partial_line_expires_on_a_read_to_the_end_while_the_other_stream_goes_on() {
        let t0 = Instant::now();
        let s = std::time::Duration::from_secs;
        let mut stats = CutStats::default();
        let mut out = Vec::new();
        let mut cri = records(Format::Cri);
        // stdout writes a `P` and never its `F`; stderr goes on writing.
        let p = b"2026-01-01T00:00:00Z stdout P no end\n";
        cri.push(p, t0, &mut stats, &mut collect(&mut out));
        let mut offset = p.len() as u64;
        for second in 1..=6 {
            let line = format!("2026-01-01T00:00:0{second}Z stderr F tick {second}\n");
            cri.push(
                line.as_bytes(),
                t0 + s(second),
                &mut stats,
                &mut collect(&mut out),
            );
            offset += line.len() as u64;
            // Each read found the end; it was started a moment before it was done.
            cri.flush_expired(t0 + s(second), &mut stats, &mut collect(&mut out));
            let flushed = out.iter().any(|(_, m)| m == "no end");
            // The partial timeout is 5 s: out once a read started 5 s after its piece.
            assert_eq!(flushed, second >= 5, "after {second} s: {out:?}");
        }
        assert_eq!(stats.partial_flushed, 1);
        assert_eq!(out.iter().filter(|(_, m)| m.starts_with("tick")).count(), 6);
        assert_eq!(
            cri.complete_offset(),
            offset,
            "nothing pending holds the checkpoint"
        );
        // A piece read later restarts the wait: a read that found the end 1 s after it
        // expires nothing.
        let p = b"2026-01-01T00:00:07Z stderr P half\n";
        cri.push(p, t0 + s(7), &mut stats, &mut collect(&mut out));
        cri.flush_expired(t0 + s(8), &mut stats, &mut collect(&mut out));
        assert!(!out.iter().any(|(_, m)| m == "half"));
        assert_eq!(cri.complete_offset(), offset);
        cri.flush_expired(t0 + s(12), &mut stats, &mut collect(&mut out));
        assert_eq!(
            out.last().map(|(o, m)| (*o, m.as_str())),
            Some((offset, "half"))
        );
        assert_eq!(stats.partial_flushed, 2);
        // A read that ends in an unfinished line expires nothing: it may be the end the
        // partial waits for, still being written.
        let p = b"2026-01-01T00:00:13Z stdout P a long\n";
        cri.push(p, t0 + s(13), &mut stats, &mut collect(&mut out));
        cri.push(
            b"2026-01-01T00:00:14Z stdout F  li",
            t0 + s(14),
            &mut stats,
            &mut collect(&mut out),
        );
        cri.flush_expired(t0 + s(20), &mut stats, &mut collect(&mut out));
        assert!(!out.iter().any(|(_, m)| m.starts_with("a long")), "{out:?}");
        cri.push(b"ne\n", t0 + s(21), &mut stats, &mut collect(&mut out));
        assert_eq!(out.last().map(|(_, m)| m.as_str()), Some("a long line"));
        assert_eq!(stats.partial_flushed, 2);
    }
}
