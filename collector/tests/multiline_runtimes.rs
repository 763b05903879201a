//! The multiline presets and `mode: auto` on what real runtimes print: small programs in
//! `tests/runtimes/` run on this machine's OpenJDK 17, CPython 3.11 and Node.js 20 (Go is not
//! on CI machines: its program's output was captured once, with the command beside it), print
//! stack traces through each runtime's own paths, and write every record they print to a
//! manifest. The records expected come from the manifest — from the programs, not from
//! ringtail. Each output is cut by the real framer → decoder → joiner, raw and wrapped in CRI
//! `stderr F` lines, in random read chunks.
#![allow(clippy::unwrap_used, reason = "tests fail loudly on broken invariants")]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ringtail::cut::decode::{Decoder, Format};
use ringtail::cut::framing::Framer;
use ringtail::cut::multiline::{self, Multiline, MultilineMode, MultilineRules};
use ringtail::cut::{CutStats, Records};

/// One record a program printed, from its manifest.
#[derive(Debug, Clone)]
struct Printed {
    /// A log record (it begins with the program's log format), not a trace printed alone.
    log: bool,
    text: String,
}

/// What a program printed, and its records.
struct Capture {
    name: String,
    output: Vec<u8>,
    records: Vec<Printed>,
}

fn programs() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/runtimes")
}

/// Runs `command` (a runtime on this machine) with the manifest path as its last argument,
/// capturing its stderr.
fn run(name: &str, command: &[&str], env: &[(&str, &str)]) -> Capture {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("manifest");
    let output = Command::new(command[0])
        .args(&command[1..])
        .arg(&manifest)
        .envs(env.iter().copied())
        .current_dir(programs())
        .output()
        .unwrap_or_else(|e| panic!("cannot run `{}` (the {name} runtime): {e}", command[0]));
    let manifest = std::fs::read_to_string(&manifest).unwrap();
    capture(name, output.stderr, &manifest)
}

/// A capture from an output and its manifest (`L|T|R <bytes>\n<text>\n` per record; `R`:
/// the rest of the output is one record).
fn capture(name: &str, output: Vec<u8>, manifest: &str) -> Capture {
    let mut records = Vec::new();
    let mut rest = manifest;
    let mut printed = 0;
    while let Some((head, after)) = rest.split_once('\n') {
        let (kind, len) = head.split_once(' ').unwrap();
        let len: usize = len.parse().unwrap();
        let text = &after[..len];
        rest = &after[len + 1..];
        if kind == "R" {
            let remainder = std::str::from_utf8(&output[printed..]).unwrap();
            let text = remainder.strip_suffix('\n').unwrap_or(remainder);
            assert!(
                !text.is_empty(),
                "{name}: nothing after the manifest's records"
            );
            records.push(Printed {
                log: false,
                text: text.to_string(),
            });
            printed = output.len();
            break;
        }
        let line = format!("{text}\n");
        assert!(
            output[printed..].starts_with(line.as_bytes()),
            "{name}: the output does not go on with record {text:?}:\n{}",
            String::from_utf8_lossy(&output[printed..])
        );
        printed += line.len();
        records.push(Printed {
            log: kind == "L",
            text: text.to_string(),
        });
    }
    assert_eq!(
        printed,
        output.len(),
        "{name}: output the manifest does not account for"
    );
    assert!(!records.is_empty(), "{name}: no records");
    Capture {
        name: name.to_string(),
        output,
        records,
    }
}

fn java() -> Capture {
    run(
        "java",
        &[
            "java",
            "-Djava.util.logging.SimpleFormatter.format=%1$tF %1$tT.%1$tL %4$s %5$s%6$s%n",
            "Traces.java",
        ],
        &[],
    )
}

fn python() -> Vec<Capture> {
    vec![
        run("python", &["python3", "traces.py"], &[]),
        // The manifest path goes last; `--uncaught` is looked for anywhere.
        run(
            "python uncaught",
            &["python3", "traces.py", "--uncaught"],
            &[],
        ),
    ]
}

fn node() -> Capture {
    run("node", &["node", "traces.js"], &[])
}

fn go() -> Capture {
    let dir = programs().join("captured");
    capture(
        "go",
        std::fs::read(dir.join("go.stderr")).unwrap(),
        &std::fs::read_to_string(dir.join("go.manifest")).unwrap(),
    )
}

/// A small deterministic generator of read-chunk sizes.
struct Chunks(u64);

impl Chunks {
    fn next(&mut self) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        1 + (self.0 % 300) as usize
    }
}

