//! End to end: the real binary tails 50 files written concurrently — 25 CRI (with long lines
//! split into P/F partials, joined by the `java` preset) and 25 raw (joined by `mode: auto`),
//! both with Java stack traces — and the file sink must hold every record exactly once, in
//! order per file and stream, with the right offsets and joined multi-line messages.
#![allow(clippy::unwrap_used, reason = "tests fail loudly on broken invariants")]

mod common;

use std::io::BufReader;
use std::path::Path;
use std::time::Duration;

use bench::verify::verify;
use bench::workload::{self, Expected, FileWriter, Format, Rng, Shape};
use common::{Collector, wait_for_lines};

const FILES_PER_FORMAT: usize = 25;
const RECORDS_PER_FILE: u64 = 2_000;

fn config(dir: &Path, backend: &str) -> String {
    format!(
        r#"data_dir: {dir}/data
api:
  listen: 127.0.0.1:{{port}}
reader:
  backend: {backend}
  chunk_size: 64KiB
sources:
  - name: cri
    paths: ["{dir}/logs/pods/**/*.log"]
    format: cri
    multiline:
      preset: java
      timeout: 300ms
  - name: raw
    paths: ["{dir}/logs/raw/*.log"]
    format: raw
    multiline:
      mode: auto
      timeout: 300ms
sinks:
  - name: out
    type: file
    path: {dir}/data/out.ndjson
    sync_interval: 200ms
"#,
        dir = dir.display()
    )
}

/// Writes `RECORDS_PER_FILE` records to one file in bursts of random size, with short pauses so
/// that writers interleave and the collector sees many small appends.
fn write_file(path: &Path, format: Format, seed: u64, pre_existing: bool) -> Vec<Expected> {
    let mut rng = Rng::new(seed);
    let mut writer = FileWriter::create(path, format).unwrap();
    let shape = Shape {
        line_min: 100,
        line_max: 300,
        multiline_fraction: 0.2,
        long_fraction: if format == Format::Cri { 0.01 } else { 0.0 },
        ..Shape::default()
    };
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    let mut expected = Vec::new();
    let mut seq = 0;
    while seq < RECORDS_PER_FILE {
        let burst = 1 + rng.below(60);
        for _ in 0..burst.min(RECORDS_PER_FILE - seq) {
            let stream = if format == Format::Cri && rng.chance(0.3) {
                "stderr"
            } else {
                "stdout"
            };
            let lines = workload::record_lines(&mut rng, &name, seq, &shape, false);
            expected.push(writer.add(&lines, stream));
            seq += 1;
        }
        writer.flush().unwrap();
        if !pre_existing {
            std::thread::sleep(Duration::from_micros(rng.below(3_000)));
        }
    }
    expected
}

#[test]
fn fifty_files_written_concurrently_arrive_exactly_once_in_order() {
    many_files(FILES_PER_FORMAT, "io_uring");
}

/// The fallback backend must behave exactly the same.
#[test]
fn the_pread_backend_delivers_the_same() {
    many_files(5, "pread");
}

fn many_files(files_per_format: usize, backend: &str) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for sub in ["logs/raw", "data"] {
        std::fs::create_dir_all(root.join(sub)).unwrap();
    }
    // Five files exist, complete, before the collector starts: the start-up scan must find them.
    let mut expected = Vec::new();
    let mut jobs = Vec::new();
    for i in 0..2 * files_per_format {
        let (format, path) = if i < files_per_format {
            let pod = root.join(format!("logs/pods/ns_pod-{i}_uid-{i}/app"));
            std::fs::create_dir_all(&pod).unwrap();
            (Format::Cri, pod.join("0.log"))
        } else {
            (Format::Raw, root.join(format!("logs/raw/app-{i}.log")))
        };
        jobs.push((i, format, path));
    }
    for (i, format, path) in jobs.iter().filter(|(i, _, _)| i % 10 == 0) {
        expected.extend(write_file(path, *format, 1000 + *i as u64, true));
    }

    let collector = Collector::start(root, &config(root, backend));
    let writers: Vec<_> = jobs
        .into_iter()
        .filter(|(i, _, _)| i % 10 != 0)
        .map(|(i, format, path)| {
            std::thread::spawn(move || write_file(&path, format, 1000 + i as u64, false))
        })
        .collect();
    for w in writers {
        expected.extend(w.join().unwrap());
    }

    let out = root.join("data/out.ndjson");
    let got = wait_for_lines(&out, expected.len(), Duration::from_secs(90));
    assert_eq!(
        got,
        expected.len(),
        "records delivered before the deadline\n{}",
        collector.stderr()
    );
    // The last multi-line record of each file is emitted by its timeout; give a moment for
    // anything extra (a duplicate) to show up before checking.
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(
        collector.metric("ringtail_files_open"),
        (2 * files_per_format) as f64
    );
    assert_eq!(
        collector.metric(&format!("ringtail_reader_backend{{backend=\"{backend}\"}}")),
        1.0
    );
    assert!(collector.metric("ringtail_multiline_records_total{source=\"cri\"}") > 0.0);
    // The raw files' records begin with an ISO 8601 timestamp: `mode: auto` learns it once
    // per file (one stream each).
    assert_eq!(
        collector.metric("ringtail_multiline_auto_streams_total{source=\"raw\",shape=\"iso8601\"}"),
        files_per_format as f64
    );
    assert!(collector.metric("ringtail_multiline_records_total{source=\"raw\"}") > 0.0);
    let (status, stderr) = collector.stop();
    assert!(status.success(), "exit status {status}\n{stderr}");

    let report = verify(
        &expected,
        BufReader::new(std::fs::File::open(&out).unwrap()),
    )
    .unwrap();
    assert!(report.is_exact(), "{report:#?}");
    assert_eq!(report.delivered, expected.len());
    assert!(
        expected
            .iter()
            .any(|e| e.message.contains("\n\tat com.example")),
        "the workload has stack traces"
    );
    assert!(
        expected
            .iter()
            .any(|e| e.message.len() > workload::CRI_SPLIT),
        "the workload has P/F-split lines"
    );
}

