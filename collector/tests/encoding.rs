//! Sink encodings end to end: a `text` sink writes each record's message byte for byte (a raw
//! file comes out identical, invalid UTF-8, NUL bytes and stack traces included; CRI comes
//! out as its joined messages), next to a `json` sink fed by the same sources — one record
//! encoded twice, acknowledged once — and a restart delivers each record exactly once to both.

#![allow(clippy::unwrap_used, reason = "tests fail loudly on broken invariants")]

use std::io::Write;
use std::path::Path;

use base64::Engine;
use std::time::Duration;

mod common;

use common::Collector;

fn config(dir: &Path) -> String {
    format!(
        r#"data_dir: {d}/data
checkpoints:
  interval: 100ms
api:
  listen: 127.0.0.1:{{port}}
sources:
  - name: app
    paths: ["{d}/app/*.log"]
    format: raw
    multiline: {{preset: java, timeout: 200ms}}
  - name: pods
    paths: ["{d}/pods/*.log"]
    format: cri
sinks:
  - name: json
    type: file
    path: {d}/out/all.ndjson
    sync_interval: 50ms
  - name: app_text
    type: file
    inputs: [app]
    encoding: text
    path: {d}/out/app.txt
    sync_interval: 50ms
  - name: pods_text
    type: file
    inputs: [pods]
    encoding: text
    path: {d}/out/pods.txt
    sync_interval: 50ms
"#,
        d = dir.display()
    )
}

/// Raw application lines `n` in `numbers`: plain lines, every seventh a Java stack trace, and
/// some bytes JSON must escape or cannot hold (quotes, tabs, NUL, invalid UTF-8).
fn app_lines(numbers: std::ops::Range<u32>) -> Vec<u8> {
    let mut out = Vec::new();
    for n in numbers {
        match n % 7 {
            0 => {
                out.extend_from_slice(
                    format!(
                        "2024-01-01 00:00:00 ERROR app {n} failed\n\
                         java.lang.IllegalStateException: state {n}\n\
                         \tat com.example.A.run(A.java:{n})\n\
                         \tat com.example.B.call(B.java:7)\n\
                         Caused by: java.io.IOException: gone\n\
                         \t... 2 more\n"
                    )
                    .as_bytes(),
                );
            }
            3 => {
                out.extend_from_slice(
                    format!("2024-01-01 00:00:00 INFO app {n} bytes ").as_bytes(),
                );
                out.extend_from_slice(b"\xff\xfe\x00 \"quoted\" back\\slash\ttab\n");
            }
            _ => out.extend_from_slice(
                format!("2024-01-01 00:00:00 INFO app {n} {}\n", "x".repeat(40)).as_bytes(),
            ),
        }
    }
    out
}

/// CRI lines for `numbers`; every fifth message is split into a partial `P` line and its
/// final `F` line. Returns the file bytes and the messages as a text sink writes them.
fn pod_lines(numbers: std::ops::Range<u32>) -> (Vec<u8>, Vec<u8>) {
    let (mut file, mut messages) = (Vec::new(), Vec::new());
    for n in numbers {
        let message = format!("pod {n} {}", "p".repeat(30));
        if n.is_multiple_of(5) {
            let (a, b) = message.split_at(7);
            file.extend_from_slice(format!("2024-01-01T00:00:00.1Z stdout P {a}\n").as_bytes());
            file.extend_from_slice(format!("2024-01-01T00:00:00.2Z stdout F {b}\n").as_bytes());
        } else {
            file.extend_from_slice(
                format!("2024-01-01T00:00:00.1Z stderr F {message}\n").as_bytes(),
            );
        }
        messages.extend_from_slice(message.as_bytes());
        messages.push(b'\n');
    }
    (file, messages)
}

fn append(path: &Path, bytes: &[u8]) {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap()
        .write_all(bytes)
        .unwrap();
}

