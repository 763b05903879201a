//! Records to NDJSON, one JSON object per line.
//!
//! ```json
//! {"message":"…","offset":123,"stream":"stdout","time":"…","truncated":true,"error":"…",
//!  "file":"/var/log/pods/…/0.log","source":"pods","tags":{"team":"a"},
//!  "k8s":{"namespace":"shop","pod":"web-1","pod_uid":"…","container":"nginx","restart":0},
//!  "container_id":"…","image":"nginx:1.27","node":"node-1"}
//! ```
//! `stream`, `time`, `truncated` and `error` appear only when known or set. The per-file tail
//! (`file`, `source`, `tags`, and the container metadata and node when known) is encoded once
//! per file ([`FileFields`]) and copied per record.
//!
//! **Invalid UTF-8** is kept losslessly: `message` then holds the text with each invalid
//! sequence replaced by U+FFFD (readable), `invalid_utf8` is `true`, and `message_base64` holds
//! the exact original bytes. NUL and other control bytes are valid UTF-8 and are escaped
//! (`\u0000`), so they round-trip through any JSON parser.
//!
//! The hot path scans 16 bytes at a time (SSE2; 8 with bit tricks elsewhere) for bytes that
//! need attention and copies clean runs whole: a typical ASCII log line is one scan and one
//! copy, with no separate UTF-8 validation.

use base64::Engine;

use crate::container::FileMeta;
use crate::decode::Entry;
use crate::process::Fields;
use crate::source::FileCtx;

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
        Self::build(path, source, tags, None)
    }

    /// Encodes the per-file fields of `file`, with its container and node.
    pub fn of(file: &FileCtx) -> Self {
        Self::build(
            &file.path,
            &file.source.name,
            &file.source.tags,
            Some(&file.meta),
        )
    }

    fn build<'a>(
        path: &std::path::Path,
        source: &str,
        tags: impl IntoIterator<Item = (&'a String, &'a String)>,
        meta: Option<&FileMeta>,
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
        if let Some(meta) = meta {
            write_meta(&mut tail, meta);
        }
        tail.extend_from_slice(b"}\n");
        Self { tail }
    }
}

/// `,"k8s":{…},"container_id":…,"image":…,"node":…`, each only when known.
fn write_meta(out: &mut Vec<u8>, meta: &FileMeta) {
    let string = |out: &mut Vec<u8>, first: &mut bool, key: &str, value: Option<&str>| {
        if let Some(value) = value {
            if !std::mem::take(first) {
                out.push(b',');
            }
            out.push(b'"');
            out.extend_from_slice(key.as_bytes());
            out.extend_from_slice(b"\":\"");
            write_escaped(out, value.as_bytes());
            out.push(b'"');
        }
    };
    if let Some(c) = &meta.container {
        let known = [&c.namespace, &c.pod, &c.pod_uid, &c.name]
            .iter()
            .any(|f| f.is_some())
            || c.restart.is_some();
        if known {
            out.extend_from_slice(b",\"k8s\":{");
            let mut first = true;
            string(out, &mut first, "namespace", c.namespace.as_deref());
            string(out, &mut first, "pod", c.pod.as_deref());
            string(out, &mut first, "pod_uid", c.pod_uid.as_deref());
            string(out, &mut first, "container", c.name.as_deref());
            if let Some(restart) = c.restart {
                if !first {
                    out.push(b',');
                }
                out.extend_from_slice(b"\"restart\":");
                out.extend_from_slice(itoa::Buffer::new().format(restart).as_bytes());
            }
            out.push(b'}');
        }
        let mut first = false;
        string(out, &mut first, "container_id", c.id.as_deref());
        string(out, &mut first, "image", c.image.as_deref());
    }
    let mut first = false;
    string(out, &mut first, "node", meta.node.as_deref());
}

/// Appends one record as a line of NDJSON to `out`.
pub fn encode(out: &mut Vec<u8>, entry: &Entry<'_>, file: &FileFields, stats: &mut EncodeStats) {
    encode_with(out, entry, file, None, stats);
}

