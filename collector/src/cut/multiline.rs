//! Joining multi-line records (stack traces and the like), per file and per stream.
//!
//! Rules, applied to each entry's message:
//! - `start: RE` — a line that matches begins a new record; any other line joins the pending
//!   record (or begins one if none is pending);
//! - `continue: RE` — a line that matches joins the pending record; any other line begins one;
//! - `preset: java|python|node|go` — the runtime's stack-trace grammar ([`preset`]);
//! - `mode: auto` — the record-start shape ([`shape`]) is learnt per stream from the first
//!   lines that have one; then a line that begins with it begins a record and any other line
//!   joins. Lines before a shape is found pass alone; with none in the first
//!   [`AUTO_LEARN_LINES`], the stream's lines all pass alone (counted);
//! - `end: RE` (optional) — a line that matches ends the record it is part of;
//! - `max_lines`, `max_bytes` — a line that would push the pending record past either limit
//!   begins a new record instead: records are split, never cut, so nothing is lost;
//! - `timeout` — a pending record is emitted once no line of its stream was written for this
//!   long. Times are the reader's, never the worker's: a line carries when the reads of its
//!   round were done (it was written before), and a record is emitted
//!   ([`Multiline::flush_expired`]) only when a read that reached the file's end was started
//!   `timeout` after its last line's time — everything written before then has been seen, so
//!   its rest cannot be waiting on disk behind a backlog — or when the whole file had nothing
//!   more to read for `timeout` ([`crate::work::item::WorkItem::Idle`],
//!   [`Multiline::flush_all`]). While a file is read from a backlog (no read reaches its
//!   end), a stream's record waits until the reader catches up.
//!
//! Joined lines are separated by `\n`. A record takes the offset, stream and time of its first
//! line. Malformed entries (with an `error`) are never joined: they flush the pending record of
//! their stream and pass on alone.
//!
//! Owns joining by rules and timeouts; it may not parse a line format.

pub mod preset;
pub mod shape;

use std::time::{Duration, Instant};

use regex::bytes::Regex;

use crate::cut::decode::entry::Held;
use crate::cut::decode::{Entry, Stream};
pub use preset::{PRESETS, Preset, PresetState};
use shape::Shape;

/// How a line is classified.
#[derive(Debug, Clone)]
pub enum MultilineMode {
    /// Lines matching the regex begin records.
    Start(Regex),
    /// Lines matching the regex continue records.
    Continue(Regex),
    /// A runtime's stack-trace grammar.
    Preset(Preset),
    /// The record-start shape learnt from each stream's first lines.
    Auto,
}

/// Most lines in one multi-line record (a deep Java trace is a few hundred lines).
pub const DEFAULT_MULTILINE_MAX_LINES: usize = 1000;
/// Most bytes in one multi-line record.
pub const DEFAULT_MULTILINE_MAX_BYTES: usize = 1024 * 1024;
/// A pending multi-line record is emitted once no line of its stream was written for this long.
pub const DEFAULT_MULTILINE_TIMEOUT: Duration = Duration::from_secs(1);
/// `mode: auto` looks this many lines of a stream for a record-start shape.
pub const AUTO_LEARN_LINES: u32 = 100;

/// Validated multiline rules of a source.
#[derive(Debug, Clone)]
pub struct MultilineRules {
    /// Start or continue classification.
    pub mode: MultilineMode,
    /// Lines matching this end their record.
    pub end: Option<Regex>,
    /// Most lines per record.
    pub max_lines: usize,
    /// Most bytes per record.
    pub max_bytes: usize,
    /// Emit a pending record once no line of its stream was written for this long (timed by
    /// the reader's clock: see the module documentation).
    pub timeout: Duration,
}

/// The rules of a preset, if `name` is one.
pub fn preset(name: &str) -> Option<MultilineMode> {
    Preset::named(name).map(MultilineMode::Preset)
}

/// What `mode: auto` knows of one stream's record-start shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Learnt {
    /// No shape yet, after this many lines.
    Learning(u32),
    /// Records begin with this shape.
    Shape(Shape),
    /// No shape in the first [`AUTO_LEARN_LINES`]: lines pass alone.
    Unshaped,
}

impl Default for Learnt {
    fn default() -> Self {
        Learnt::Learning(0)
    }
}

/// How one stream's lines are classified under a mode: the state a preset keeps for the
/// pending record, and the shape `mode: auto` learnt. The joiner keeps one per stream; the
/// property tests drive one directly as their model of classification.
#[derive(Debug, Clone, Default)]
pub struct Classifier {
    preset: PresetState,
    learnt: Learnt,
}

