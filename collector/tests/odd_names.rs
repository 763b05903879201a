//! File names are bytes on Linux, and a container controls the names in its declared
//! directories: names that are not UTF-8, or hold a newline, quotes, backslashes, or 250
//! bytes, are read like any other, shown in records with every byte kept (`\xNN` for bytes
//! that are not UTF-8), checkpointed exactly, and resumed after a restart — and nothing else is
//! affected (one such name used to fail every checkpoint write). Real binary, real files.
#![allow(clippy::unwrap_used, reason = "tests fail loudly on broken invariants")]

mod common;

use std::ffi::OsStr;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::Duration;

use common::{Collector, records, wait_for_lines};

fn config(dir: &Path) -> String {
    common::file_sink_config(
        dir,
        "checkpoints:\n  interval: 100ms\n",
        "app",
        "logs/*.log",
        "json",
    )
}

fn names() -> Vec<Vec<u8>> {
    let mut long = b"long-".to_vec();
    long.resize(246, b'n');
    long.extend_from_slice(b".log");
    vec![
        b"plain.log".to_vec(),
        b"app-\xff\xfe.log".to_vec(),
        b"new\nline.log".to_vec(),
        b"quote\"back\\slash.log".to_vec(),
        "spaces and \u{fc}.log".as_bytes().to_vec(),
        long,
    ]
}

fn append(logs: &Path, name: &[u8], line: &str) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(logs.join(OsStr::from_bytes(name)))
        .unwrap();
    writeln!(f, "{line}").unwrap();
}

#[test]
fn odd_file_names_are_read_shown_checkpointed_and_resumed() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let names = names();
    for (i, name) in names.iter().enumerate() {
        append(&logs, name, &format!("file {i} line 0"));
    }
    let collector = Collector::start(dir, &config(dir));
    for (i, name) in names.iter().enumerate() {
        append(&logs, name, &format!("file {i} line 1"));
    }
    let out = dir.join("out/out.ndjson");
    let first = 2 * names.len();
    assert_eq!(
        wait_for_lines(&out, first, Duration::from_secs(10)),
        first,
        "{}",
        collector.stderr()
    );
    collector.wait_until(Duration::from_secs(10), "a checkpoint written", || {
        collector.metric("ringtail_checkpoint_writes_total") >= 2.0
    });
    assert_eq!(collector.metric("ringtail_checkpoint_errors_total"), 0.0);
    let (status, log) = collector.stop();
    assert!(status.success(), "a clean stop:\n{log}");

    // Every record names its file with every byte kept.
    let files: Vec<String> = records(&out)
        .iter()
        .map(|r| r["file"].as_str().unwrap().to_string())
        .collect();
    let shown = |name: &[u8]| {
        let mut text = logs.display().to_string();
        text.push('/');
        for chunk in name.utf8_chunks() {
            text.push_str(chunk.valid());
            for b in chunk.invalid() {
                text.push_str(&format!("\\x{b:02x}"));
            }
        }
        text
    };
    for name in &names {
        assert_eq!(
            files.iter().filter(|f| **f == shown(name)).count(),
            2,
            "{:?} in {files:?}",
            shown(name)
        );
    }

    // A restart resumes every file where it was: new lines once, old ones not again.
    for (i, name) in names.iter().enumerate() {
        append(&logs, name, &format!("file {i} line 2"));
    }
    let collector = Collector::start(dir, &config(dir));
    let total = 3 * names.len();
    assert_eq!(wait_for_lines(&out, total, Duration::from_secs(10)), total);
    std::thread::sleep(Duration::from_millis(300));
    let (status, log) = collector.stop();
    assert!(status.success(), "{log}");
    let mut messages: Vec<String> = records(&out)
        .iter()
        .map(|r| r["message"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(messages.len(), total, "nothing twice: {messages:?}");
    messages.sort();
    messages.dedup();
    assert_eq!(messages.len(), total);
}
