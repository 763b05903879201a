//! Records to NDJSON, one JSON object per line.
//!
//! ```json
//! {"message":"…","offset":123,"stream":"stdout","time":"…","truncated":true,"error":"…",
//!  "file":"/var/log/pods/…/0.log","source":"pods","tags":{"team":"a"}}
//! ```
//! `stream`, `time`, `truncated` and `error` appear only when known or set. The per-file tail
//! (`file`, `source`, `tags`) is encoded once per file ([`FileFields`]) and copied per record.
//!
//! **Invalid UTF-8** is kept losslessly: `message` then holds the text with each invalid
//! sequence replaced by U+FFFD (readable), `invalid_utf8` is `true`, and `message_base64` holds
//! the exact original bytes. NUL and other control bytes are valid UTF-8 and are escaped
//! (`\u0000`), so they round-trip through any JSON parser.
//!
//! The hot path scans 8 bytes at a time for bytes that need escaping and copies clean runs
//! whole; a typical ASCII log line is one validation pass plus one copy.

use base64::Engine;

use crate::decode::Entry;

/// Counters of the encoder, added to by each call; the caller publishes and resets them.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct EncodeStats {
    /// Records encoded.
    pub records: u64,
    /// Records whose message was not valid UTF-8.
    pub invalid_utf8: u64,
}

/// The JSON tail every record of one file ends with: `,"file":…,"source":…[,"tags":{…}]}`.
#[derive(Debug, Clone)]
pub struct FileFields {
    tail: Vec<u8>,
}

impl FileFields {
    /// Encodes the per-file fields once.
    pub fn new<'a>(
        path: &std::path::Path,
        source: &str,
        tags: impl IntoIterator<Item = (&'a String, &'a String)>,
    ) -> Self {
        let mut tail = Vec::with_capacity(128);
        tail.extend_from_slice(b",\"file\":\"");
        write_escaped(&mut tail, path.as_os_str().as_encoded_bytes());
        tail.extend_from_slice(b"\",\"source\":\"");
        write_escaped(&mut tail, source.as_bytes());
        tail.push(b'"');
        let mut tags = tags.into_iter().peekable();
        if tags.peek().is_some() {
            tail.extend_from_slice(b",\"tags\":{");
            for (i, (k, v)) in tags.enumerate() {
                if i > 0 {
                    tail.push(b',');
                }
                tail.push(b'"');
                write_escaped(&mut tail, k.as_bytes());
                tail.extend_from_slice(b"\":\"");
                write_escaped(&mut tail, v.as_bytes());
                tail.push(b'"');
            }
            tail.push(b'}');
        }
        tail.extend_from_slice(b"}\n");
        Self { tail }
    }
}

/// Appends one record as a line of NDJSON to `out`.
pub fn encode(out: &mut Vec<u8>, entry: &Entry<'_>, file: &FileFields, stats: &mut EncodeStats) {
    out.reserve(entry.message.len() + entry.time.len() + file.tail.len() + 96);
    out.extend_from_slice(b"{\"message\":\"");
    let valid = write_escaped(out, entry.message);
    out.extend_from_slice(b"\",\"offset\":");
    out.extend_from_slice(itoa::Buffer::new().format(entry.offset).as_bytes());
    if let Some(stream) = entry.stream.name() {
        out.extend_from_slice(b",\"stream\":\"");
        out.extend_from_slice(stream.as_bytes());
        out.push(b'"');
    }
    if !entry.time.is_empty() {
        out.extend_from_slice(b",\"time\":\"");
        write_escaped(out, entry.time);
        out.push(b'"');
    }
    if entry.truncated {
        out.extend_from_slice(b",\"truncated\":true");
    }
    if let Some(error) = entry.error {
        out.extend_from_slice(b",\"error\":\"");
        write_escaped(out, error.as_bytes());
        out.push(b'"');
    }
    if !valid {
        stats.invalid_utf8 += 1;
        out.extend_from_slice(b",\"invalid_utf8\":true,\"message_base64\":\"");
        base64::engine::general_purpose::STANDARD.encode_extend(entry.message, out);
        out.push(b'"');
    }
    out.extend_from_slice(&file.tail);
    stats.records += 1;
}

/// `base64::Engine::encode_string` wants a `String`; this appends to bytes instead.
trait EncodeExtend {
    fn encode_extend(&self, input: &[u8], out: &mut Vec<u8>);
}

impl<E: Engine> EncodeExtend for E {
    fn encode_extend(&self, input: &[u8], out: &mut Vec<u8>) {
        let start = out.len();
        let len = base64::encoded_len(input.len(), true).unwrap_or(0);
        out.resize(start + len, 0);
        let written = self.encode_slice(input, &mut out[start..]).unwrap_or(0);
        out.truncate(start + written);
    }
}