/// Waits until `path` holds exactly `want` (it only grows), failing with what differs.
fn wait_for_bytes(collector: &Collector, path: &Path, want: &[u8]) {
    collector.wait_until(
        Duration::from_secs(30),
        &format!("{}", path.display()),
        || std::fs::read(path).unwrap_or_default().len() >= want.len(),
    );
    let got = std::fs::read(path).unwrap();
    if got != want {
        let at = got.iter().zip(want).position(|(a, b)| a != b);
        panic!(
            "{} differs from what was written: {} bytes vs {}, first difference at {at:?}",
            path.display(),
            got.len(),
            want.len()
        );
    }
}

/// The messages (exact bytes) of the `json` sink's records from `source`, in output order.
fn json_messages(path: &Path, source: &str) -> Vec<Vec<u8>> {
    common::records(path)
        .into_iter()
        .filter(|r| r["source"] == source)
        .map(|r| match r["message_base64"].as_str() {
            Some(b64) => base64::engine::general_purpose::STANDARD
                .decode(b64)
                .unwrap(),
            None => r["message"].as_str().unwrap().as_bytes().to_vec(),
        })
        .collect()
}

/// The multi-line records of `app_lines` as the java preset joins them.
fn app_records(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut records: Vec<Vec<u8>> = Vec::new();
    for line in bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let continuation =
            line.starts_with(b"\t") || line.starts_with(b"Caused by") || line.starts_with(b"java.");
        match records.last_mut() {
            Some(last) if continuation => {
                last.push(b'\n');
                last.extend_from_slice(line);
            }
            _ => records.push(line.to_vec()),
        }
    }
    records
}

#[test]
fn a_text_sink_writes_messages_byte_for_byte_next_to_a_json_sink() {
    let dir = tempfile::tempdir().unwrap();
    for sub in ["app", "pods", "out"] {
        std::fs::create_dir_all(dir.path().join(sub)).unwrap();
    }
    let app = dir.path().join("app/app.log");
    let pods = dir.path().join("pods/web.log");
    let app_text = dir.path().join("out/app.txt");
    let pods_text = dir.path().join("out/pods.txt");
    let json = dir.path().join("out/all.ndjson");

    let mut app_written = app_lines(0..3000);
    append(&app, &app_written);
    let (pods_file, mut pods_messages) = pod_lines(0..3000);
    append(&pods, &pods_file);
    let collector = Collector::start(dir.path(), &config(dir.path()));
    // A raw file through a text sink is itself again, byte for byte.
    wait_for_bytes(&collector, &app_text, &app_written);
    wait_for_bytes(&collector, &pods_text, &pods_messages);
    collector.wait_until(Duration::from_secs(10), "JSON records", || {
        json_messages(&json, "app").len() == app_records(&app_written).len()
            && json_messages(&json, "pods").len() == 3000
    });
    assert_eq!(json_messages(&json, "app"), app_records(&app_written));
    // Only the JSON encoding looks for invalid UTF-8, once per record.
    let invalid = collector.metric("ringtail_invalid_utf8_records_total{source=\"app\"}");
    assert_eq!(invalid, (0..3000).filter(|n| n % 7 == 3).count() as f64);
    let (status, log) = collector.stop();
    assert!(status.success(), "{log}");

    // After a restart, only the new records, once, in both encodings.
    let collector = Collector::start(dir.path(), &config(dir.path()));
    let more = app_lines(3000..4000);
    append(&app, &more);
    app_written.extend_from_slice(&more);
    let (pods_more, messages_more) = pod_lines(3000..4000);
    append(&pods, &pods_more);
    pods_messages.extend_from_slice(&messages_more);
    wait_for_bytes(&collector, &app_text, &app_written);
    wait_for_bytes(&collector, &pods_text, &pods_messages);
    collector.wait_until(Duration::from_secs(10), "JSON records", || {
        json_messages(&json, "pods").len() >= 4000
            && json_messages(&json, "app").len() >= app_records(&app_written).len()
    });
    let (status, log) = collector.stop();
    assert!(status.success(), "{log}");
    assert_eq!(json_messages(&json, "app"), app_records(&app_written));
    let pods_json: Vec<u8> = json_messages(&json, "pods")
        .into_iter()
        .flat_map(|mut m| {
            m.push(b'\n');
            m
        })
        .collect();
    assert_eq!(pods_json, pods_messages);
}