/// Appends a record as text (the `text` encoding): its message byte for byte and a newline.
/// Nothing is escaped or checked, so invalid UTF-8 passes through as it is; a message with
/// newlines (a multi-line record) stays several lines.
pub fn encode_text(out: &mut Vec<u8>, entry: &Entry<'_>, stats: &mut EncodeStats) {
    stats.records += 1;
    out.reserve(entry.message.len() + 1);
    out.extend_from_slice(entry.message);
    out.push(b'\n');
}

/// [`encode`] with the fields processors extracted (`"fields":{…}`); a `json` processor
/// that consumed the message leaves it out.
pub fn encode_with(
    out: &mut Vec<u8>,
    entry: &Entry<'_>,
    file: &FileFields,
    fields: Option<&Fields<'_>>,
    stats: &mut EncodeStats,
) {
    out.reserve(entry.message.len() + entry.time.len() + file.tail.len() + 96);
    let valid = if fields.is_some_and(|f| f.drop_message) {
        out.extend_from_slice(b"{\"offset\":");
        true
    } else {
        out.extend_from_slice(b"{\"message\":\"");
        let valid = write_escaped(out, entry.message);
        out.extend_from_slice(b"\",\"offset\":");
        valid
    };
    out.extend_from_slice(itoa::Buffer::new().format(entry.offset).as_bytes());
    if let Some(stream) = entry.stream.name() {
        out.extend_from_slice(b",\"stream\":\"");
        out.extend_from_slice(stream.as_bytes());
        out.push(b'"');
    }
    if !entry.time.is_empty() {
        out.extend_from_slice(b",\"time\":\"");
        // Runtime timestamps are plain ASCII: a short scan, then a copy.
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
    if let Some(fields) = fields {
        crate::process::encode_fields(out, fields);
    }
    out.extend_from_slice(&file.tail);
    stats.records += 1;
}

/// Appends the standard base64 of `input` to `out`.
pub fn base64_extend(input: &[u8], out: &mut Vec<u8>) {
    base64::engine::general_purpose::STANDARD.encode_extend(input, out);
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
///
/// The common case — a line of printable ASCII — is one vector scan and one copy; only from
/// the first byte that needs attention on is the rest validated as UTF-8 and escaped.
pub fn write_escaped(out: &mut Vec<u8>, s: &[u8]) -> bool {
    let plain = plain_prefix(s);
    out.extend_from_slice(&s[..plain]);
    let s = &s[plain..];
    if s.is_empty() {
        return true;
    }
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

/// Length of the longest prefix of `s` that goes into a JSON string as it is, with no escaping
/// and no UTF-8 check: printable ASCII (and DEL) other than `"` and `\\`.
#[inline]
pub fn plain_prefix(s: &[u8]) -> usize {
    scan::<true>(s)
}

/// Index of the first byte of `s` that must be escaped in a JSON string (a control byte, `"`
/// or `\\`) or, with `STOP_AT_HIGH`, that is not ASCII; `s.len()` when there is none.
#[inline]
fn scan<const STOP_AT_HIGH: bool>(s: &[u8]) -> usize {
    #[cfg(target_arch = "x86_64")]
    return scan_sse2::<STOP_AT_HIGH>(s);
    #[cfg(not(target_arch = "x86_64"))]
    {
        let start = scan_swar::<STOP_AT_HIGH>(s);
        let stops = |b: u8| b < 0x20 || b == b'"' || b == b'\\' || (STOP_AT_HIGH && b >= 0x80);
        s[start..]
            .iter()
            .position(|&b| stops(b))
            .map_or(s.len(), |p| start + p)
    }
}

/// [`scan`] with SSE2, 16 bytes at a time; the last partial block is covered by one more
/// 16-byte load that overlaps the block before it, so short strings need no byte loop.
#[cfg(target_arch = "x86_64")]
#[inline]
fn scan_sse2<const STOP_AT_HIGH: bool>(s: &[u8]) -> usize {
    use std::arch::x86_64::{
        __m128i, _mm_and_si128, _mm_cmpeq_epi8, _mm_cmpgt_epi8, _mm_cmplt_epi8, _mm_loadu_si128,
        _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8,
    };
    let stops = |b: u8| b < 0x20 || b == b'"' || b == b'\\' || (STOP_AT_HIGH && b >= 0x80);
    if s.len() < 16 {
        return s.iter().position(|&b| stops(b)).unwrap_or(s.len());
    }
    // SAFETY: SSE2 is part of the x86_64 baseline, so every intrinsic here is available on any
    // CPU this code runs on. The only memory accesses are 16-byte unaligned loads (`loadu`) at
    // offsets `at` with `at + 16 <= s.len()` (checked by the loop, and `s.len() >= 16` above for
    // the final overlapping load), so they stay inside `s`.
    unsafe {
        let space = _mm_set1_epi8(0x20);
        let quote = _mm_set1_epi8(b'"' as i8);
        let backslash = _mm_set1_epi8(b'\\' as i8);
        let minus_one = _mm_set1_epi8(-1);
        let block = |at: usize| -> u32 {
            let v = _mm_loadu_si128(s.as_ptr().add(at).cast::<__m128i>());
            // A signed compare: bytes >= 0x80 are negative, so "below 0x20" catches them too;
            // when they may pass, keep only the non-negative ones.
            let mut low = _mm_cmplt_epi8(v, space);
            if !STOP_AT_HIGH {
                low = _mm_and_si128(low, _mm_cmpgt_epi8(v, minus_one));
            }
            let special = _mm_or_si128(
                low,
                _mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, backslash)),
            );
            _mm_movemask_epi8(special) as u32
        };
        let mut i = 0;
        while i + 16 <= s.len() {
            let mask = block(i);
            if mask != 0 {
                return i + mask.trailing_zeros() as usize;
            }
            i += 16;
        }
        if i < s.len() {
            let last = s.len() - 16;
            // Lanes before `i` were checked already.
            let mask = block(last) >> (i - last);
            if mask != 0 {
                return i + mask.trailing_zeros() as usize;
            }
        }
        s.len()
    }
}

/// The portable part of [`scan`]: whole 8-byte words, with bit tricks. Returns the start of the
/// first word holding a stop byte, or where the last whole word ends.
#[cfg(any(test, not(target_arch = "x86_64")))]
fn scan_swar<const STOP_AT_HIGH: bool>(s: &[u8]) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let zero_byte = |x: u64| x.wrapping_sub(ONES) & !x & HIGHS;
    let mut i = 0;
    while let Some(word) = s.get(i..i + 8) {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(word);
        let w = u64::from_le_bytes(bytes);
        // Non-zero when a byte is below 0x20 (high bytes excluded by `!w`), `"` or `\\`.
        let mut hit = (w.wrapping_sub(ONES * 0x20) & !w & HIGHS)
            | zero_byte(w ^ (ONES * u64::from(b'"')))
            | zero_byte(w ^ (ONES * u64::from(b'\\')));
        if STOP_AT_HIGH {
            hit |= w & HIGHS;
        }
        if hit != 0 {
            return i;
        }
        i += 8;
    }
    i
}

