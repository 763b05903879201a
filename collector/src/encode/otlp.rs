//! Records as OpenTelemetry log records (OTLP protobuf, `opentelemetry/proto/logs/v1`), and
//! the resource of each file, for the OTLP sink.
//!
//! Workers encode each record as one complete `ScopeLogs.log_records` field (tag, length,
//! `LogRecord`), so the sink only groups a batch's records by file and wraps each group in a
//! `ResourceLogs` whose `Resource` is [`resource`] — no record is parsed or copied twice.
//!
//! The mapping (the OpenTelemetry log data model; Kubernetes resource attributes from the
//! semantic conventions, `k8s.*`, `container.*`, `log.*`):
//!
//! - `body`: the message as a string; a message that is not valid UTF-8 (a protobuf string
//!   must be) is sent as `bytes_value`, exactly. A `json` processor that consumed the message
//!   leaves an empty body; the fields carry it.
//! - `time_unix_nano`: the record's own time when a `timestamp` processor found it, else the
//!   runtime's when it parses (RFC 3339), else 0
//!   ("unknown", as the data model says); `observed_time_unix_nano`: when the worker
//!   encoded it, always.
//! - `severity_text` / `severity_number`: from a processor's `level`, `severity`, `lvl` or
//!   `loglevel` field (the field stays an attribute too).
//! - attributes: `log.iostream` (`stdout`/`stderr`), `log.file.offset`, each processor field
//!   (integers as `int_value`, other values as strings, JSON as its text),
//!   `ringtail.truncated` and `ringtail.error` when set.
//! - resource (per file): `k8s.namespace.name`, `k8s.pod.name`, `k8s.pod.uid`,
//!   `k8s.container.name`, `k8s.container.restart_count`, `container.id`,
//!   `container.image.name`, `k8s.node.name`, `k8s.pod.label.<key>`,
//!   `k8s.pod.annotation.<key>`, `log.file.path`, `log.file.name`, `ringtail.source`, and the
//!   source's tags under their own names.
//!
//! Owns the OTLP shape of a record and of a file's resource; it may not send anything.

use std::borrow::Cow;

use crate::cut::decode::Entry;
use crate::encode::EncodeStats;
use crate::escape::bytes_as_text;
use crate::process::{Fields, Value};
use crate::source::FileCtx;
use crate::timestamp::parse_rfc3339;

/// Protobuf wire encoding: the few shapes OTLP needs.
pub mod wire {
    /// Appends `value` as a base-128 varint.
    pub fn varint(out: &mut Vec<u8>, mut value: u64) {
        while value >= 0x80 {
            out.push((value as u8) | 0x80);
            value >>= 7;
        }
        out.push(value as u8);
    }

    /// Bytes `value` takes as a varint.
    pub fn varint_len(value: u64) -> usize {
        (64 - (value | 1).leading_zeros() as usize).div_ceil(7)
    }

    /// A length-delimited field's tag.
    pub fn len_tag(out: &mut Vec<u8>, field: u32) {
        varint(out, u64::from(field << 3 | 2));
    }

    /// A length-delimited field (string, bytes, message) with `value` as its content.
    pub fn bytes(out: &mut Vec<u8>, field: u32, value: &[u8]) {
        len_tag(out, field);
        varint(out, value.len() as u64);
        out.extend_from_slice(value);
    }

    /// Bytes a length-delimited field with `len` bytes of content takes (fields below 16).
    pub fn bytes_len(len: usize) -> usize {
        1 + varint_len(len as u64) + len
    }

    /// A varint field (`int64`, `uint32`, enums, `bool`).
    pub fn uint(out: &mut Vec<u8>, field: u32, value: u64) {
        varint(out, u64::from(field << 3));
        varint(out, value);
    }

    /// A `fixed64` field.
    pub fn fixed64(out: &mut Vec<u8>, field: u32, value: u64) {
        varint(out, u64::from(field << 3 | 1));
        out.extend_from_slice(&value.to_le_bytes());
    }

    /// One field read from a message: its number and, for varints, the value; for
    /// length-delimited fields, the content.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Read<'a> {
        /// A varint field.
        Varint(u32, u64),
        /// A length-delimited field.
        Bytes(u32, &'a [u8]),
        /// A fixed-size field (skipped).
        Fixed(u32),
    }

