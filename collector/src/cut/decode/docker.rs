//! Docker's json-file log format: one JSON object per line, `{"log":"…\n","stream":"stdout",
//! "time":"…"}`. A `log` that does not end in `\n` is a piece of a longer line that the runtime
//! split (at 16 KiB); pieces of one stream are joined until the piece that ends in `\n`.
//!
//! Parsing goes through serde_json with seeds that append the unescaped strings to reusable
//! buffers, so a line costs no allocation; unknown keys (`attrs`, …) are skipped.
//!
//! Owns parsing the format; joining partials is [`crate::cut::decode::joins`]'s.

use std::fmt;
use std::time::{Duration, Instant};

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};

use crate::cut::decode::entry::{DecodeStats, Entry, Stream};
use crate::cut::decode::joins::Joins;
use crate::cut::framing::Line;

/// Decoder state of one docker json-file: scratch buffers and pending pieces per stream.
#[derive(Debug)]
pub struct DockerDecoder {
    pub(super) joins: Joins,
    log: Vec<u8>,
    stream: Vec<u8>,
    time: Vec<u8>,
}

const MALFORMED: &str = "malformed docker JSON line";
const NO_LOG: &str = "malformed docker JSON line: no \"log\" string";

impl DockerDecoder {
    /// A decoder joining split lines up to `max` bytes, waiting `timeout` for a missing piece.
    pub fn new(max: usize, timeout: Duration) -> Self {
        Self {
            joins: Joins::new(max, timeout),
            log: Vec::new(),
            stream: Vec::new(),
            time: Vec::new(),
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
        self.log.clear();
        self.stream.clear();
        self.time.clear();
        let mut has_log = false;
        let parsed = {
            let mut de = serde_json::Deserializer::from_slice(line.bytes);
            Fields {
                log: &mut self.log,
                stream: &mut self.stream,
                time: &mut self.time,
                has_log: &mut has_log,
            }
            .deserialize(&mut de)
            .and_then(|()| de.end())
        };
        if parsed.is_err() || !has_log {
            stats.malformed += 1;
            emit(Entry::malformed(
                line,
                if parsed.is_err() { MALFORMED } else { NO_LOG },
            ));
            return;
        }
        let stream = Stream::parse(&self.stream).unwrap_or(Stream::Unknown);
        let complete = self.log.last() == Some(&b'\n');
        let message = if complete {
            &self.log[..self.log.len() - 1]
        } else {
            &self.log[..]
        };
        self.joins.piece(
            line.offset,
            stream,
            &self.time,
            message,
            line.truncated,
            !complete,
            read_at,
            stats,
            emit,
        );
    }
}

struct Fields<'a> {
    log: &'a mut Vec<u8>,
    stream: &'a mut Vec<u8>,
    time: &'a mut Vec<u8>,
    has_log: &'a mut bool,
}

impl<'de> DeserializeSeed<'de> for Fields<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Fields<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a docker json-file log object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key_seed(KeySeed)? {
            match key {
                // A repeated key replaces the earlier value, as in any JSON object reader.
                Key::Log => {
                    self.log.clear();
                    map.next_value_seed(AppendStr(self.log))?;
                    *self.has_log = true;
                }
                Key::Stream => {
                    self.stream.clear();
                    map.next_value_seed(AppendStr(self.stream))?
                }
                Key::Time => {
                    self.time.clear();
                    map.next_value_seed(AppendStr(self.time))?
                }
                Key::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

enum Key {
    Log,
    Stream,
    Time,
    Other,
}

struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Key;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Key, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl Visitor<'_> for KeySeed {
    type Value = Key;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key")
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Key, E> {
        Ok(match v {
            "log" => Key::Log,
            "stream" => Key::Stream,
            "time" => Key::Time,
            _ => Key::Other,
        })
    }
}

/// Appends a JSON string's unescaped contents to a buffer.
struct AppendStr<'a>(&'a mut Vec<u8>);

impl<'de> DeserializeSeed<'de> for AppendStr<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl Visitor<'_> for AppendStr<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<(), E> {
        self.0.extend_from_slice(v.as_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Out = Vec<(u64, Vec<u8>, Stream, Vec<u8>, bool, Option<&'static str>)>;

    fn decode(max: usize, lines: &[&[u8]]) -> (Out, DecodeStats) {
        let mut d = DockerDecoder::new(max, std::time::Duration::from_secs(5));
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
                &mut |e| {
                    out.push((
                        e.offset,
                        e.message.to_vec(),
                        e.stream,
                        e.time.to_vec(),
                        e.truncated,
                        e.error,
                    ))
                },
            );
            offset += l.len() as u64 + 1;
        }
        (out, stats)
    }

    #[test]
    fn decodes_lines_and_unescapes() {
        let (out, stats) = decode(
            100,
            &[br#"{"log":"say \"hi\"\t\u00e9\n","stream":"stderr","time":"2024-01-02T03:04:05.1Z","attrs":{"a":[1,2]}}"#],
        );
        assert_eq!(stats, DecodeStats::default());
        assert_eq!(
            out,
            vec![(
                0,
                "say \"hi\"\té".as_bytes().to_vec(),
                Stream::Stderr,
                b"2024-01-02T03:04:05.1Z".to_vec(),
                false,
                None
            )]
        );
    }

    #[test]
    fn joins_split_lines_per_stream() {
        let (out, _) = decode(
            100,
            &[
                br#"{"log":"abc","stream":"stdout","time":"t1"}"#,
                br#"{"log":"err\n","stream":"stderr","time":"t2"}"#,
                br#"{"log":"def\n","stream":"stdout","time":"t3"}"#,
            ],
        );
        assert_eq!(out[0].1, b"err");
        assert_eq!(
            (out[1].0, out[1].1.as_slice(), out[1].3.as_slice()),
            (0, &b"abcdef"[..], &b"t1"[..])
        );
    }

    #[test]
    fn malformed_lines_pass_through_raw() {
        let (out, stats) = decode(
            100,
            &[
                b"not json",
                br#"{"stream":"stdout"}"#,
                b"{\"log\":\"\xff\"}",
                br#"{"log":"x\n"} trailing"#,
            ],
        );
        assert_eq!(stats.malformed, 4);
        assert_eq!(out[0].1, b"not json");
        assert_eq!(out[0].5, Some(MALFORMED));
        assert_eq!(out[1].5, Some(NO_LOG));
        assert_eq!(
            out[2].1, b"{\"log\":\"\xff\"}",
            "invalid UTF-8 is kept byte for byte"
        );
        assert!(out.iter().all(|o| o.2 == Stream::Unknown));
    }
}
