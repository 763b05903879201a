//! Bad input gives a clear error or a counted degradation — never a panic, a silent drop or
//! unbounded memory: NUL bytes and invalid UTF-8, a 50 MB line without a newline, a file
//! deleted while being read, a file truncated while being read, a broken configuration.
#![allow(clippy::unwrap_used, reason = "tests fail loudly on broken invariants")]

mod common;

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use base64::Engine;
use common::{Collector, records, wait_for_lines};

fn config(dir: &Path, extra_source: &str, reader: &str) -> String {
    format!(
        r#"data_dir: {dir}/data
api:
  listen: 127.0.0.1:{{port}}
reader:
{reader}
sources:
  - name: raw
    paths: ["{dir}/logs/*.log"]
{extra_source}
sinks:
  - name: out
    type: file
    path: {dir}/data/out.ndjson
    sync_interval: 100ms
"#,
        dir = dir.display()
    )
}

fn setup() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("logs")).unwrap();
    dir
}

#[test]
fn nul_bytes_and_invalid_utf8_are_delivered_losslessly_and_counted() {
    let dir = setup();
    let root = dir.path();
    let collector = Collector::start(root, &config(root, "", "  chunk_size: 64KiB"));
    let lines: [&[u8]; 4] = [
        b"plain",
        b"nul\0inside\0",
        b"bad \xff\xfe utf8 \xc3",
        b"caf\xc3\xa9 ok",
    ];
    let mut body = Vec::new();
    for l in lines {
        body.extend_from_slice(l);
        body.push(b'\n');
    }
    std::fs::write(root.join("logs/a.log"), &body).unwrap();
    let out = root.join("data/out.ndjson");
    assert_eq!(
        wait_for_lines(&out, 4, Duration::from_secs(20)),
        4,
        "{}",
        collector.stderr()
    );
    assert_eq!(
        collector.metric("ringtail_invalid_utf8_records_total{source=\"raw\"}"),
        1.0
    );
    let (status, stderr) = collector.stop();
    assert!(status.success(), "{stderr}");

    let recs = records(&out);
    assert_eq!(recs[0]["message"], "plain");
    assert_eq!(
        recs[1]["message"], "nul\u{0}inside\u{0}",
        "NUL bytes survive as \\u0000"
    );
    assert!(recs[1].get("invalid_utf8").is_none());
    assert_eq!(recs[2]["invalid_utf8"], true);
    assert_eq!(recs[2]["message"], "bad \u{FFFD}\u{FFFD} utf8 \u{FFFD}");
    let exact = base64::engine::general_purpose::STANDARD
        .decode(recs[2]["message_base64"].as_str().unwrap())
        .unwrap();
    assert_eq!(exact, lines[2], "the exact bytes are kept");
    assert_eq!(recs[3]["message"], "café ok");
}

#[test]
fn a_50_mb_line_without_newline_is_cut_and_memory_stays_bounded() {
    let dir = setup();
    let root = dir.path();
    let source = "    max_line_bytes: 64KiB";
    let reader =
        "  chunk_size: 256KiB\n  buffer_memory: 4MiB\npipeline:\n  workers: 1\n  queue_batches: 4";
    let collector = Collector::start(root, &config(root, source, reader));
    let out = root.join("data/out.ndjson");
    // First 50 MB of ordinary lines, to see what reading that much costs anyway (buffers
    // and batches come to life; the allocator takes its segments).
    const WARM_LINES: usize = 50 * 1024;
    let mut warm = std::fs::File::create(root.join("logs/warm.log")).unwrap();
    let line = [vec![b'y'; 1023], vec![b'\n']].concat();
    for _ in 0..WARM_LINES {
        warm.write_all(&line).unwrap();
    }
    warm.flush().unwrap();
    assert_eq!(
        wait_for_lines(&out, WARM_LINES, Duration::from_secs(60)),
        WARM_LINES,
        "{}",
        collector.stderr()
    );
    let warmed = collector.peak_rss();
    let path = root.join("logs/big.log");
    let mut f = std::fs::File::create(&path).unwrap();
    f.write_all(b"before\n").unwrap();
    let block = vec![b'x'; 1 << 20];
    for _ in 0..50 {
        f.write_all(&block).unwrap();
    }
    f.flush().unwrap();
    assert_eq!(
        wait_for_lines(&out, WARM_LINES + 2, Duration::from_secs(30)),
        WARM_LINES + 2,
        "{}",
        collector.stderr()
    );
    // The rest of the line is skipped (counted); a newline ends it and reading goes on.
    f.write_all(b"\nafter\n").unwrap();
    assert_eq!(
        wait_for_lines(&out, WARM_LINES + 3, Duration::from_secs(30)),
        WARM_LINES + 3,
        "{}",
        collector.stderr()
    );
    assert_eq!(
        collector.metric("ringtail_lines_truncated_total{source=\"raw\"}"),
        1.0
    );
    assert_eq!(
        collector.metric("ringtail_truncated_bytes_total{source=\"raw\"}"),
        (50 * (1 << 20) - 64 * 1024) as f64
    );
    let growth = collector.peak_rss().saturating_sub(warmed);
    eprintln!(
        "RSS growth while reading the 50 MB line, over reading 50 MB of ordinary lines: {} MiB",
        growth >> 20
    );
    let (status, stderr) = collector.stop();
    assert!(status.success(), "{stderr}");
    assert!(
        growth < 16 << 20,
        "RSS grew by {} MiB: the 50 MB line must not be buffered",
        growth >> 20
    );

    let recs: Vec<serde_json::Value> = records(&out)
        .into_iter()
        .filter(|r| r["file"].as_str().unwrap().ends_with("big.log"))
        .collect();
    assert_eq!(recs[0]["message"], "before");
    assert_eq!(recs[1]["truncated"], true);
    assert_eq!(recs[1]["offset"], 7);
    assert_eq!(recs[1]["message"].as_str().unwrap().len(), 64 * 1024);
    assert_eq!(recs[2]["message"], "after");
    assert_eq!(recs[2]["offset"], 7 + 50 * (1 << 20) + 1);
}

