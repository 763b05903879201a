//! The Kubernetes CRI log format, as written by containerd and CRI-O:
//! `<RFC3339Nano time> <stdout|stderr> <tags> <message>`, where the first tag is `P` (partial:
//! the runtime split a long line, or output ended without a newline) or `F` (full: the line
//! ends here). Further tags, if any, follow after `:` and are ignored.
//!
//! Owns parsing the format; joining partials is [`crate::cut::decode::joins`]'s.

use std::time::{Duration, Instant};

use crate::cut::decode::entry::{DecodeStats, Entry, Stream};
use crate::cut::decode::joins::Joins;
use crate::cut::framing::Line;

/// One CRI line, parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CriLine<'a> {
    /// The time field, as written.
    pub time: &'a [u8],
    /// `stdout` or `stderr`.
    pub stream: Stream,
    /// `P`: more of this message follows in the next line of the same stream.
    pub partial: bool,
    /// The message (may be empty).
    pub message: &'a [u8],
}

/// Parses one CRI line; the error says what is wrong with it.
pub fn parse(line: &[u8]) -> Result<CriLine<'_>, &'static str> {
    let sp1 = space(line, 0).ok_or("malformed CRI line: no fields")?;
    let time = &line[..sp1];
    if !is_timestamp(time) {
        return Err("malformed CRI line: invalid time");
    }
    let (stream, partial, message) = match usual_fields(&line[sp1 + 1..]) {
        Some(fields) => fields,
        None => fields(line, sp1)?,
    };
    Ok(CriLine {
        time,
        stream,
        partial,
        message,
    })
}

/// The fields after the time as containerd and CRI-O write them: `stdout F ` or `stderr P `
/// and the message, read as nine bytes instead of searched for; `None` for anything else
/// (more tags, a line ending after the tag), which [`fields`] reads. Saves two searches per
/// line: 12 % of `cri_decode` and 14 % of `chain/cri_200b` in `benches/hot_path.rs`.
#[inline]
fn usual_fields(rest: &[u8]) -> Option<(Stream, bool, &[u8])> {
    let (head, message) = rest.split_first_chunk::<9>()?;
    let stream = match &head[..7] {
        b"stdout " => Stream::Stdout,
        b"stderr " => Stream::Stderr,
        _ => return None,
    };
    let partial = match head[7..] {
        [b'F', b' '] => false,
        [b'P', b' '] => true,
        _ => return None,
    };
    Some((stream, partial, message))
}

/// The stream, whether the line is partial, and the message, of a line whose time ends at
/// `sp1`, in any form the format allows.
fn fields(line: &[u8], sp1: usize) -> Result<(Stream, bool, &[u8]), &'static str> {
    let sp2 = space(line, sp1 + 1).ok_or("malformed CRI line: no tag field")?;
    let stream = Stream::parse(&line[sp1 + 1..sp2])
        .ok_or("malformed CRI line: stream is not stdout or stderr")?;
    let (tags, message) = match space(line, sp2 + 1) {
        Some(sp3) => (&line[sp2 + 1..sp3], &line[sp3 + 1..]),
        None => (&line[sp2 + 1..], &line[line.len()..]),
    };
    let partial = match tags {
        [b'F'] | [b'F', b':', ..] => false,
        [b'P'] | [b'P', b':', ..] => true,
        _ => return Err("malformed CRI line: first tag is not P or F"),
    };
    Ok((stream, partial, message))
}

/// Index of the first space at or after `from`.
#[inline]
fn space(line: &[u8], from: usize) -> Option<usize> {
    memchr::memchr(b' ', line.get(from..)?).map(|p| from + p)
}

/// A plausible RFC 3339 time: 10 to 40 bytes, starting with a four-digit year and a dash, all
/// printable ASCII other than `"` and `\\` — so it can be copied into JSON unescaped. (A full
/// RFC 3339 parse would cost more than the rest of the line's decoding.)
fn is_timestamp(field: &[u8]) -> bool {
    (10..=40).contains(&field.len())
        && field[..4].iter().all(u8::is_ascii_digit)
        && field[4] == b'-'
        && crate::escape::plain_prefix(field) == field.len()
}

/// Decoder state of one CRI file: the pending `P` pieces of each stream.
#[derive(Debug)]
pub struct CriDecoder {
    pub(super) joins: Joins,
}

impl CriDecoder {
    /// A decoder joining partial lines up to `max` bytes, waiting `timeout` for a missing piece.
    pub fn new(max: usize, timeout: Duration) -> Self {
        Self {
            joins: Joins::new(max, timeout),
        }
    }