    /// Reads a varint at the start of `data`: the value and its length.
    pub fn read_varint(data: &[u8]) -> Option<(u64, usize)> {
        let mut value = 0u64;
        for (i, &b) in data.iter().enumerate().take(10) {
            value |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                return Some((value, i + 1));
            }
        }
        None
    }

    /// The fields of a message, in order; stops at the first malformed one (`Err`).
    pub fn read_fields(mut data: &[u8]) -> Result<Vec<Read<'_>>, String> {
        let mut fields = Vec::new();
        while !data.is_empty() {
            let (key, n) = read_varint(data).ok_or("a truncated field key")?;
            data = &data[n..];
            let field = (key >> 3) as u32;
            match key & 7 {
                0 => {
                    let (value, n) = read_varint(data).ok_or("a truncated varint")?;
                    data = &data[n..];
                    fields.push(Read::Varint(field, value));
                }
                1 | 5 => {
                    let size = if key & 7 == 1 { 8 } else { 4 };
                    data = data.get(size..).ok_or("a truncated fixed field")?;
                    fields.push(Read::Fixed(field));
                }
                2 => {
                    let (len, n) = read_varint(data).ok_or("a truncated length")?;
                    let end = n.checked_add(len as usize).ok_or("a bad length")?;
                    let value = data.get(n..end).ok_or("a truncated field")?;
                    data = &data[end..];
                    fields.push(Read::Bytes(field, value));
                }
                other => return Err(format!("wire type {other}")),
            }
        }
        Ok(fields)
    }

    /// A `KeyValue` field (`field` of the enclosing message) whose value is the string
    /// `value`.
    pub fn key_string(out: &mut Vec<u8>, field: u32, key: &str, value: &[u8]) {
        let any = bytes_len(value.len());
        len_tag(out, field);
        varint(out, (bytes_len(key.len()) + bytes_len(any)) as u64);
        bytes(out, 1, key.as_bytes());
        len_tag(out, 2);
        varint(out, any as u64);
        bytes(out, 1, value);
    }

    /// A `KeyValue` field whose value is the integer `value`.
    pub fn key_int(out: &mut Vec<u8>, field: u32, key: &str, value: i64) {
        let any = 1 + varint_len(value as u64);
        len_tag(out, field);
        varint(out, (bytes_len(key.len()) + bytes_len(any)) as u64);
        bytes(out, 1, key.as_bytes());
        len_tag(out, 2);
        varint(out, any as u64);
        uint(out, 3, value as u64);
    }

    /// A `KeyValue` field whose value is the boolean `value`.
    pub fn key_bool(out: &mut Vec<u8>, field: u32, key: &str, value: bool) {
        len_tag(out, field);
        varint(out, (bytes_len(key.len()) + bytes_len(2)) as u64);
        bytes(out, 1, key.as_bytes());
        len_tag(out, 2);
        varint(out, 2);
        uint(out, 2, u64::from(value));
    }
}

// Field numbers of `LogRecord`.
const TIME: u32 = 1;
const SEVERITY_NUMBER: u32 = 2;
const SEVERITY_TEXT: u32 = 3;
const BODY: u32 = 5;
const ATTRIBUTES: u32 = 6;
const OBSERVED_TIME: u32 = 11;
/// `ScopeLogs.log_records`: each encoded record is one such field.
const LOG_RECORDS: u32 = 2;
/// `Resource.attributes`.
const RESOURCE_ATTRIBUTES: u32 = 1;

/// The field names a processor may give a record's level in.
const LEVEL_FIELDS: &[&str] = &["level", "severity", "lvl", "loglevel"];

/// Appends `entry` as a `ScopeLogs.log_records` field; `scratch` is reused between calls;
/// `observed` is the encoding time (ns since the epoch).
pub fn encode_otlp(
    out: &mut Vec<u8>,
    scratch: &mut Vec<u8>,
    entry: &Entry<'_>,
    fields: Option<&Fields<'_>>,
    observed: i64,
    stats: &mut EncodeStats,
) {
    let record = scratch;
    record.clear();
    if let Some(time) = fields
        .and_then(|f| f.time)
        .or_else(|| parse_rfc3339(entry.time))
    {
        wire::fixed64(record, TIME, time as u64);
    }
    wire::fixed64(record, OBSERVED_TIME, observed as u64);
    if let Some(level) = fields.and_then(level_of) {
        wire::uint(record, SEVERITY_NUMBER, severity_number(level));
        wire::bytes(record, SEVERITY_TEXT, level.as_bytes());
    }
    if !fields.is_some_and(|f| f.drop_message) {
        // AnyValue: string_value (1) when valid UTF-8, else bytes_value (7).
        let field = if simdutf8::basic::from_utf8(entry.message).is_ok() {
            1
        } else {
            stats.invalid_utf8 += 1;
            7
        };
        wire::len_tag(record, BODY);
        wire::varint(record, wire::bytes_len(entry.message.len()) as u64);
        wire::bytes(record, field, entry.message);
    }
    if let Some(stream) = entry.stream.name() {
        wire::key_string(record, ATTRIBUTES, "log.iostream", stream.as_bytes());
    }
    wire::key_int(
        record,
        ATTRIBUTES,
        "log.file.offset",
        i64::try_from(entry.offset).unwrap_or(i64::MAX),
    );
    if entry.truncated {
        wire::key_bool(record, ATTRIBUTES, "ringtail.truncated", true);
    }
    if let Some(error) = entry.error {
        wire::key_string(record, ATTRIBUTES, "ringtail.error", error.as_bytes());
    }
    if let Some(fields) = fields {
        for (i, (key, value)) in fields.pairs.iter().enumerate() {
            // A key given twice keeps its last value, as in JSON.
            if fields.pairs[i + 1..].iter().any(|(k, _)| k == key) {
                continue;
            }
            match value {
                Value::Str(s) => wire::key_string(record, ATTRIBUTES, key, s.as_bytes()),
                Value::Bytes(b) => {
                    wire::key_string(record, ATTRIBUTES, key, bytes_as_text(b).as_bytes())
                }
                Value::Int(n) => wire::key_int(record, ATTRIBUTES, key, *n),
                Value::Json(j) => wire::key_string(record, ATTRIBUTES, key, j.as_bytes()),
                // An empty AnyValue is the data model's null.
                Value::Null => {
                    wire::len_tag(record, ATTRIBUTES);
                    wire::varint(record, (wire::bytes_len(key.len()) + 2) as u64);
                    wire::bytes(record, 1, key.as_bytes());
                    wire::bytes(record, 2, b"");
                }
            }
        }
    }
    wire::bytes(out, LOG_RECORDS, record);
    stats.records += 1;
}

