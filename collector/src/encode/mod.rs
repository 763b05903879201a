//! Records to NDJSON, one JSON object per line.
//!
//! ```json
//! {"message":"…","offset":123,"stream":"stdout","time":"…","truncated":true,"error":"…",
//!  "file":"/var/log/pods/…/0.log","source":"pods","tags":{"team":"a"},
//!  "k8s":{"namespace":"shop","pod":"web-1","pod_uid":"…","container":"nginx","restart":0},
//!  "container_id":"…","image":"nginx:1.27","node":"node-1"}
//! ```
//! `stream`, `time`, `truncated` and `error` appear only when known or set. `time` is the
//! runtime's (CRI, docker), or the record's own when a `timestamp` processor found it — then
//! the runtime's is `observed_time`; a record from a plain file without its own time carries
//! the time it was read as `observed_time`. The per-file tail
//! (`file`, `source`, `tags`, and the container metadata and node when known) is encoded once
//! per file ([`FileFields`]) and copied per record.
//!
//! **Invalid UTF-8** is kept losslessly: `message` then holds the text with each invalid
//! sequence replaced by U+FFFD (readable), `invalid_utf8` is `true`, and `message_base64` holds
//! the exact original bytes. NUL and other control bytes are valid UTF-8 and are escaped
//! (`\u0000`), so they round-trip through any JSON parser.
//!
//! Strings are escaped by [`crate::escape`] (one vector scan and one copy for a typical
//! line). The `text` encoding ([`encode_text`]) writes the message alone, byte for byte.
//!
//! [`otlp`] encodes records as OpenTelemetry log records for the OTLP sink (protobuf),
//! [`otlp_json`] in OTLP's JSON encoding.
//!
//! Owns the record's JSON shape and [`Encoding`]; it may not touch how records are cut or
//! where batches go.

pub mod otlp;
pub mod otlp_json;

use std::collections::BTreeMap;

use crate::container::FileMeta;
use crate::container::filter::{KeyFilter, PodKeys};
use crate::cut::decode::Entry;
use crate::escape::{base64_extend, bytes_as_text, write_escaped};
use crate::process::{Fields, Value};
use crate::source::FileCtx;
use crate::timestamp::Civil;

/// How a sink's records are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Encoding {
    /// One JSON object per record with its metadata (NDJSON; see the module documentation).
    #[default]
    Json,
    /// The message alone, byte for byte, followed by a newline: no metadata, no escaping,
    /// invalid UTF-8 passed through unchanged; a multi-line record stays several lines.
    Text,
    /// One OTLP `LogRecord` per record, each a complete `ScopeLogs.log_records` field
    /// ([`otlp`]); the OTLP sink's.
    Otlp,
    /// One OTLP `LogRecord` per record in OTLP's JSON encoding and a newline
    /// ([`otlp_json`]); an OTLP sink's with `encoding: json`.
    OtlpJson,
}

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
            Some((&file.meta, &file.source.pod_keys)),
        )
    }

    fn build<'a>(
        path: &std::path::Path,
        source: &str,
        tags: impl IntoIterator<Item = (&'a String, &'a String)>,
        meta: Option<(&FileMeta, &PodKeys)>,
    ) -> Self {
        let mut tail = Vec::with_capacity(128);
        tail.extend_from_slice(b",\"file\":\"");
        write_escaped(
            &mut tail,
            bytes_as_text(path.as_os_str().as_encoded_bytes()).as_bytes(),
        );
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
        if let Some((meta, keys)) = meta {
            write_meta(&mut tail, meta, keys);
        }
        tail.extend_from_slice(b"}\n");
        Self { tail }
    }
}