/// The output as a CRI log file: each line a complete `stderr` entry.
fn cri(output: &[u8]) -> Vec<u8> {
    let mut file = Vec::new();
    for line in output.split(|&b| b == b'\n') {
        file.extend_from_slice(b"2026-12-06T10:00:00.000000000Z stderr F ");
        file.extend_from_slice(line);
        file.push(b'\n');
    }
    // `split` yields an empty piece after the final newline: not a line.
    if output.ends_with(b"\n") {
        let entry = b"2026-12-06T10:00:00.000000000Z stderr F \n".len();
        file.truncate(file.len() - entry);
    }
    file
}

/// The records the real chain cuts from `data` in `format` under `mode`, fed in chunks of
/// the sizes `seed` draws (seed 0: all at once).
fn records(data: &[u8], format: Format, mode: &MultilineMode, seed: u64) -> Vec<String> {
    let rules = Arc::new(MultilineRules {
        mode: mode.clone(),
        end: None,
        max_lines: 1000,
        max_bytes: 1 << 20,
        timeout: Duration::from_secs(3600),
    });
    let mut records = Records::from_parts(
        Framer::new(64 * 1024, 0),
        Decoder::new(format, 64 * 1024, std::time::Duration::from_secs(5)),
        Some(Multiline::new(rules)),
    );
    let mut stats = CutStats::default();
    let mut out = Vec::new();
    let now = Instant::now();
    let mut chunks = Chunks(seed);
    let mut pos = 0;
    while pos < data.len() {
        let end = if seed == 0 {
            data.len()
        } else {
            (pos + chunks.next()).min(data.len())
        };
        records.push(&data[pos..end], now, &mut stats, &mut |e| {
            out.push(String::from_utf8_lossy(e.message).into_owned())
        });
        pos = end;
    }
    records.finish(None, &mut stats, &mut |e| {
        out.push(String::from_utf8_lossy(e.message).into_owned())
    });
    out
}

/// Checks that `mode` cuts `capture` into `expected`, raw and in CRI, whole and in chunks.
fn check(capture: &Capture, mode: &MultilineMode, what: &str, expected: &[String]) {
    for (format, data) in [
        (Format::Raw, capture.output.clone()),
        (Format::Cri, cri(&capture.output)),
    ] {
        for seed in [0, 1, 7, 42, 1234, 98765] {
            let got = records(&data, format, mode, seed);
            if got != expected {
                let first = got.iter().zip(expected).position(|(g, e)| g != e);
                panic!(
                    "{} under {what} ({format:?}, chunks {seed}): {} records, expected {}; first difference at {first:?}:\n got: {:#?}\nwant: {:#?}",
                    capture.name,
                    got.len(),
                    expected.len(),
                    first.map(|i| &got[i]),
                    first.map(|i| &expected[i]),
                );
            }
        }
    }
}

/// Each record as the program printed it: what a preset must cut.
fn as_printed(capture: &Capture) -> Vec<String> {
    capture.records.iter().map(|r| r.text.clone()).collect()
}

/// What `mode: auto` must cut: records begin with the log format's shape, so a trace printed
/// alone joins the log record before it; before the first log record, lines pass alone.
fn as_auto(capture: &Capture) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut logged = false;
    for r in &capture.records {
        if r.log {
            logged = true;
            out.push(r.text.clone());
        } else if logged && let Some(last) = out.last_mut() {
            last.push('\n');
            last.push_str(&r.text);
        } else {
            out.extend(r.text.split('\n').map(str::to_string));
        }
    }
    out
}

fn check_preset(preset: &str, captures: &[Capture]) {
    let mode = multiline::preset(preset).unwrap();
    for capture in captures {
        check(
            capture,
            &mode,
            &format!("preset {preset}"),
            &as_printed(capture),
        );
        check(
            capture,
            &MultilineMode::Auto,
            "mode auto",
            &as_auto(capture),
        );
    }
}

#[test]
fn java_preset_and_auto_mode_on_openjdk_output() {
    check_preset("java", &[java()]);
}

#[test]
fn python_preset_and_auto_mode_on_cpython_output() {
    check_preset("python", &python());
}

#[test]
fn node_preset_and_auto_mode_on_node_output() {
    check_preset("node", &[node()]);
}

#[test]
fn go_preset_and_auto_mode_on_go_output() {
    check_preset("go", &[go()]);
}

/// The presets are not interchangeable: each runtime's output needs its own (a check that
/// the outputs exercise what makes each grammar different).
#[test]
fn another_runtimes_preset_cuts_differently() {
    let java = java();
    let node = node();
    for (capture, preset) in [(&java, "python"), (&java, "node"), (&node, "java")] {
        let mode = multiline::preset(preset).unwrap();
        let got = records(&capture.output, Format::Raw, &mode, 0);
        assert_ne!(got, as_printed(capture), "{} under {preset}", capture.name);
    }
}
