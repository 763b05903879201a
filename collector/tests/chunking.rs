//! Property tests: however a file's bytes are cut into read chunks, the records are exactly
//! those of a naive, obviously-correct reading of the whole file at once — for raw lines,
//! CRI with partial lines, docker json-file with split lines, and multiline joins. Tiny line
//! limits and 1-byte chunks are part of the input space, so every carry/roll path is taken.
#![allow(
    clippy::unwrap_used,
    reason = "test helpers: a broken invariant should fail the test loudly"
)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use regex::bytes::Regex;
use ringtail::cut::decode::{Decoder, Entry, Format, Stream};
use ringtail::cut::framing::Framer;
use ringtail::cut::multiline::{
    self, Classifier, Multiline, MultilineMode, MultilineRules, MultilineStats,
};
use ringtail::cut::{CutStats, Records};

/// What the tests compare: everything a record carries.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rec {
    offset: u64,
    message: Vec<u8>,
    stream: Stream,
    time: Vec<u8>,
    truncated: bool,
    error: bool,
}

impl From<Entry<'_>> for Rec {
    fn from(e: Entry<'_>) -> Self {
        Rec {
            offset: e.offset,
            message: e.message.to_vec(),
            stream: e.stream,
            time: e.time.to_vec(),
            truncated: e.truncated,
            error: e.error.is_some(),
        }
    }
}

/// Runs the real chain over `data` cut at `cuts`, then finishes the file.
fn run_chain(
    data: &[u8],
    cuts: &[usize],
    format: Format,
    max: usize,
    rules: Option<Arc<MultilineRules>>,
) -> Vec<Rec> {
    let mut records = Records::from_parts(
        Framer::new(max, 0),
        Decoder::new(format, max, std::time::Duration::from_secs(5)),
        rules.map(Multiline::new),
    );
    let mut stats = CutStats::default();
    let mut out = Vec::new();
    let now = Instant::now();
    let mut pos = 0;
    let mut sizes = cuts.iter().cycle();
    while pos < data.len() {
        let size = (*sizes.next().unwrap_or(&data.len())).max(1);
        let end = (pos + size).min(data.len());
        records.push(&data[pos..end], now, &mut stats, &mut |e| {
            out.push(Rec::from(e))
        });
        pos = end;
    }
    assert!(records.complete_offset() <= data.len() as u64);
    records.finish(None, &mut stats, &mut |e| out.push(Rec::from(e)));
    out
}

// ---------------------------------------------------------------------------------------
// Naive oracles: simple, whole-input, written independently of the streaming code.

/// Lines of the whole input; the last unterminated piece counts (the file is finished).
fn naive_lines(data: &[u8], max: usize) -> Vec<(u64, Vec<u8>, bool)> {
    let mut lines = Vec::new();
    let mut start = 0;
    for (i, &b) in data.iter().enumerate() {
        if b == b'\n' {
            lines.push((start, &data[start..i]));
            start = i + 1;
        }
    }
    if start < data.len() {
        lines.push((start, &data[start..]));
    }
    lines
        .into_iter()
        .map(|(offset, line)| {
            let truncated = line.len() > max;
            (
                offset as u64,
                line[..line.len().min(max)].to_vec(),
                truncated,
            )
        })
        .collect()
}

fn raw_rec((offset, line, truncated): (u64, Vec<u8>, bool), error: bool) -> Rec {
    Rec {
        offset,
        message: line,
        stream: Stream::Unknown,
        time: Vec::new(),
        truncated,
        error,
    }
}

/// Per-stream joining of partial pieces: the first `max` bytes of the concatenation.
#[derive(Default)]
struct NaiveJoins {
    pending: HashMap<usize, (u64, Vec<u8>, Vec<u8>, bool)>,
}