impl Classifier {
    /// Whether `line` joins the pending record (`pending`: one is pending), by the mode's
    /// rules alone (limits are the caller's). When it does not, the caller calls
    /// [`begin`](Self::begin) for it.
    pub fn joins(
        &mut self,
        mode: &MultilineMode,
        pending: bool,
        line: &[u8],
        stats: &mut MultilineStats,
    ) -> bool {
        match mode {
            MultilineMode::Start(re) => pending && !re.is_match(line),
            MultilineMode::Continue(re) => pending && re.is_match(line),
            MultilineMode::Preset(preset) => pending && preset.joins(&mut self.preset, line),
            MultilineMode::Auto => match self.learnt {
                Learnt::Shape(shape) => pending && !shape.matches(line),
                Learnt::Learning(seen) => {
                    match shape::shape_of(line) {
                        Some(shape) => {
                            self.learnt = Learnt::Shape(shape);
                            stats.shapes[shape.index()] += 1;
                        }
                        None if seen + 1 >= AUTO_LEARN_LINES => {
                            self.learnt = Learnt::Unshaped;
                            stats.unshaped += 1;
                            stats.unjoined += 1;
                        }
                        None => {
                            self.learnt = Learnt::Learning(seen + 1);
                            stats.unjoined += 1;
                        }
                    }
                    false
                }
                Learnt::Unshaped => {
                    stats.unjoined += 1;
                    false
                }
            },
        }
    }

    /// `line` begins a record.
    pub fn begin(&mut self, mode: &MultilineMode, line: &[u8]) {
        if let MultilineMode::Preset(preset) = mode {
            self.preset = preset.begin(line);
        }
    }
}

/// Counters of a joiner, added to by each call; the caller publishes and resets them.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct MultilineStats {
    /// Records emitted that were joined from two or more lines.
    pub joined: u64,
    /// `mode: auto`: streams that took each shape (indexed by [`Shape::index`]).
    pub shapes: [u64; Shape::ALL.len()],
    /// `mode: auto`: streams with no shape in their first lines.
    pub unshaped: u64,
    /// `mode: auto`: lines passed alone because their stream had no shape (yet).
    pub unjoined: u64,
}

/// The pending records of one file, one per stream.
#[derive(Debug)]
pub struct Multiline {
    rules: std::sync::Arc<MultilineRules>,
    pending: [Pending; Stream::COUNT],
}

#[derive(Debug, Default)]
struct Pending {
    classifier: Classifier,
    record: Held,
    lines: usize,
}

/// Buffer capacity a stream's record keeps after it is emitted (a huge one gives the rest
/// back).
const KEEP_BYTES: usize = 256 * 1024;

impl Pending {
    fn emit(
        &mut self,
        stream: Stream,
        stats: &mut MultilineStats,
        emit: &mut impl FnMut(Entry<'_>),
    ) {
        let lines = self.lines;
        if self.record.emit(stream, KEEP_BYTES, |entry, _| emit(entry)) && lines > 1 {
            stats.joined += 1;
        }
    }

    fn begin(&mut self, entry: &Entry<'_>, read_at: Instant) {
        self.record.begin(entry.offset, entry.time, read_at);
        self.record.message.extend_from_slice(entry.message);
        self.record.truncated = entry.truncated;
        self.lines = 1;
    }
}

impl Multiline {
    /// A joiner with the given rules.
    pub fn new(rules: std::sync::Arc<MultilineRules>) -> Self {
        Self {
            rules,
            pending: Default::default(),
        }
    }