#[test]
fn a_file_deleted_while_being_read_is_read_to_its_end() {
    let dir = setup();
    let root = dir.path();
    // A slow start: small chunks, so the file is still being read when it is deleted.
    let path = root.join("logs/doomed.log");
    let mut body = String::new();
    for i in 0..200_000 {
        body.push_str(&format!(
            "line {i:06} of a file that is about to be deleted\n"
        ));
    }
    body.push_str("last words without a newline");
    std::fs::write(&path, &body).unwrap();
    let collector = Collector::start(root, &config(root, "", "  chunk_size: 16KiB"));
    std::fs::remove_file(&path).unwrap();
    let out = root.join("data/out.ndjson");
    let got = wait_for_lines(&out, 200_001, Duration::from_secs(60));
    assert_eq!(got, 200_001, "{}", collector.stderr());
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        collector.metric("ringtail_files_open"),
        0.0,
        "closed once drained"
    );
    let (status, stderr) = collector.stop();
    assert!(status.success(), "{stderr}");
    let recs = records(&out);
    for (i, r) in recs.iter().take(200_000).enumerate() {
        assert_eq!(
            r["message"],
            format!("line {i:06} of a file that is about to be deleted")
        );
    }
    assert_eq!(
        recs[200_000]["message"], "last words without a newline",
        "the unfinished last line of a deleted file is delivered"
    );
}

#[test]
fn a_file_truncated_while_being_read_is_read_again_from_the_start() {
    let dir = setup();
    let root = dir.path();
    let collector = Collector::start(root, &config(root, "", "  chunk_size: 64KiB"));
    let path = root.join("logs/app.log");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .unwrap();
    for i in 0..1000 {
        writeln!(f, "before truncation {i}").unwrap();
    }
    let out = root.join("data/out.ndjson");
    assert_eq!(
        wait_for_lines(&out, 1000, Duration::from_secs(20)),
        1000,
        "{}",
        collector.stderr()
    );
    // copytruncate: the file is emptied in place and the writer goes on (O_APPEND).
    f.set_len(0).unwrap();
    for i in 0..10 {
        writeln!(f, "after truncation {i}").unwrap();
    }
    assert_eq!(
        wait_for_lines(&out, 1010, Duration::from_secs(20)),
        1010,
        "{}",
        collector.stderr()
    );
    assert_eq!(
        collector.metric("ringtail_truncations_total{source=\"raw\"}"),
        1.0
    );
    let (status, stderr) = collector.stop();
    assert!(status.success(), "{stderr}");
    assert!(
        stderr.contains("file was truncated; reading it again from the start"),
        "{stderr}"
    );
    let recs = records(&out);
    let after: Vec<_> = recs
        .iter()
        .skip(1000)
        .map(|r| {
            (
                r["message"].as_str().unwrap().to_string(),
                r["offset"].as_u64().unwrap(),
            )
        })
        .collect();
    let expect: Vec<_> = (0..10u64)
        .map(|i| (format!("after truncation {i}"), i * 19))
        .collect();
    assert_eq!(after, expect, "new lines, with offsets from 0 again");
}