impl NaiveJoins {
    #[allow(
        clippy::too_many_arguments,
        reason = "mirrors the fields of one parsed piece"
    )]
    fn piece(
        &mut self,
        out: &mut Vec<Rec>,
        offset: u64,
        stream: Stream,
        time: &[u8],
        msg: &[u8],
        truncated: bool,
        partial: bool,
        max: usize,
    ) {
        let entry = self
            .pending
            .entry(stream as usize)
            .or_insert_with(|| (offset, time.to_vec(), Vec::new(), false));
        entry.2.extend_from_slice(msg);
        entry.3 |= truncated;
        if !partial {
            let (offset, time, mut joined, truncated) =
                self.pending.remove(&(stream as usize)).unwrap_or_default();
            let cut = joined.len() > max;
            joined.truncate(max);
            out.push(Rec {
                offset,
                message: joined,
                stream,
                time,
                truncated: truncated || cut,
                error: false,
            });
        }
    }

    fn finish(mut self, out: &mut Vec<Rec>, max: usize) {
        for (i, stream) in [Stream::Stdout, Stream::Stderr, Stream::Unknown]
            .into_iter()
            .enumerate()
        {
            if let Some((offset, time, mut joined, truncated)) = self.pending.remove(&i) {
                let cut = joined.len() > max;
                joined.truncate(max);
                out.push(Rec {
                    offset,
                    message: joined,
                    stream,
                    time,
                    truncated: truncated || cut,
                    error: false,
                });
            }
        }
    }
}

fn naive_cri(data: &[u8], max: usize) -> Vec<Rec> {
    let mut out = Vec::new();
    let mut joins = NaiveJoins::default();
    for line in naive_lines(data, max) {
        let fields: Vec<&[u8]> = line.1.splitn(4, |&b| b == b' ').collect();
        let time_ok = |t: &[u8]| {
            (10..=40).contains(&t.len())
                && t[0].is_ascii_digit()
                && t.iter().all(|b| b"0123456789-:.+TZtz".contains(b))
        };
        let stream = match fields.get(1).copied() {
            Some(b"stdout") => Some(Stream::Stdout),
            Some(b"stderr") => Some(Stream::Stderr),
            _ => None,
        };
        let tag = fields
            .get(2)
            .map(|t| t.split(|&b| b == b':').next().unwrap_or(&[]));
        let partial = match tag {
            Some(b"P") => Some(true),
            Some(b"F") => Some(false),
            _ => None,
        };
        match (fields.len() >= 3 && time_ok(fields[0]), stream, partial) {
            (true, Some(stream), Some(partial)) => {
                let msg = fields.get(3).copied().unwrap_or(&[]);
                joins.piece(
                    &mut out, line.0, stream, fields[0], msg, line.2, partial, max,
                );
            }
            _ => out.push(raw_rec(line, true)),
        }
    }
    joins.finish(&mut out, max);
    out
}

fn naive_docker(data: &[u8], max: usize) -> Vec<Rec> {
    let mut out = Vec::new();
    let mut joins = NaiveJoins::default();
    for line in naive_lines(data, max) {
        let parsed: Option<serde_json::Map<String, serde_json::Value>> =
            serde_json::from_slice(&line.1).ok();
        let fields = parsed.and_then(|obj| {
            let text = |k: &str| match obj.get(k) {
                None => Some(String::new()),
                Some(serde_json::Value::String(s)) => Some(s.clone()),
                Some(_) => None,
            };
            let log = obj.get("log")?.as_str()?.to_string();
            Some((log, text("stream")?, text("time")?))
        });
        match fields {
            Some((log, stream, time)) => {
                let stream = match stream.as_str() {
                    "stdout" => Stream::Stdout,
                    "stderr" => Stream::Stderr,
                    _ => Stream::Unknown,
                };
                let (msg, partial) = match log.strip_suffix('\n') {
                    Some(m) => (m, false),
                    None => (log.as_str(), true),
                };
                joins.piece(
                    &mut out,
                    line.0,
                    stream,
                    time.as_bytes(),
                    msg.as_bytes(),
                    line.2,
                    partial,
                    max,
                );
            }
            None => out.push(raw_rec(line, true)),
        }
    }
    joins.finish(&mut out, max);
    out
}

