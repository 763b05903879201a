//! Cutting a file's bytes into lines, with memory bounded whatever the input.
//!
//! A [`Framer`] is fed the file's chunks in order. Lines wholly inside a chunk are handed out
//! as borrowed slices of the chunk — no copy. Only the line that straddles two chunks is copied,
//! into the framer's reusable `carry` buffer, which never grows past `max_line` bytes: a longer
//! line is delivered cut to `max_line` bytes with `truncated` set, and the rest of it, up to the
//! next newline, is skipped and counted. NUL bytes and binary data are just bytes here.
//!
//! Invariants, between calls:
//! - `carry.len() <= max_line`, and `carry` holds the start of an unfinished line that began at
//!   file offset `carry_offset` (when non-empty);
//! - `discarding` means the head of the current line was already delivered cut, and bytes are
//!   skipped until the next newline; `carry` is then empty;
//! - `next_offset` is the file offset of the next byte expected.
//!
//! Owns the line buffer; it may not interpret a line.

use memchr::{memchr, memchr_iter};

/// One line: its bytes without the `\n`, and where it starts in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Line<'a> {
    /// File offset of the line's first byte.
    pub offset: u64,
    /// The line, without its terminating `\n`; at most `max_line` bytes.
    pub bytes: &'a [u8],
    /// The line was longer than `max_line` and was cut.
    pub truncated: bool,
}

/// Counters of a framer, added to by each call; the caller publishes and resets them.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct FrameStats {
    /// Lines delivered cut.
    pub truncated_lines: u64,
    /// Bytes skipped from the tails of cut lines.
    pub discarded_bytes: u64,
}

/// Per-file line splitter. See the module documentation for its invariants.
#[derive(Debug)]
pub struct Framer {
    max_line: usize,
    carry: Vec<u8>,
    carry_offset: u64,
    discarding: bool,
    discard_start: u64,
    next_offset: u64,
}

impl Framer {
    /// A framer for a file read from `offset`, cutting lines longer than `max_line` bytes.
    pub fn new(max_line: usize, offset: u64) -> Self {
        Self {
            max_line: max_line.max(1),
            carry: Vec::new(),
            carry_offset: offset,
            discarding: false,
            discard_start: offset,
            next_offset: offset,
        }
    }

    /// File offset of the next byte expected.
    pub fn next_offset(&self) -> u64 {
        self.next_offset
    }

    /// File offset of the first byte of an unfinished line, if one is pending.
    pub fn pending_start(&self) -> Option<u64> {
        if self.discarding {
            Some(self.discard_start)
        } else if !self.carry.is_empty() {
            Some(self.carry_offset)
        } else {
            None
        }
    }