/// Appends `s` to `out` as the inside of a JSON string. Returns `false` when `s` is not valid
/// UTF-8; each invalid sequence is then written as U+FFFD.
pub fn write_escaped(out: &mut Vec<u8>, s: &[u8]) -> bool {
    if simdutf8::basic::from_utf8(s).is_ok() {
        escape_valid(out, s);
        return true;
    }
    for chunk in s.utf8_chunks() {
        escape_valid(out, chunk.valid().as_bytes());
        if !chunk.invalid().is_empty() {
            out.extend_from_slice("\u{FFFD}".as_bytes());
        }
    }
    false
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// Non-zero when some byte of `w` is below 0x20 or is `"` or `\`. Bytes ≥ 0x80 (the insides of
/// valid UTF-8 sequences) never count. Borrows may flag a byte next to a real hit, so this
/// answers "is there one in this word", not "which".
#[inline]
fn needs_escape(w: u64) -> u64 {
    let control = w.wrapping_sub(ONES * 0x20) & !w;
    let quote = {
        let x = w ^ (ONES * b'"' as u64);
        x.wrapping_sub(ONES) & !x
    };
    let backslash = {
        let x = w ^ (ONES * b'\\' as u64);
        x.wrapping_sub(ONES) & !x
    };
    (control | quote | backslash) & HIGHS
}

/// Escapes valid UTF-8.
fn escape_valid(out: &mut Vec<u8>, s: &[u8]) {
    let mut clean_from = 0;
    let mut i = 0;
    while i < s.len() {
        // Skip whole clean words.
        if let Some(word) = s.get(i..i + 8) {
            let mut w = [0u8; 8];
            w.copy_from_slice(word);
            if needs_escape(u64::from_le_bytes(w)) == 0 {
                i += 8;
                continue;
            }
        }
        let end = (i + 8).min(s.len());
        while i < end {
            let b = s[i];
            let escape: &[u8] = match b {
                b'"' => b"\\\"",
                b'\\' => b"\\\\",
                b'\n' => b"\\n",
                b'\r' => b"\\r",
                b'\t' => b"\\t",
                0x08 => b"\\b",
                0x0c => b"\\f",
                0..=0x1f => &[],
                _ => {
                    i += 1;
                    continue;
                }
            };
            out.extend_from_slice(&s[clean_from..i]);
            if escape.is_empty() {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(&[
                    b'\\',
                    b'u',
                    b'0',
                    b'0',
                    HEX[(b >> 4) as usize],
                    HEX[(b & 15) as usize],
                ]);
            } else {
                out.extend_from_slice(escape);
            }
            i += 1;
            clean_from = i;
        }
    }
    out.extend_from_slice(&s[clean_from..]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::Stream;
    use proptest::prelude::*;
    use std::collections::BTreeMap;
    use std::path::Path;

    fn fields() -> FileFields {
        let mut tags = BTreeMap::new();
        tags.insert("team".to_string(), "a\"b".to_string());
        FileFields::new(Path::new("/var/log/x.log"), "pods", &tags)
    }

    fn encode_one(entry: Entry<'_>) -> serde_json::Value {
        let mut out = Vec::new();
        let mut stats = EncodeStats::default();
        encode(&mut out, &entry, &fields(), &mut stats);
        assert_eq!(out.last(), Some(&b'\n'));
        assert_eq!(
            out.iter().filter(|&&b| b == b'\n').count(),
            1,
            "one line per record"
        );
        serde_json::from_slice(&out).unwrap()
    }

    fn entry(message: &[u8]) -> Entry<'_> {
        Entry {
            offset: 42,
            message,
            stream: Stream::Stdout,
            time: b"2024-01-02T03:04:05Z",
            truncated: false,
            error: None,
        }
    }

    #[test]
    fn encodes_all_fields() {
        let v = encode_one(Entry {
            truncated: true,
            error: Some("bad"),
            ..entry(b"hello \"world\"\n\t\\")
        });
        assert_eq!(v["message"], "hello \"world\"\n\t\\");
        assert_eq!(v["offset"], 42);
        assert_eq!(v["stream"], "stdout");
        assert_eq!(v["time"], "2024-01-02T03:04:05Z");
        assert_eq!(v["truncated"], true);
        assert_eq!(v["error"], "bad");
        assert_eq!(v["file"], "/var/log/x.log");
        assert_eq!(v["source"], "pods");
        assert_eq!(v["tags"]["team"], "a\"b");
        assert!(v.get("invalid_utf8").is_none());
    }

    #[test]
    fn optional_fields_are_absent_when_unknown() {
        let v = encode_one(Entry {
            stream: Stream::Unknown,
            time: b"",
            ..entry(b"x")
        });
        assert!(
            v.get("stream").is_none() && v.get("time").is_none() && v.get("truncated").is_none()
        );
    }

    #[test]
    fn nul_bytes_round_trip_and_invalid_utf8_is_kept_exactly() {
        let v = encode_one(entry(b"a\0b"));
        assert_eq!(v["message"], "a\u{0}b");

        let raw = b"ok \xff\xfe end";
        let v = encode_one(entry(raw));
        assert_eq!(v["message"], "ok \u{FFFD}\u{FFFD} end");
        assert_eq!(v["invalid_utf8"], true);
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(v["message_base64"].as_str().unwrap())
            .unwrap();
        assert_eq!(bytes, raw);
    }

    proptest! {
        #[test]
        fn any_valid_string_round_trips(s in any::<String>()) {
            let mut out = Vec::new();
            prop_assert!(write_escaped(&mut out, s.as_bytes()));
            let json = format!("\"{}\"", String::from_utf8(out).unwrap());
            let back: String = serde_json::from_str(&json).unwrap();
            prop_assert_eq!(back, s);
        }

        #[test]
        fn any_bytes_give_valid_json_and_exact_base64(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let mut out = Vec::new();
            let mut stats = EncodeStats::default();
            encode(&mut out, &entry(&bytes), &fields(), &mut stats);
            let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
            match std::str::from_utf8(&bytes) {
                Ok(s) => prop_assert_eq!(v["message"].as_str().unwrap(), s),
                Err(_) => {
                    let back = base64::engine::general_purpose::STANDARD
                        .decode(v["message_base64"].as_str().unwrap()).unwrap();
                    prop_assert_eq!(back, bytes);
                    prop_assert_eq!(stats.invalid_utf8, 1);
                }
            }
        }
    }
}