/// Escapes valid UTF-8: copies runs that need nothing, escapes the bytes between them.
fn escape_valid(out: &mut Vec<u8>, s: &[u8]) {
    let mut rest = s;
    loop {
        let run = scan::<false>(rest);
        out.extend_from_slice(&rest[..run]);
        let Some(&b) = rest.get(run) else { return };
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            _ => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(&[
                    b'\\',
                    b'u',
                    b'0',
                    b'0',
                    HEX[usize::from(b >> 4)],
                    HEX[usize::from(b & 15)],
                ]);
            }
        }
        rest = &rest[run + 1..];
    }
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
    fn text_is_the_message_byte_for_byte() {
        let mut out = b"before\n".to_vec();
        let mut stats = EncodeStats::default();
        for message in [&b"a \"b\"\t\\"[..], b"\xff\x00 bad", b"trace\n\tat x", b""] {
            encode_text(&mut out, &entry(message), &mut stats);
        }
        assert_eq!(
            out,
            b"before\na \"b\"\t\\\n\xff\x00 bad\ntrace\n\tat x\n\n".to_vec()
        );
        assert_eq!(
            stats,
            EncodeStats {
                records: 4,
                invalid_utf8: 0
            }
        );
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
    fn container_metadata_and_node_are_in_every_record_when_known() {
        let source = std::sync::Arc::new(crate::config::SourceConfig {
            max_line_bytes: 1024,
            ..crate::config::SourceConfig::new(0, "pods", crate::config::Format::Cri)
        });
        let path = Path::new("/var/log/pods/shop_web-1_uid-9/nginx/2.log");
        let mut container = crate::container::of_path(path).unwrap();
        container.id = Some("c0ffee".into());
        container.image = Some("nginx:1.27".into());
        container.env.insert("SECRET".into(), "hunter2".into());
        let file = |container, node: Option<&str>| crate::source::FileCtx {
            id: crate::source::SourceId(1),
            path: path.to_path_buf(),
            identity: crate::source::FileIdentity { dev: 1, ino: 2 },
            source: std::sync::Arc::clone(&source),
            meta: std::sync::Arc::new(FileMeta {
                container,
                node: node.map(str::to_string),
            }),
        };
        let record = |file: &crate::source::FileCtx| {
            let mut out = Vec::new();
            encode(
                &mut out,
                &entry(b"hi"),
                &FileFields::of(file),
                &mut EncodeStats::default(),
            );
            serde_json::from_slice::<serde_json::Value>(&out).unwrap()
        };
        let v = record(&file(Some(container.clone()), Some("node-1")));
        assert_eq!(
            v["k8s"],
            serde_json::json!({"namespace": "shop", "pod": "web-1", "pod_uid": "uid-9",
                "container": "nginx", "restart": 2})
        );
        assert_eq!(v["container_id"], "c0ffee");
        assert_eq!(v["image"], "nginx:1.27");
        assert_eq!(v["node"], "node-1");
        assert_eq!(v["message"], "hi");
        assert!(!String::from_utf8_lossy(&serde_json::to_vec(&v).unwrap()).contains("hunter2"));
        let only_id = crate::container::Container {
            id: Some("c0ffee".into()),
            ..Default::default()
        };
        let v = record(&file(Some(only_id), None));
        assert!(v.get("k8s").is_none() && v.get("node").is_none() && v.get("image").is_none());
        assert_eq!(v["container_id"], "c0ffee");
        let v = record(&file(None, Some("n")));
        assert_eq!(v["node"], "n");
        assert!(v.get("container_id").is_none());
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

    #[test]
    fn plain_prefix_stops_at_the_first_byte_that_needs_attention() {
        let line = b"0123456789abcdef0123456789abcdef-tail";
        assert_eq!(plain_prefix(line), line.len());
        for (i, special) in [
            (0, b'"'),
            (5, b'\\'),
            (15, b'\n'),
            (16, 0x00),
            (17, 0xc3),
            (33, 0x7f),
        ] {
            let mut v = line.to_vec();
            v[i] = special;
            let expect = if special == 0x7f { v.len() } else { i };
            assert_eq!(plain_prefix(&v), expect, "byte {special:#x} at {i}");
        }
        assert_eq!(plain_prefix(b""), 0);
    }

    proptest! {
        #[test]
        fn scans_match_a_byte_loop(bytes in proptest::collection::vec(
            prop_oneof![8 => 0x20u8..0x7f, 1 => any::<u8>(), 1 => Just(b'"'), 1 => Just(b'\\')],
            0..100,
        )) {
            let escape = |b: u8| b < 0x20 || b == b'"' || b == b'\\';
            let naive_plain = bytes.iter().position(|&b| escape(b) || b >= 0x80).unwrap_or(bytes.len());
            let naive_escape = bytes.iter().position(|&b| escape(b)).unwrap_or(bytes.len());
            prop_assert_eq!(plain_prefix(&bytes), naive_plain);
            prop_assert_eq!(scan::<false>(&bytes), naive_escape);
            // The portable version, which other architectures use, finds the word to look in.
            let word = scan_swar::<true>(&bytes);
            prop_assert!(word <= naive_plain && (word == naive_plain || naive_plain - word < 8));
            let word = scan_swar::<false>(&bytes);
            prop_assert!(word <= naive_escape && (word == naive_escape || naive_escape - word < 8));
        }

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