/// `,"k8s":{…},"container_id":…,"image":…,"node":…`, each only when known.
fn write_meta(out: &mut Vec<u8>, meta: &FileMeta, keys: &PodKeys) {
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
        let labels = c.pod_labels.as_deref();
        let kept = |map: &'_ BTreeMap<String, String>, filter: &KeyFilter| {
            map.keys().any(|k| filter.admits(k))
        };
        let known = [&c.namespace, &c.pod, &c.pod_uid, &c.name]
            .iter()
            .any(|f| f.is_some())
            || c.restart.is_some()
            || labels.is_some_and(|l| {
                kept(&l.labels, &keys.labels) || kept(&l.annotations, &keys.annotations)
            });
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
                first = false;
            }
            if let Some(pod) = labels {
                let mut object = |out: &mut Vec<u8>,
                                  key: &str,
                                  map: &BTreeMap<String, String>,
                                  filter: &KeyFilter| {
                    if !map.keys().any(|k| filter.admits(k)) {
                        return;
                    }
                    if !std::mem::take(&mut first) {
                        out.push(b',');
                    }
                    out.push(b'"');
                    out.extend_from_slice(key.as_bytes());
                    out.extend_from_slice(b"\":{");
                    let mut inner = true;
                    for (k, v) in map.iter().filter(|(k, _)| filter.admits(k)) {
                        if !std::mem::take(&mut inner) {
                            out.push(b',');
                        }
                        out.push(b'"');
                        write_escaped(out, k.as_bytes());
                        out.extend_from_slice(b"\":\"");
                        write_escaped(out, v.as_bytes());
                        out.push(b'"');
                    }
                    out.push(b'}');
                };
                object(out, "labels", &pod.labels, &keys.labels);
                object(out, "annotations", &pod.annotations, &keys.annotations);
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
    encode_with(out, entry, file, None, b"", stats);
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
    observed: &[u8],
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
    // The record's own time, when a processor found it; the runtime's time (or, from a
    // plain file, the read time) is then when it was observed.
    let (time, observed): (Option<&[u8]>, &[u8]) =
        match (fields.and_then(|f| f.time), entry.time.is_empty()) {
            (Some(own), runtime_unknown) => {
                out.extend_from_slice(b",\"time\":\"");
                out.extend_from_slice(&Civil::from_nanos(own).rfc3339_nanos_bytes());
                out.push(b'"');
                (
                    None,
                    if runtime_unknown {
                        observed
                    } else {
                        entry.time
                    },
                )
            }
            (None, false) => (Some(entry.time), b""),
            (None, true) => (None, observed),
        };
    if let Some(time) = time {
        out.extend_from_slice(b",\"time\":\"");
        // Runtime timestamps are plain ASCII: a short scan, then a copy.
        write_escaped(out, time);
        out.push(b'"');
    }
    if !observed.is_empty() {
        out.extend_from_slice(b",\"observed_time\":\"");
        write_escaped(out, observed);
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
        base64_extend(entry.message, out);
        out.push(b'"');
    }
    if let Some(fields) = fields {
        encode_fields(out, fields);
    }
    out.extend_from_slice(&file.tail);
    stats.records += 1;
}

/// The runtime's time of a record this module encoded as JSON (the value of its `time`
/// member), if it has one. Every `"` inside a JSON string is escaped, so `,"time":"` cannot
/// occur inside the message, and `time` comes before any processor field: the first match is
/// the record's own.
pub fn json_time(record: &[u8]) -> Option<&[u8]> {
    const KEY: &[u8] = b",\"time\":\"";
    // Built once: building a finder costs more than searching a short record.
    static FINDER: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::Finder::new(KEY));
    let at = FINDER.find(record)? + KEY.len();
    let len = memchr::memchr(b'"', &record[at..])?;
    Some(&record[at..at + len])
}