/// The multi-line `timeout` is per stream: a stack trace on stderr goes out while the same
/// container keeps writing to stdout (the file never goes quiet), whole.
#[test]
fn a_stack_trace_on_one_stream_goes_out_while_the_other_keeps_writing() {
    goes_out_while_the_other_stream_keeps_writing(
        "    multiline:\n      preset: java\n      timeout: 500ms\n",
        "2026-01-01T00:00:00Z stderr F java.lang.IllegalStateException: boom\n\
         2026-01-01T00:00:00Z stderr F \tat shop.Cart.add(Cart.java:42)\n",
        "java.lang.IllegalStateException: boom\n\tat shop.Cart.add(Cart.java:42)",
    );
}

/// So is `partial_timeout` for a CRI `P` line whose `F` never comes: it goes out while the
/// container keeps writing to the other stream.
#[test]
fn a_partial_line_on_one_stream_goes_out_while_the_other_keeps_writing() {
    goes_out_while_the_other_stream_keeps_writing(
        "    partial_timeout: 500ms\n",
        "2026-01-01T00:00:00Z stderr P half a line\n",
        "half a line",
    );
}

/// A CRI source with `settings` (YAML lines under the source): `pending` is written to the
/// file, then a line to stdout every 200 ms; `expected` must go out, once and whole, before
/// stdout stops.
fn goes_out_while_the_other_stream_keeps_writing(settings: &str, pending: &str, expected: &str) {
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let dir = tmp.path();
    std::fs::create_dir_all(dir.join("logs")).unwrap();
    let out = dir.join("out/out.ndjson");
    let config = format!(
        r#"data_dir: {dir}/data
api:
  listen: 127.0.0.1:{{port}}
sources:
  - name: cri
    paths: ["{dir}/logs/*.log"]
    format: cri
{settings}sinks:
  - name: out
    type: file
    path: {out}
    sync_interval: 50ms
"#,
        dir = dir.display(),
        out = out.display()
    );
    let collector = Collector::start(dir, &config);
    let log = dir.join("logs/app.log");
    common::append(&log, pending);
    let mut out_at = None;
    for tick in 0..20 {
        common::append(
            &log,
            &format!("2026-01-01T00:00:01Z stdout F tick {tick}\n"),
        );
        std::thread::sleep(Duration::from_millis(200));
        if common::records(&out)
            .iter()
            .any(|r| r["message"].as_str() == Some(expected))
        {
            out_at = Some(tick);
            break;
        }
    }
    let out_at = out_at.unwrap_or_else(|| {
        panic!(
            "{expected:?} is still pending after 4 s of stdout lines: {:?}\n{}",
            common::records(&out),
            collector.stderr()
        )
    });
    assert!(out_at < 15, "out after {out_at} ticks of 200 ms");
    let others: Vec<String> = common::records(&out)
        .iter()
        .map(|r| r["message"].as_str().unwrap().to_string())
        .filter(|m| !m.starts_with("tick "))
        .collect();
    assert_eq!(others, [expected], "once, never split");
    let (status, stderr) = collector.stop();
    assert!(status.success(), "{stderr}");
}