    /// Feeds the next chunk of the file; `emit` is called for each finished line, in order.
    pub fn push(&mut self, chunk: &[u8], stats: &mut FrameStats, emit: &mut impl FnMut(Line<'_>)) {
        let base = self.next_offset;
        self.next_offset += chunk.len() as u64;
        let mut pos = 0;

        if self.discarding {
            match memchr(b'\n', chunk) {
                None => {
                    stats.discarded_bytes += chunk.len() as u64;
                    return;
                }
                Some(nl) => {
                    stats.discarded_bytes += nl as u64;
                    self.discarding = false;
                    pos = nl + 1;
                }
            }
        }

        if !self.carry.is_empty() {
            let rest = &chunk[pos..];
            let room = self.max_line - self.carry.len();
            match memchr(b'\n', rest) {
                Some(i) => {
                    let part = &rest[..i];
                    let truncated = part.len() > room;
                    if truncated {
                        self.carry.extend_from_slice(&part[..room]);
                        stats.truncated_lines += 1;
                        stats.discarded_bytes += (part.len() - room) as u64;
                    } else {
                        self.carry.extend_from_slice(part);
                    }
                    emit(Line {
                        offset: self.carry_offset,
                        bytes: &self.carry,
                        truncated,
                    });
                    self.carry.clear();
                    pos += i + 1;
                }
                None => {
                    if rest.len() <= room {
                        self.carry.extend_from_slice(rest);
                    } else {
                        self.carry.extend_from_slice(&rest[..room]);
                        stats.truncated_lines += 1;
                        stats.discarded_bytes += (rest.len() - room) as u64;
                        emit(Line {
                            offset: self.carry_offset,
                            bytes: &self.carry,
                            truncated: true,
                        });
                        self.carry.clear();
                        self.discarding = true;
                        self.discard_start = self.carry_offset;
                    }
                    return;
                }
            }
        }

        let mut start = pos;
        for i in memchr_iter(b'\n', &chunk[pos..]) {
            let end = pos + i;
            let line = &chunk[start..end];
            let truncated = line.len() > self.max_line;
            if truncated {
                stats.truncated_lines += 1;
                stats.discarded_bytes += (line.len() - self.max_line) as u64;
            }
            emit(Line {
                offset: base + start as u64,
                bytes: if truncated {
                    &line[..self.max_line]
                } else {
                    line
                },
                truncated,
            });
            start = end + 1;
        }

        let tail = &chunk[start..];
        if !tail.is_empty() {
            self.carry_offset = base + start as u64;
            if tail.len() > self.max_line {
                stats.truncated_lines += 1;
                stats.discarded_bytes += (tail.len() - self.max_line) as u64;
                emit(Line {
                    offset: self.carry_offset,
                    bytes: &tail[..self.max_line],
                    truncated: true,
                });
                self.discarding = true;
                self.discard_start = self.carry_offset;
            } else {
                self.carry.extend_from_slice(tail);
            }
        }
    }

    /// The file will not grow (it was deleted and read to its end): delivers an unfinished
    /// last line as a line of its own.
    pub fn finish(&mut self, emit: &mut impl FnMut(Line<'_>)) {
        self.discarding = false;
        if !self.carry.is_empty() {
            emit(Line {
                offset: self.carry_offset,
                bytes: &self.carry,
                truncated: false,
            });
            self.carry.clear();
        }
    }

    /// The file was truncated: an unfinished line is delivered (its bytes were written, even
    /// if never finished) and framing restarts at `offset`.
    pub fn restart(&mut self, offset: u64, emit: &mut impl FnMut(Line<'_>)) {
        self.finish(emit);
        self.carry_offset = offset;
        self.discard_start = offset;
        self.next_offset = offset;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines_of(framer: &mut Framer, chunks: &[&[u8]]) -> (Vec<(u64, Vec<u8>, bool)>, FrameStats) {
        let mut out = Vec::new();
        let mut stats = FrameStats::default();
        for c in chunks {
            framer.push(c, &mut stats, &mut |l| {
                out.push((l.offset, l.bytes.to_vec(), l.truncated))
            });
        }
        (out, stats)
    }

    #[test]
    fn splits_lines_across_chunks_and_keeps_offsets() {
        let mut f = Framer::new(100, 0);
        let (lines, _) = lines_of(&mut f, &[b"ab\ncd", b"ef\n\ngh"]);
        assert_eq!(
            lines,
            vec![
                (0, b"ab".to_vec(), false),
                (3, b"cdef".to_vec(), false),
                (8, b"".to_vec(), false)
            ]
        );
        assert_eq!(f.pending_start(), Some(9));
        assert_eq!(f.next_offset(), 11);
        let mut last = Vec::new();
        f.finish(&mut |l| last.push((l.offset, l.bytes.to_vec())));
        assert_eq!(last, vec![(9, b"gh".to_vec())]);
        assert_eq!(f.pending_start(), None);
    }

    #[test]
    fn long_lines_are_cut_counted_and_bounded() {
        let mut f = Framer::new(4, 10);
        let (lines, stats) = lines_of(&mut f, &[b"abcdefg", b"hij\nxy", b"z\n"]);
        assert_eq!(
            lines,
            vec![(10, b"abcd".to_vec(), true), (21, b"xyz".to_vec(), false)]
        );
        assert_eq!(stats.truncated_lines, 1);
        assert_eq!(stats.discarded_bytes, 6);
        assert!(f.carry.capacity() <= 64, "carry stays small");
    }

    #[test]
    fn a_line_of_exactly_max_bytes_is_not_cut() {
        let mut f = Framer::new(4, 0);
        let (lines, stats) = lines_of(&mut f, &[b"ab", b"cd", b"\nabcd\n"]);
        assert_eq!(
            lines,
            vec![(0, b"abcd".to_vec(), false), (5, b"abcd".to_vec(), false)]
        );
        assert_eq!(stats, FrameStats::default());
    }

    #[test]
    fn discarding_state_is_the_checkpoint_position() {
        let mut f = Framer::new(2, 0);
        let (_, _) = lines_of(&mut f, &[b"x\nabcdef"]);
        assert_eq!(
            f.pending_start(),
            Some(2),
            "resume re-reads the cut line from its start"
        );
        let (lines, _) = lines_of(&mut f, &[b"gh\nz\n"]);
        assert_eq!(lines, vec![(11, b"z".to_vec(), false)]);
        assert_eq!(f.pending_start(), None);
    }

    #[test]
    fn nul_bytes_and_binary_are_plain_bytes() {
        let mut f = Framer::new(100, 0);
        let (lines, _) = lines_of(&mut f, &[b"a\0b\xff\xfe\n"]);
        assert_eq!(lines, vec![(0, b"a\0b\xff\xfe".to_vec(), false)]);
    }

    #[test]
    fn restart_delivers_the_unfinished_line_and_resets_offsets() {
        let mut f = Framer::new(100, 0);
        let (_, _) = lines_of(&mut f, &[b"one\ntw"]);
        let mut got = Vec::new();
        f.restart(0, &mut |l| got.push((l.offset, l.bytes.to_vec())));
        assert_eq!(got, vec![(4, b"tw".to_vec())]);
        let (lines, _) = lines_of(&mut f, &[b"new\n"]);
        assert_eq!(lines, vec![(0, b"new".to_vec(), false)]);
    }
}