/// The level a processor extracted, if any.
pub(super) fn level_of<'a>(fields: &'a Fields<'_>) -> Option<&'a str> {
    fields.pairs.iter().rev().find_map(|(key, value)| {
        if !LEVEL_FIELDS.iter().any(|l| key.eq_ignore_ascii_case(l)) {
            return None;
        }
        match value {
            Value::Str(s) => Some(s.as_ref()),
            Value::Bytes(b) => std::str::from_utf8(b).ok(),
            _ => None,
        }
    })
}

/// The data model's `SeverityNumber` of a level's usual names (its "Mapping of
/// SeverityNumber" table); 0 (unspecified) for others.
pub(super) fn severity_number(level: &str) -> u64 {
    let lower = level.trim().to_ascii_lowercase();
    match lower.as_str() {
        "trace" | "finest" | "finer" => 1,
        "debug" | "dbg" | "fine" | "d" => 5,
        "info" | "information" | "informational" | "notice" | "i" | "config" => 9,
        "warn" | "warning" | "w" => 13,
        "error" | "err" | "e" | "severe" => 17,
        "crit" | "critical" | "fatal" | "alert" | "emerg" | "emergency" | "panic" | "f" => 21,
        _ => 0,
    }
}

/// A resource attribute's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attribute<'a> {
    /// A string.
    Text(std::borrow::Cow<'a, str>),
    /// An integer.
    Int(i64),
}

/// The resource attributes of the records of `file`, in order.
pub fn resource_attributes(file: &FileCtx) -> Vec<(Cow<'_, str>, Attribute<'_>)> {
    let mut out = Vec::with_capacity(16);
    let mut text = |key: &'static str, value: Option<&str>| {
        if let Some(value) = value {
            out.push((
                Cow::Borrowed(key),
                Attribute::Text(Cow::Owned(value.to_string())),
            ));
        }
    };
    if let Some(c) = &file.meta.container {
        text("k8s.namespace.name", c.namespace.as_deref());
        text("k8s.pod.name", c.pod.as_deref());
        text("k8s.pod.uid", c.pod_uid.as_deref());
        text("k8s.container.name", c.name.as_deref());
        text("container.id", c.id.as_deref());
        text("container.image.name", c.image.as_deref());
    }
    text("k8s.node.name", file.meta.node.as_deref());
    // The pod's labels and annotations, as the Kubernetes semantic conventions name them.
    if let Some(pod) = file
        .meta
        .container
        .as_ref()
        .and_then(|c| c.pod_labels.as_deref())
    {
        let keys = &file.source.pod_keys;
        for (prefix, map, filter) in [
            ("k8s.pod.label.", &pod.labels, &keys.labels),
            ("k8s.pod.annotation.", &pod.annotations, &keys.annotations),
        ] {
            for (key, value) in map.iter().filter(|(k, _)| filter.admits(k)) {
                out.push((
                    Cow::Owned(format!("{prefix}{key}")),
                    Attribute::Text(Cow::Borrowed(value)),
                ));
            }
        }
    }
    out.push((
        Cow::Borrowed("log.file.path"),
        Attribute::Text(bytes_as_text(file.path.as_os_str().as_encoded_bytes())),
    ));
    if let Some(name) = file.path.file_name() {
        out.push((
            Cow::Borrowed("log.file.name"),
            Attribute::Text(bytes_as_text(name.as_encoded_bytes())),
        ));
    }
    out.push((
        Cow::Borrowed("ringtail.source"),
        Attribute::Text(Cow::Borrowed(&file.source.name)),
    ));
    for (key, value) in &file.source.tags {
        out.push((
            Cow::Borrowed(key.as_str()),
            Attribute::Text(Cow::Borrowed(value)),
        ));
    }
    if let Some(restart) = file.meta.container.as_ref().and_then(|c| c.restart) {
        out.push((
            Cow::Borrowed("k8s.container.restart_count"),
            Attribute::Int(i64::from(restart)),
        ));
    }
    out
}

/// The `Resource` message (its content, without a tag) of the records of `file`.
pub fn resource(file: &FileCtx) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    for (key, value) in resource_attributes(file) {
        match value {
            Attribute::Text(text) => {
                wire::key_string(&mut out, RESOURCE_ATTRIBUTES, &key, text.as_bytes())
            }
            Attribute::Int(n) => wire::key_int(&mut out, RESOURCE_ATTRIBUTES, &key, n),
        }
    }
    out
}