#[test]
fn a_broken_configuration_is_refused_with_every_problem_by_validate_and_run() {
    let dir = setup();
    let path = dir.path().join("bad.yaml");
    std::fs::write(
        &path,
        "data_dir: /tmp/rt-bad\nsources:\n  - name: a\n    paths: [\"/var/log/[.log\"]\n    colour: red\n    multiline: {start: '(x'}\n",
    )
    .unwrap();
    let validate = Command::new(common::binary())
        .args(["validate", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let run = Command::new(common::binary())
        .args(["run", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!validate.status.success());
    assert!(!run.status.success());
    let validate_err = String::from_utf8_lossy(&validate.stderr);
    let run_err = String::from_utf8_lossy(&run.stderr);
    for expected in [
        "4 problems found",
        "line 4, column 13: sources[0].paths[0]: invalid glob `/var/log/[.log`",
        "line 5, column 5: sources[0].colour: unknown field `colour`",
        "line 6, column 24: sources[0].multiline.start: invalid regex `(x`",
        "sinks: at least one sink is required",
    ] {
        assert!(
            validate_err.contains(expected),
            "validate output lacks {expected:?}:\n{validate_err}"
        );
    }
    assert_eq!(validate_err, run_err, "run refuses with the same messages");
    assert!(!validate_err.contains("panicked"));

    let ok = dir.path().join("ok.yaml");
    std::fs::write(&ok, "data_dir: /tmp/rt-ok\nsources: [{name: a, paths: [\"/x/*.log\"]}]\nsinks: [{name: o, type: blackhole}]\n").unwrap();
    let validate = Command::new(common::binary())
        .args(["validate", "--config"])
        .arg(&ok)
        .output()
        .unwrap();
    assert!(
        validate.status.success(),
        "{}",
        String::from_utf8_lossy(&validate.stderr)
    );
    assert!(
        String::from_utf8_lossy(&validate.stdout)
            .contains("configuration is valid (1 source, 1 sink)")
    );

    let missing = Command::new(common::binary())
        .args(["validate", "--config", "/nonexistent/x.yaml"])
        .output()
        .unwrap();
    assert!(!missing.status.success());
    assert!(
        String::from_utf8_lossy(&missing.stderr)
            .contains("cannot read configuration file /nonexistent/x.yaml")
    );
}

#[test]
fn a_symlink_leading_outside_the_log_directories_is_refused_and_counted() {
    let dir = setup();
    let root = dir.path();
    let logs = root.join("logs");
    // Outside every glob root: what a planted `0.log -> /etc/shadow` would read.
    let secret = root.join("secret");
    std::fs::create_dir_all(&secret).unwrap();
    std::fs::write(secret.join("shadow"), "root:SECRET:19000:0:99999:7:::\n").unwrap();
    std::os::unix::fs::symlink(secret.join("shadow"), logs.join("early.log")).unwrap();
    // Inside the glob's root: followed (read once, under either name).
    std::fs::create_dir_all(logs.join("real")).unwrap();
    std::fs::write(logs.join("real/app"), "inside the root\n").unwrap();
    std::os::unix::fs::symlink(logs.join("real/app"), logs.join("inside.log")).unwrap();
    let collector = Collector::start(root, &config(root, "", "  chunk_size: 64KiB"));
    // One planted after the start too (seen through inotify's create event).
    std::os::unix::fs::symlink(secret.join("shadow"), logs.join("late.log")).unwrap();
    std::fs::write(logs.join("plain.log"), "a plain file\n").unwrap();
    let out = root.join("data/out.ndjson");
    wait_for_lines(&out, 2, Duration::from_secs(10));
    collector.wait_until(Duration::from_secs(10), "two refused symlinks", || {
        collector.metric("ringtail_symlinks_refused_total{source=\"raw\"}") >= 2.0
    });
    std::thread::sleep(Duration::from_millis(300));
    let (status, log) = collector.stop();
    assert!(status.success(), "{log}");
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(
        !text.contains("SECRET"),
        "a refused target was read:\n{text}"
    );
    let messages: Vec<String> = records(&out)
        .iter()
        .map(|r| r["message"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(messages.len(), 2, "{messages:?}");
    assert!(
        messages.contains(&"inside the root".to_string()),
        "{messages:?}"
    );
    assert!(
        messages.contains(&"a plain file".to_string()),
        "{messages:?}"
    );
    assert!(
        log.contains("refusing a symlink that leads outside the log directories"),
        "{log}"
    );
}
