//! Invariant checks for fuzzing: what the fuzz targets in `fuzz/` run on arbitrary input, and
//! what their regression tests (`tests/fuzz_regressions.rs`) run on saved inputs.
//!
//! Owns no production logic. Each function takes arbitrary bytes, drives one part of the hot
//! path the way a worker does, and panics when an invariant breaks: every record lies inside
//! the input, no message outgrows its limit, every record encodes to valid JSON, and after the
//! end of the input nothing is left pending.
//!
//! It may not be used by the pipeline.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::cut::decode::{Decoder, Entry, Format};
use crate::cut::framing::Framer;
use crate::cut::multiline::{self, Multiline, MultilineMode, MultilineRules};
use crate::cut::{CutStats, Records};
use crate::encode::{EncodeStats, FileFields, encode_with};
use crate::process::{self, Fields, Outcome, ProcessStats, Processor};

/// Framing → decoding (→ multiline) on `data`: its first byte picks the chunk size, its second
/// the line limit and the multiline mode (a preset or `auto`); the rest is the file, fed in
/// chunks and then finished.
pub fn records(format: Format, with_multiline: bool, data: &[u8]) {
    let [chunk, limit, input @ ..] = data else {
        return;
    };
    let chunk = 1 + usize::from(*chunk) % 97;
    let max_line = 16 + usize::from(*limit) * 4;
    let max_bytes = 4 * max_line;
    // The line-limit byte also picks the multiline mode: each preset, or `mode: auto`.
    let mode = match multiline::PRESETS.get(usize::from(*limit) % (multiline::PRESETS.len() + 1)) {
        Some(name) => match multiline::preset(name) {
            Some(mode) => mode,
            None => return,
        },
        None => MultilineMode::Auto,
    };
    let multiline = with_multiline.then(|| {
        Multiline::new(Arc::new(MultilineRules {
            mode,
            end: None,
            max_lines: 50,
            max_bytes,
            timeout: Duration::from_secs(3600),
        }))
    });
    let limit = if with_multiline {
        max_line + max_bytes
    } else {
        max_line
    };
    let mut records = Records::from_parts(
        Framer::new(max_line, 0),
        Decoder::new(format, max_line, Duration::from_secs(3600)),
        multiline,
    );
    let file = FileFields::new(std::path::Path::new("/fuzz.log"), "fuzz", []);
    let mut stats = CutStats::default();
    let mut out = Vec::new();
    let mut enc = EncodeStats::default();
    let mut check = |entry: Entry<'_>| {
        assert!(
            (entry.offset as usize) < input.len(),
            "record at {} outside the input ({} bytes)",
            entry.offset,
            input.len()
        );
        assert!(
            entry.message.len() <= limit,
            "message of {} bytes over the limit {limit}",
            entry.message.len()
        );
        out.clear();
        encode_with(&mut out, &entry, &file, None, b"", &mut enc);
        valid_json(&out);
    };
    let now = Instant::now();
    for piece in input.chunks(chunk) {
        records.push(piece, now, &mut stats, &mut check);
        assert!(records.complete_offset() <= input.len() as u64);
    }
    records.finish(None, &mut stats, &mut check);
    assert_eq!(
        records.complete_offset(),
        input.len() as u64,
        "something is still pending after the end"
    );
}

/// One processor, picked by the first byte, on the rest as the message; the record encodes
/// to valid JSON with its fields.
pub fn processors(data: &[u8]) {
    let [pick, message @ ..] = data else {
        return;
    };
    let Some(processor) = processor(*pick) else {
        return;
    };
    let chain = [processor];
    let entry = Entry {
        offset: 0,
        message,
        stream: crate::cut::decode::Stream::Stdout,
        time: b"",
        truncated: false,
        error: None,
    };
    let mut fields = Fields::default();
    let mut error = None;
    let mut stats = ProcessStats::default();
    let outcome = process::run(&chain, &entry, &mut fields, &mut error, &mut stats);
    if outcome != Outcome::Keep {
        return;
    }
    assert!(
        error.is_none()
            || fields.pairs.is_empty()
            || matches!(chain[0], Processor::AddFields { .. }),
        "a failed parse added fields"
    );
    let file = FileFields::new(std::path::Path::new("/fuzz.log"), "fuzz", []);
    let mut out = Vec::new();
    encode_with(
        &mut out,
        &Entry { error, ..entry },
        &file,
        Some(&fields),
        b"2026-12-06T10:00:00.000000000Z",
        &mut EncodeStats::default(),
    );
    let value = valid_json(&out);
    if !fields.pairs.is_empty() {
        assert!(
            value
                .get("fields")
                .is_some_and(serde_json::Value::is_object)
        );
    }
    assert_eq!(value.get("message").is_none(), fields.drop_message);
}

fn processor(pick: u8) -> Option<Processor> {
    let re = |s: &str| regex::bytes::Regex::new(s).ok();
    Some(match pick % 8 {
        0 => Processor::Json {
            depth: 1 + usize::from(pick / 8) % 4,
            keep_source: pick & 0x80 != 0,
        },
        1 => Processor::Regex {
            pattern: re(r"^(?P<level>\w+) (?P<rest>.*)$")?,
            keys: vec!["level".into(), "rest".into()],
        },
        2 => Processor::Nginx,
        3 => Processor::Apache,
        4 => Processor::Csv {
            columns: vec!["a".into(), "b".into(), "c".into()],
            delimiter: if pick & 0x80 != 0 { b'\t' } else { b',' },
        },
        5 => Processor::AddFields {
            fields: vec![("k".into(), "v\"\u{0}".into())],
        },
        6 => Processor::Drop {
            field: "message".into(),
            pattern: re("x")?,
        },
        _ => Processor::Keep {
            field: "message".into(),
            pattern: re("y")?,
        },
    })
}

/// One NDJSON line: valid JSON, one object, ending in a newline.
fn valid_json(line: &[u8]) -> serde_json::Value {
    assert_eq!(line.last(), Some(&b'\n'), "a record ends with a newline");
    assert_eq!(
        line.iter().filter(|&&b| b == b'\n').count(),
        1,
        "one line per record"
    );
    match serde_json::from_slice::<serde_json::Value>(line) {
        Ok(value) if value.is_object() => value,
        other => panic!(
            "not a JSON object ({other:?}): {}",
            String::from_utf8_lossy(line)
        ),
    }
}