/// The joiner's model: whole entries, one at a time, each stream classified by its own
/// [`Classifier`] (the grammar under test elsewhere; here, only where chunks fall).
fn naive_multiline(entries: Vec<Rec>, rules: &MultilineRules) -> Vec<Rec> {
    let mut out = Vec::new();
    let mut pending: HashMap<usize, (Rec, usize)> = HashMap::new();
    let mut classifiers: HashMap<usize, Classifier> = HashMap::new();
    let mut stats = MultilineStats::default();
    for e in entries {
        let key = e.stream as usize;
        if e.error {
            if let Some((p, _)) = pending.remove(&key) {
                out.push(p);
            }
            out.push(e);
            continue;
        }
        let classifier = classifiers.entry(key).or_default();
        let classified = classifier.joins(
            &rules.mode,
            pending.contains_key(&key),
            &e.message,
            &mut stats,
        );
        let joins = match pending.get(&key) {
            None => false,
            Some((p, lines)) => {
                classified
                    && *lines < rules.max_lines
                    && p.message.len() + 1 + e.message.len() <= rules.max_bytes
            }
        };
        if !joins {
            classifier.begin(&rules.mode, &e.message);
        }
        if joins {
            let (p, lines) = pending.get_mut(&key).unwrap();
            p.message.push(b'\n');
            p.message.extend_from_slice(&e.message);
            p.truncated |= e.truncated;
            *lines += 1;
        } else {
            if let Some((p, _)) = pending.remove(&key) {
                out.push(p);
            }
            pending.insert(key, (e.clone(), 1));
        }
        if rules
            .end
            .as_ref()
            .is_some_and(|end| end.is_match(&e.message))
            && let Some((p, _)) = pending.remove(&key)
        {
            out.push(p);
        }
    }
    for key in 0..3 {
        if let Some((p, _)) = pending.remove(&key) {
            out.push(p);
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// Inputs.

fn cuts() -> impl Strategy<Value = Vec<usize>> {
    prop_oneof![
        prop::collection::vec(1usize..4, 1..20),
        prop::collection::vec(1usize..80, 1..40),
        prop::collection::vec(1usize..5000, 1..4),
    ]
}

fn raw_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![
            6 => Just(b'a'),
            2 => Just(b'\n'),
            1 => Just(b' '),
            1 => Just(0u8),
            1 => Just(0xffu8),
            1 => Just(b'"'),
        ],
        0..700,
    )
}

fn message() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-z ]{0,12}",
        1 => "[a-z\"\\\\\t é€]{0,20}",
        1 => Just(String::new()),
    ]
}

fn stream_name() -> impl Strategy<Value = &'static str> {
    prop_oneof![Just("stdout"), Just("stderr")]
}

fn cri_file() -> impl Strategy<Value = Vec<u8>> {
    let line = prop_oneof![
        8 => (stream_name(), any::<bool>(), message(), prop_oneof![Just(""), Just(":x")]).prop_map(|(s, p, m, extra)| {
            format!("2024-01-02T03:04:05.{}Z {s} {}{extra} {m}", m.len(), if p { "P" } else { "F" })
        }),
        1 => "[a-z0-9 :]{0,30}",
        1 => Just("2024-01-02T03:04:05Z stdout F".to_string()),
    ];
    (prop::collection::vec(line, 0..40), any::<bool>()).prop_map(|(lines, final_newline)| {
        let mut text = lines.join("\n");
        if final_newline && !text.is_empty() {
            text.push('\n');
        }
        text.into_bytes()
    })
}