/// Appends `,"fields":{…}` for `fields` (nothing when empty); a key given twice keeps its
/// last value.
pub fn encode_fields(out: &mut Vec<u8>, fields: &Fields<'_>) {
    if fields.pairs.is_empty() {
        return;
    }
    out.extend_from_slice(b",\"fields\":{");
    let mut first = true;
    for (i, (key, value)) in fields.pairs.iter().enumerate() {
        if fields.pairs[i + 1..].iter().any(|(k, _)| k == key) {
            continue;
        }
        if !std::mem::take(&mut first) {
            out.push(b',');
        }
        out.push(b'"');
        write_escaped(out, key.as_bytes());
        out.extend_from_slice(b"\":");
        match value {
            Value::Str(s) => {
                out.push(b'"');
                write_escaped(out, s.as_bytes());
                out.push(b'"');
            }
            Value::Bytes(b) => {
                out.push(b'"');
                // Invalid UTF-8 is shown as U+FFFD; the message keeps the exact bytes.
                write_escaped(out, b);
                out.push(b'"');
            }
            Value::Int(n) => out.extend_from_slice(itoa::Buffer::new().format(*n).as_bytes()),
            Value::Json(j) => out.extend_from_slice(j.as_bytes()),
            Value::Null => out.extend_from_slice(b"null"),
        }
    }
    out.push(b'}');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cut::decode::Stream;
    use base64::Engine;
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
    fn own_time_runtime_time_and_read_time() {
        let file = FileFields::new(Path::new("/f"), "s", &BTreeMap::new());
        let read = b"2026-12-06T10:00:00.000000000Z";
        let encoded = |entry: &Entry<'_>, own: Option<i64>| {
            let extracted = Fields {
                time: own,
                ..Fields::default()
            };
            let mut out = Vec::new();
            encode_with(
                &mut out,
                entry,
                &file,
                Some(&extracted),
                read,
                &mut EncodeStats::default(),
            );
            let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
            (
                v.get("time").cloned(),
                v.get("observed_time").cloned(),
                json_time(&out).map(<[u8]>::to_vec),
            )
        };
        let own = crate::timestamp::parse_rfc3339(b"2026-12-06T09:59:58.5Z");
        // From the runtime: its time; with an own time, the runtime's is the observed one.
        let runtime = entry(b"x");
        assert_eq!(
            encoded(&runtime, None),
            (
                Some("2024-01-02T03:04:05Z".into()),
                None,
                Some(b"2024-01-02T03:04:05Z".to_vec())
            )
        );
        assert_eq!(
            encoded(&runtime, own),
            (
                Some("2026-12-06T09:59:58.500000000Z".into()),
                Some("2024-01-02T03:04:05Z".into()),
                Some(b"2026-12-06T09:59:58.500000000Z".to_vec())
            )
        );
        // From a plain file: the read time is the observed one.
        let plain = Entry {
            time: b"",
            ..entry(b"x")
        };
        assert_eq!(
            encoded(&plain, None),
            (None, Some("2026-12-06T10:00:00.000000000Z".into()), None)
        );
        assert_eq!(
            encoded(&plain, own).1,
            Some("2026-12-06T10:00:00.000000000Z".into())
        );
    }

    #[test]
    fn the_time_is_found_in_an_encoded_record_whatever_the_message_holds() {
        let mut extracted = Fields::default();
        extracted.push("time", Value::Str("not this".into()));
        let mut out = Vec::new();
        encode_with(
            &mut out,
            &entry(b"x \",\"time\":\"1999 trick"),
            &FileFields::new(Path::new("/f"), "s", &BTreeMap::new()),
            Some(&extracted),
            b"",
            &mut EncodeStats::default(),
        );
        assert_eq!(json_time(&out), Some(&b"2024-01-02T03:04:05Z"[..]));
        out.clear();
        encode(
            &mut out,
            &Entry {
                time: b"",
                ..entry(b"m")
            },
            &fields(),
            &mut EncodeStats::default(),
        );
        assert_eq!(json_time(&out), None);
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
        let mut source = crate::source::Source::new(0, "pods", crate::cut::decode::Format::Cri);
        source.cut.max_line_bytes = 1024;
        let source = std::sync::Arc::new(source);
        let path = Path::new("/var/log/pods/shop_web-1_uid-9/nginx/2.log");
        let mut container = crate::container::of_path(path).unwrap();
        container.id = Some("c0ffee".into());
        container.image = Some("nginx:1.27".into());
        container.env.insert("SECRET".into(), "hunter2".into());
        let file = |container, node: Option<&str>| crate::source::FileCtx {
            id: crate::file::FileId(1),
            path: path.to_path_buf(),
            identity: crate::file::FileIdentity { dev: 1, ino: 2 },
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
        // The pod's labels and annotations: objects in `k8s`, escaped; absent when empty.
        let mut labelled = container.clone();
        labelled.pod_labels = Some(std::sync::Arc::new(crate::container::cri::PodLabels {
            labels: [("app".to_string(), "web".to_string())].into(),
            annotations: [("note".to_string(), "say \"hi\"\n".to_string())].into(),
        }));
        let v = record(&file(Some(labelled.clone()), None));
        assert_eq!(
            v["k8s"],
            serde_json::json!({"namespace": "shop", "pod": "web-1", "pod_uid": "uid-9",
                "container": "nginx", "restart": 2, "labels": {"app": "web"},
                "annotations": {"note": "say \"hi\"\n"}})
        );
        labelled.pod_labels = Some(std::sync::Arc::new(crate::container::cri::PodLabels {
            labels: [("app".to_string(), "web".to_string())].into(),
            annotations: Default::default(),
        }));
        labelled.restart = None;
        let v = record(&file(Some(labelled.clone()), None));
        assert_eq!(
            v["k8s"],
            serde_json::json!({"namespace": "shop", "pod": "web-1", "pod_uid": "uid-9",
                "container": "nginx", "labels": {"app": "web"}})
        );
        // A source that keeps no label: the object is left out.
        let glob = |g: &str| {
            let mut set = globset::GlobSetBuilder::new();
            set.add(globset::Glob::new(g).unwrap());
            Some(set.build().unwrap())
        };
        let mut quiet = (*source).clone();
        quiet.pod_keys.labels.exclude = glob("a*");
        let ctx = crate::source::FileCtx {
            source: std::sync::Arc::new(quiet),
            ..file(Some(labelled), None)
        };
        let v = record(&ctx);
        assert!(v["k8s"].get("labels").is_none(), "{v}");
        assert_eq!(v["k8s"]["pod"], "web-1");
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
    fn fields_are_one_object_and_a_later_value_of_a_key_wins() {
        let mut fields = Fields::default();
        fields.push("a", Value::Int(1));
        fields.push("b", Value::Null);
        fields.push("a", Value::Json("[1,2]"));
        let mut out = b"{\"x\":1".to_vec();
        encode_fields(&mut out, &fields);
        out.push(b'}');
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&out).unwrap(),
            serde_json::json!({"x": 1, "fields": {"b": null, "a": [1, 2]}})
        );
        let mut out = b"{\"x\":1".to_vec();
        encode_fields(&mut out, &Fields::default());
        assert_eq!(out, b"{\"x\":1", "no fields, no object");
    }

    proptest! {
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
