//! Records as OTLP log records in the protobuf JSON mapping (OTLP/HTTP with
//! `Content-Type: application/json`), for OTLP sinks with `encoding: json`: the same record
//! and resource as [`crate::encode::otlp`], written as the OTLP specification's JSON
//! encoding asks — lowerCamelCase keys, 64-bit integers as decimal strings, enums as
//! numbers, bytes as base64.
//!
//! Workers write each record as one `LogRecord` object followed by a newline (the record
//! index needs a terminator; the sink joins a file's records with commas).
//!
//! Owns the JSON shape of an OTLP record and resource; it may not send anything.

use crate::cut::decode::Entry;
use crate::encode::EncodeStats;
use crate::encode::otlp::{level_of, severity_number};
use crate::escape::{base64_extend, bytes_as_text, write_escaped};
use crate::process::{Fields, Value};
use crate::source::FileCtx;
use crate::timestamp::parse_rfc3339;

fn string(out: &mut Vec<u8>, s: &[u8]) {
    out.push(b'"');
    write_escaped(out, s);
    out.push(b'"');
}

/// `{"key":…,"value":{"stringValue":…}}`
fn key_string(out: &mut Vec<u8>, first: &mut bool, key: &str, value: &[u8]) {
    separator(out, first);
    out.extend_from_slice(b"{\"key\":");
    string(out, key.as_bytes());
    out.extend_from_slice(b",\"value\":{\"stringValue\":");
    string(out, value);
    out.extend_from_slice(b"}}");
}

fn key_int(out: &mut Vec<u8>, first: &mut bool, key: &str, value: i64) {
    separator(out, first);
    out.extend_from_slice(b"{\"key\":");
    string(out, key.as_bytes());
    out.extend_from_slice(b",\"value\":{\"intValue\":\"");
    out.extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
    out.extend_from_slice(b"\"}}");
}

fn separator(out: &mut Vec<u8>, first: &mut bool) {
    if !std::mem::take(first) {
        out.push(b',');
    }
}

/// Appends `entry` as an OTLP JSON `LogRecord` and a newline; `observed` is the encoding
/// time (ns since the epoch).
pub fn encode_otlp_json(
    out: &mut Vec<u8>,
    entry: &Entry<'_>,
    fields: Option<&Fields<'_>>,
    observed: i64,
    stats: &mut EncodeStats,
) {
    out.reserve(entry.message.len() + 192);
    out.extend_from_slice(b"{\"timeUnixNano\":\"");
    let time = fields
        .and_then(|f| f.time)
        .or_else(|| parse_rfc3339(entry.time))
        .unwrap_or(0);
    out.extend_from_slice(itoa::Buffer::new().format(time).as_bytes());
    out.extend_from_slice(b"\",\"observedTimeUnixNano\":\"");
    out.extend_from_slice(itoa::Buffer::new().format(observed).as_bytes());
    out.push(b'"');
    if let Some(level) = fields.and_then(level_of) {
        out.extend_from_slice(b",\"severityNumber\":");
        out.extend_from_slice(
            itoa::Buffer::new()
                .format(severity_number(level))
                .as_bytes(),
        );
        out.extend_from_slice(b",\"severityText\":");
        string(out, level.as_bytes());
    }
    if !fields.is_some_and(|f| f.drop_message) {
        if simdutf8::basic::from_utf8(entry.message).is_ok() {
            out.extend_from_slice(b",\"body\":{\"stringValue\":");
            string(out, entry.message);
            out.push(b'}');
        } else {
            stats.invalid_utf8 += 1;
            out.extend_from_slice(b",\"body\":{\"bytesValue\":\"");
            base64_extend(entry.message, out);
            out.extend_from_slice(b"\"}");
        }
    }
    out.extend_from_slice(b",\"attributes\":[");
    let mut first = true;
    if let Some(stream) = entry.stream.name() {
        key_string(out, &mut first, "log.iostream", stream.as_bytes());
    }
    key_int(
        out,
        &mut first,
        "log.file.offset",
        i64::try_from(entry.offset).unwrap_or(i64::MAX),
    );
    if entry.truncated {
        separator(out, &mut first);
        out.extend_from_slice(b"{\"key\":\"ringtail.truncated\",\"value\":{\"boolValue\":true}}");
    }
    if let Some(error) = entry.error {
        key_string(out, &mut first, "ringtail.error", error.as_bytes());
    }
    if let Some(fields) = fields {
        for (i, (key, value)) in fields.pairs.iter().enumerate() {
            if fields.pairs[i + 1..].iter().any(|(k, _)| k == key) {
                continue;
            }
            match value {
                Value::Str(s) => key_string(out, &mut first, key, s.as_bytes()),
                Value::Bytes(b) => key_string(out, &mut first, key, bytes_as_text(b).as_bytes()),
                Value::Int(n) => key_int(out, &mut first, key, *n),
                Value::Json(j) => key_string(out, &mut first, key, j.as_bytes()),
                Value::Null => {
                    separator(out, &mut first);
                    out.extend_from_slice(b"{\"key\":");
                    string(out, key.as_bytes());
                    out.extend_from_slice(b",\"value\":{}}");
                }
            }
        }
    }
    out.extend_from_slice(b"]}\n");
    stats.records += 1;
}

/// The `Resource` object of the records of `file` (the attributes of
/// [`crate::encode::otlp::resource`]).
pub fn resource_json(file: &FileCtx) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(b"{\"attributes\":[");
    let mut first = true;
    for (key, value) in crate::encode::otlp::resource_attributes(file) {
        match value {
            crate::encode::otlp::Attribute::Text(text) => {
                key_string(&mut out, &mut first, &key, text.as_bytes())
            }
            crate::encode::otlp::Attribute::Int(n) => key_int(&mut out, &mut first, &key, n),
        }
    }
    out.extend_from_slice(b"]}");
    out
}