fn docker_file() -> impl Strategy<Value = Vec<u8>> {
    let line = prop_oneof![
        8 => (stream_name(), message(), any::<bool>()).prop_map(|(s, m, complete)| {
            let log = if complete { format!("{m}\n") } else { m };
            serde_json::json!({"log": log, "stream": s, "time": "2024-01-02T03:04:05Z"}).to_string()
        }),
        1 => "[a-z{}\":, ]{0,20}",
        1 => Just(r#"{"stream":"stdout"}"#.to_string()),
    ];
    (prop::collection::vec(line, 0..40), any::<bool>()).prop_map(|(lines, final_newline)| {
        let mut text = lines.join("\n");
        if final_newline && !text.is_empty() {
            text.push('\n');
        }
        text.into_bytes()
    })
}

/// Lines from the shapes of every preset's runtime and of log records, mixed.
fn trace_lines() -> impl Strategy<Value = Vec<String>> {
    const FIXED: [&str; 27] = [
        "2024-01-01 ERROR request failed",
        "2024-01-01 INFO all good",
        "\tat com.example.Service.call(Service.java:42)",
        "java.lang.IllegalStateException: bad state",
        "Caused by: java.io.IOException: gone",
        "\t... 12 more",
        "Exception in thread \"main\" Outer$Inner: x",
        "ERROR:root:failed",
        "Traceback (most recent call last):",
        "  File \"x.py\", line 3, in <module>",
        "ValueError: bad",
        "During handling of the above exception, another exception occurred:",
        "  + Exception Group Traceback (most recent call last):",
        "Error: boom",
        "    at f (/app/a.js:1:2) {",
        "  [cause]: TypeError: inner",
        "}",
        "/app/a.js:10",
        "Node.js v20.20.2",
        "panic: boom",
        "goroutine 1 [running]:",
        "main.main()",
        "\t/app/main.go:5 +0x1d",
        "2024/01/01 10:00:00 served",
        "I0101 10:00:00.000000 1 x.go:1] klog",
        "{\"level\":\"info\"}",
        "",
    ];
    prop::collection::vec(
        prop_oneof![
            6 => prop::sample::select(&FIXED[..]).prop_map(str::to_string),
            1 => "[a-z ]{0,10}",
        ],
        0..60,
    )
}

fn rules(
    mode: MultilineMode,
    end: Option<&str>,
    max_lines: usize,
    max_bytes: usize,
) -> Arc<MultilineRules> {
    Arc::new(MultilineRules {
        mode,
        end: end.map(|e| Regex::new(e).unwrap()),
        max_lines,
        max_bytes,
        timeout: Duration::from_secs(3600),
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn raw_lines_do_not_depend_on_chunking(data in raw_bytes(), cuts in cuts(), max in 1usize..40) {
        let expect: Vec<Rec> = naive_lines(&data, max).into_iter().map(|l| raw_rec(l, false)).collect();
        prop_assert_eq!(run_chain(&data, &cuts, Format::Raw, max, None), expect);
    }

    #[test]
    fn cri_records_do_not_depend_on_chunking(data in cri_file(), cuts in cuts(), max in prop_oneof![8usize..40, Just(4096)]) {
        prop_assert_eq!(run_chain(&data, &cuts, Format::Cri, max, None), naive_cri(&data, max));
    }

    #[test]
    fn docker_records_do_not_depend_on_chunking(data in docker_file(), cuts in cuts(), max in prop_oneof![8usize..60, Just(4096)]) {
        prop_assert_eq!(run_chain(&data, &cuts, Format::Docker, max, None), naive_docker(&data, max));
    }

    #[test]
    fn multiline_records_do_not_depend_on_chunking(
        lines in trace_lines(),
        cuts in cuts(),
        max_lines in prop_oneof![1usize..5, Just(1000)],
        max_bytes in prop_oneof![20usize..200, Just(1 << 20)],
        mode in 0..7u8,
    ) {
        let data = lines.join("\n").into_bytes();
        let r = match mode {
            0..4 => rules(multiline::preset(multiline::PRESETS[usize::from(mode)]).unwrap(), None, max_lines, max_bytes),
            4 => rules(MultilineMode::Auto, None, max_lines, max_bytes),
            5 => rules(MultilineMode::Start(Regex::new(r"^\d{4}-").unwrap()), Some("more$"), max_lines, max_bytes),
            _ => rules(MultilineMode::Continue(Regex::new(r"^\s").unwrap()), None, max_lines, max_bytes),
        };
        let entries: Vec<Rec> = naive_lines(&data, 4096).into_iter().map(|l| raw_rec(l, false)).collect();
        let expect = naive_multiline(entries, &r);
        prop_assert_eq!(run_chain(&data, &cuts, Format::Raw, 4096, Some(r)), expect);
    }

    #[test]
    fn cri_with_multiline_does_not_depend_on_chunking(data in cri_file(), cuts in cuts(), mode in 0..6u8) {
        let mode = match mode {
            0..4 => multiline::preset(multiline::PRESETS[usize::from(mode)]).unwrap(),
            4 => MultilineMode::Auto,
            _ => MultilineMode::Continue(Regex::new(r"^[ a-z]").unwrap()),
        };
        let r = rules(mode, None, 1000, 1 << 20);
        let expect = naive_multiline(naive_cri(&data, 4096), &r);
        prop_assert_eq!(run_chain(&data, &cuts, Format::Cri, 4096, Some(r)), expect);
    }
}