    /// Decodes one line, read by a read done at `read_at`.
    pub fn push(
        &mut self,
        line: Line<'_>,
        read_at: Instant,
        stats: &mut DecodeStats,
        emit: &mut impl FnMut(Entry<'_>),
    ) {
        match parse(line.bytes) {
            Ok(cri) => self.joins.piece(
                line.offset,
                cri.stream,
                cri.time,
                cri.message,
                line.truncated,
                cri.partial,
                read_at,
                stats,
                emit,
            ),
            Err(error) => {
                stats.malformed += 1;
                emit(Entry::malformed(line, error));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reading the usual fields at fixed places gives what searching for them gives, on every
    /// line made of near-miss streams, separators, tags and messages.
    #[test]
    fn the_usual_fields_read_as_the_general_path_reads_them() {
        let streams: [&[u8]; 5] = [b"stdout", b"stderr", b"stdin", b"stdouts", b""];
        let gaps: [&[u8]; 3] = [b" ", b"", b"  "];
        let tags: [&[u8]; 6] = [b"F", b"P", b"F:x", b"P:", b"X", b""];
        let messages: [&[u8]; 4] = [b"", b"msg", b" msg", b"F msg"];
        let mut usual = 0;
        for stream in streams {
            for gap in gaps {
                for tag in tags {
                    for gap2 in gaps {
                        for message in messages {
                            let time = b"2024-01-02T03:04:05.123456789Z ";
                            let line = [&time[..], stream, gap, tag, gap2, message].concat();
                            if let Some(fields) = usual_fields(&line[time.len()..]) {
                                usual += 1;
                                let text = String::from_utf8_lossy(&line);
                                assert_eq!(Ok(fields), super::fields(&line, 30), "{text}");
                            }
                        }
                    }
                }
            }
        }
        // At least stdout/stderr × F/P × either separator × each message took the short way.
        assert!(usual >= 2 * 2 * 2 * 4, "{usual} lines read the usual way");
    }

    #[test]
    fn parses_full_and_partial_lines() {
        let l = parse(b"2024-01-02T03:04:05.123456789Z stdout F hello world").unwrap();
        assert_eq!(l.time, b"2024-01-02T03:04:05.123456789Z");
        assert_eq!(l.stream, Stream::Stdout);
        assert!(!l.partial);
        assert_eq!(l.message, b"hello world");

        let l = parse(b"2024-01-02T03:04:05Z stderr P part").unwrap();
        assert_eq!(l.stream, Stream::Stderr);
        assert!(l.partial);

        let l = parse(b"2024-01-02T03:04:05+02:00 stdout F:x:y  two spaces").unwrap();
        assert!(!l.partial);
        assert_eq!(l.message, b" two spaces");

        let l = parse(b"2024-01-02T03:04:05Z stdout F").unwrap();
        assert_eq!(l.message, b"", "a missing message is an empty one");
    }

    #[test]
    fn rejects_malformed_lines_with_a_reason() {
        assert_eq!(
            parse(b"garbage").unwrap_err(),
            "malformed CRI line: no fields"
        );
        assert_eq!(
            parse(b"not-a-time stdout F x").unwrap_err(),
            "malformed CRI line: invalid time"
        );
        assert_eq!(
            parse(b"2024-01-02T03:04:05Z stdin F x").unwrap_err(),
            "malformed CRI line: stream is not stdout or stderr"
        );
        assert_eq!(
            parse(b"2024-01-02T03:04:05Z stdout X x").unwrap_err(),
            "malformed CRI line: first tag is not P or F"
        );
        assert_eq!(
            parse(b"2024-01-02T03:04:05Z stdout").unwrap_err(),
            "malformed CRI line: no tag field"
        );
        assert!(
            parse(b"2024-01-02T03:04:05\"Z stdout F x").is_err(),
            "a quote in the time"
        );
    }

    type Out = Vec<(u64, Vec<u8>, Stream, bool, Option<&'static str>)>;

    fn decode(max: usize, lines: &[&[u8]]) -> (Out, DecodeStats) {
        let mut d = CriDecoder::new(max, std::time::Duration::from_secs(5));
        let mut stats = DecodeStats::default();
        let mut out = Vec::new();
        let mut offset = 0;
        for l in lines {
            d.push(
                Line {
                    offset,
                    bytes: l,
                    truncated: false,
                },
                Instant::now(),
                &mut stats,
                &mut |e| out.push((e.offset, e.message.to_vec(), e.stream, e.truncated, e.error)),
            );
            offset += l.len() as u64 + 1;
        }
        (out, stats)
    }

    #[test]
    fn joins_partials_per_stream() {
        let (out, _) = decode(
            100,
            &[
                b"2024-01-02T03:04:05Z stdout P hel",
                b"2024-01-02T03:04:05Z stderr F err",
                b"2024-01-02T03:04:06Z stdout P lo ",
                b"2024-01-02T03:04:07Z stdout F world",
            ],
        );
        assert_eq!(
            out,
            vec![
                (34, b"err".to_vec(), Stream::Stderr, false, None),
                (0, b"hello world".to_vec(), Stream::Stdout, false, None),
            ]
        );
    }

    #[test]
    fn joined_messages_are_bounded() {
        let (out, stats) = decode(
            5,
            &[
                b"2024-01-02T03:04:05Z stdout P abcd",
                b"2024-01-02T03:04:05Z stdout P efgh",
                b"2024-01-02T03:04:05Z stdout F ijkl",
            ],
        );
        assert_eq!(
            out,
            vec![(0, b"abcde".to_vec(), Stream::Stdout, true, None)]
        );
        assert_eq!(stats.truncated, 1);
        assert_eq!(stats.truncated_bytes, 7);
    }

    #[test]
    fn malformed_lines_pass_through_raw_and_are_counted() {
        let (out, stats) = decode(100, &[b"oops", b"2024-01-02T03:04:05Z stdout F ok"]);
        assert_eq!(
            out[0],
            (
                0,
                b"oops".to_vec(),
                Stream::Unknown,
                false,
                Some("malformed CRI line: no fields")
            )
        );
        assert_eq!(out[1].1, b"ok".to_vec());
        assert_eq!(stats.malformed, 1);
    }
}