    /// Handles one entry, written by `read_at` (the reader's clock); `emit` is called for each
    /// finished record.
    pub fn push(
        &mut self,
        entry: Entry<'_>,
        read_at: Instant,
        stats: &mut MultilineStats,
        emit: &mut impl FnMut(Entry<'_>),
    ) {
        let stream = entry.stream;
        let rules = &*self.rules;
        let pending = &mut self.pending[stream.index()];
        if entry.error.is_some() {
            pending.emit(stream, stats, emit);
            emit(entry);
            return;
        }
        let joins =
            pending
                .classifier
                .joins(&rules.mode, pending.record.active, entry.message, stats)
                && pending.lines < rules.max_lines
                && pending.record.message.len() + 1 + entry.message.len() <= rules.max_bytes;
        if joins {
            let record = &mut pending.record;
            record.message.push(b'\n');
            record.message.extend_from_slice(entry.message);
            record.truncated |= entry.truncated;
            record.last = Some(read_at);
            pending.lines += 1;
        } else {
            pending.emit(stream, stats, emit);
            pending.classifier.begin(&rules.mode, entry.message);
            pending.begin(&entry, read_at);
        }
        if rules
            .end
            .as_ref()
            .is_some_and(|end| end.is_match(entry.message))
        {
            pending.emit(stream, stats, emit);
        }
    }

    /// The file was read to its end by a read started at `read_at`, and every line it brought
    /// was pushed: emits each stream's pending record whose last line came `timeout` or more
    /// before it, except on the streams that are `joining` a partial line (written since).
    pub fn flush_expired(
        &mut self,
        read_at: Instant,
        joining: [bool; Stream::COUNT],
        stats: &mut MultilineStats,
        emit: &mut impl FnMut(Entry<'_>),
    ) {
        let timeout = self.rules.timeout;
        for ((pending, stream), joining) in self.pending.iter_mut().zip(Stream::ALL).zip(joining) {
            if !joining && pending.record.expired(read_at, timeout) {
                pending.emit(stream, stats, emit);
            }
        }
    }

    /// Emits every pending record.
    pub fn flush_all(&mut self, stats: &mut MultilineStats, emit: &mut impl FnMut(Entry<'_>)) {
        for (pending, stream) in self.pending.iter_mut().zip(Stream::ALL) {
            pending.emit(stream, stats, emit);
        }
    }

    /// File offset of the oldest pending record, if any.
    pub fn pending_start(&self) -> Option<u64> {
        self.pending
            .iter()
            .filter(|p| p.record.active)
            .map(|p| p.record.offset)
            .min()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn rules(mode: MultilineMode) -> Arc<MultilineRules> {
        Arc::new(MultilineRules {
            mode,
            end: None,
            max_lines: 100,
            max_bytes: 10_000,
            timeout: Duration::from_millis(500),
        })
    }

    fn entry(offset: u64, message: &[u8]) -> Entry<'_> {
        Entry {
            offset,
            message,
            stream: Stream::Stdout,
            time: b"",
            truncated: false,
            error: None,
        }
    }

    fn run(m: &mut Multiline, lines: &[&str]) -> Vec<(u64, String)> {
        let mut out = Vec::new();
        let mut stats = MultilineStats::default();
        let mut offset = 0;
        let now = Instant::now();
        for l in lines {
            m.push(entry(offset, l.as_bytes()), now, &mut stats, &mut |e| {
                out.push((e.offset, String::from_utf8_lossy(e.message).into_owned()))
            });
            offset += l.len() as u64 + 1;
        }
        m.flush_all(&mut stats, &mut |e| {
            out.push((e.offset, String::from_utf8_lossy(e.message).into_owned()))
        });
        out
    }

    #[test]
    fn java_preset_joins_a_stack_trace() {
        let mut m = Multiline::new(rules(preset("java").unwrap()));
        let out = run(
            &mut m,
            &[
                "2024-01-01 ERROR failed",
                "java.lang.IllegalStateException: boom",
                "\tat com.example.A.b(A.java:10)",
                "\t... 3 more",
                "Caused by: java.io.IOException: disk",
                "\tat com.example.C.d(C.java:5)",
                "2024-01-01 INFO next",
            ],
        );
        assert_eq!(out.len(), 2, "{out:?}");
        assert_eq!(out[0].0, 0);
        assert!(out[0].1.ends_with("C.java:5)") && out[0].1.contains("\nCaused by:"));
        assert_eq!(out[1].1, "2024-01-01 INFO next");
    }

    #[test]
    fn python_preset_joins_a_traceback() {
        let mut m = Multiline::new(rules(preset("python").unwrap()));
        let out = run(
            &mut m,
            &[
                "ERROR:root:failed",
                "Traceback (most recent call last):",
                "  File \"x.py\", line 1, in <module>",
                "    f()",
                "ValueError: bad",
                "INFO:root:next",
            ],
        );
        assert_eq!(out.len(), 2, "{out:?}");
        assert!(out[0].1.ends_with("ValueError: bad"));
    }

    #[test]
    fn go_preset_joins_a_panic() {
        let mut m = Multiline::new(rules(preset("go").unwrap()));
        let out = run(
            &mut m,
            &[
                "panic: boom",
                "",
                "goroutine 1 [running]:",
                "main.main()",
                "\t/app/main.go:5 +0x1d",
                "exit status 2",
                "level=info msg=next",
            ],
        );
        assert_eq!(out.len(), 2, "{out:?}");
        assert!(out[0].1.starts_with("panic: boom\n\ngoroutine 1"));
    }

    #[test]
    fn start_mode_and_end_pattern() {
        let mut r = (*rules(MultilineMode::Start(Regex::new(r"^\d{4}-").unwrap()))).clone();
        r.end = Some(Regex::new("END$").unwrap());
        let mut m = Multiline::new(Arc::new(r));
        let out = run(&mut m, &["orphan", "2024- a", "b", "c END", "d", "2024- e"]);
        let msgs: Vec<&str> = out.iter().map(|(_, s)| s.as_str()).collect();
        assert_eq!(msgs, vec!["orphan", "2024- a\nb\nc END", "d", "2024- e"]);
    }

    #[test]
    fn limits_split_records_without_losing_lines() {
        let mut r = (*rules(MultilineMode::Continue(Regex::new("^ ").unwrap()))).clone();
        r.max_lines = 2;
        let mut m = Multiline::new(Arc::new(r));
        let out = run(&mut m, &["a", " 1", " 2", " 3"]);
        let msgs: Vec<&str> = out.iter().map(|(_, s)| s.as_str()).collect();
        assert_eq!(msgs, vec!["a\n 1", " 2\n 3"]);

        let mut r = (*rules(MultilineMode::Continue(Regex::new("^ ").unwrap()))).clone();
        r.max_bytes = 5;
        let mut m = Multiline::new(Arc::new(r));
        let out = run(&mut m, &["abc", " d", " efgh"]);
        let msgs: Vec<&str> = out.iter().map(|(_, s)| s.as_str()).collect();
        assert_eq!(msgs, vec!["abc", " d", " efgh"]);
    }

    #[test]
    fn a_stream_expires_only_by_a_read_to_the_end_timeout_after_its_last_line() {
        let mut m = Multiline::new(rules(preset("java").unwrap()));
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut stats = MultilineStats::default();
        let mut out = Vec::new();
        m.push(entry(7, b"first"), t0, &mut stats, &mut |e| {
            out.push(e.offset)
        });
        m.push(
            Entry {
                stream: Stream::Stderr,
                ..entry(13, b"second")
            },
            t0 + ms(300),
            &mut stats,
            &mut |e| out.push(e.offset),
        );
        assert_eq!(m.pending_start(), Some(7));
        let none = [false; Stream::COUNT];
        m.flush_expired(t0 + ms(499), none, &mut stats, &mut |e| out.push(e.offset));
        assert!(out.is_empty(), "the timeout (500 ms) has not passed");
        // A read started 500 ms after stdout's last line, 200 ms after stderr's — but stdout
        // has written part of a line since (its partial is being joined): nothing yet.
        let stdout_joining = [true, false, false];
        m.flush_expired(t0 + ms(500), stdout_joining, &mut stats, &mut |e| {
            out.push(e.offset)
        });
        assert!(out.is_empty(), "stdout wrote a partial line since");
        m.flush_expired(t0 + ms(500), none, &mut stats, &mut |e| out.push(e.offset));
        assert_eq!(out, vec![7], "stdout's record alone");
        assert_eq!(m.pending_start(), Some(13));
        m.flush_all(&mut stats, &mut |e| out.push(e.offset));
        assert_eq!(out, vec![7, 13]);
        assert_eq!(m.pending_start(), None);
    }

    #[test]
    fn streams_do_not_mix_and_errors_pass_alone() {
        let mut m = Multiline::new(rules(preset("java").unwrap()));
        let now = Instant::now();
        let mut stats = MultilineStats::default();
        let mut out = Vec::new();
        let mut push = |m: &mut Multiline, e: Entry<'_>| {
            m.push(e, now, &mut stats, &mut |r| {
                out.push((r.stream, String::from_utf8_lossy(r.message).into_owned()))
            })
        };
        push(&mut m, entry(0, b"out head"));
        push(
            &mut m,
            Entry {
                stream: Stream::Stderr,
                ..entry(10, b"err head")
            },
        );
        push(
            &mut m,
            Entry {
                stream: Stream::Stderr,
                ..entry(20, b"\tat err")
            },
        );
        push(&mut m, entry(30, b"\tat out"));
        push(
            &mut m,
            Entry {
                error: Some("bad"),
                stream: Stream::Stdout,
                ..entry(40, b"bad line")
            },
        );
        assert_eq!(
            out,
            vec![
                (Stream::Stdout, "out head\n\tat out".to_string()),
                (Stream::Stdout, "bad line".to_string())
            ]
        );
        assert_eq!(m.pending_start(), Some(10));
    }
}
