//! Sparse files: the holes in them (ranges never written, read back as zeros) are skipped with
//! `SEEK_DATA`, counted in `ringtail_sparse_bytes_skipped_total` and never become records —
//! a file with a 4 GiB hole in the middle, a file that starts with one, and the common case: a
//! writer without `O_APPEND` that goes on at its own offset after a `copytruncate`. The
//! checkpoint moves past the holes, so a restart reads nothing twice. Real binary, real files
//! on the build directory's file system (ext4 here; sparse on every Linux file system that
//! matters).
#![allow(clippy::unwrap_used, reason = "tests fail loudly on broken invariants")]

mod common;

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;
use std::time::Duration;

use common::{Collector, wait_for_lines};

const GIB: u64 = 1 << 30;

fn config(dir: &Path) -> String {
    common::text_sink_config(
        dir,
        "checkpoints:\n  interval: 100ms\n",
        "app",
        "logs/*.log",
    )
}

fn lines(tag: &str, numbers: std::ops::Range<u32>) -> String {
    numbers.map(|n| format!("{tag} {n:06}\n")).collect()
}

/// The delivered lines, checked to be free of NUL bytes.
fn delivered(out: &Path) -> Vec<String> {
    let bytes = std::fs::read(out).unwrap_or_default();
    assert!(
        !bytes.contains(&0),
        "no record holds the zeros of a hole ({} bytes delivered)",
        bytes.len()
    );
    String::from_utf8(bytes)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn holes_are_skipped_counted_and_never_read_as_lines() {
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let dir = tmp.path();
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs).unwrap();

    // Lines, a 4 GiB hole, lines.
    let middle = logs.join("middle.log");
    let mut f = File::create(&middle).unwrap();
    f.write_all(lines("middle", 0..100).as_bytes()).unwrap();
    f.seek(SeekFrom::Current(4 * GIB as i64)).unwrap();
    f.write_all(lines("middle", 100..200).as_bytes()).unwrap();
    drop(f);

    // A 4 GiB hole first (a file extended by truncate(1)), then lines appended.
    let leading = logs.join("leading.log");
    let f = File::create(&leading).unwrap();
    f.set_len(4 * GIB).unwrap();
    drop(f);
    let mut f = OpenOptions::new().append(true).open(&leading).unwrap();
    f.write_all(lines("leading", 0..100).as_bytes()).unwrap();
    drop(f);

    // A writer without O_APPEND, 1 MiB and a bit into its file.
    let truncated = logs.join("truncated.log");
    let mut writer = File::create(&truncated).unwrap();
    let before = lines("before", 0..80_000);
    writer.write_all(before.as_bytes()).unwrap();
    let written = before.len() as u64;
    assert!(
        written > 1 << 20 && !written.is_multiple_of(4096),
        "{written}"
    );

    let out = dir.join("out/out.ndjson");
    let collector = Collector::start(dir, &config(dir));
    let first = 200 + 100 + 80_000;
    assert_eq!(
        wait_for_lines(&out, first, Duration::from_secs(20)),
        first,
        "{}",
        collector.stderr()
    );

    // copytruncate: the file is copied (not needed here) and cut to 0; the writer goes on at
    // its own offset, so the file is a hole up to there, then its new lines.
    File::options()
        .write(true)
        .open(&truncated)
        .unwrap()
        .set_len(0)
        .unwrap();
    collector.wait_until(Duration::from_secs(10), "the truncation seen", || {
        collector.metric("ringtail_truncations_total{source=\"app\"}") >= 1.0
    });
    writer.write_all(lines("after", 0..100).as_bytes()).unwrap();
    let total = first + 100;
    assert_eq!(
        wait_for_lines(&out, total, Duration::from_secs(10)),
        total,
        "{}",
        collector.stderr()
    );
    delivered(&out);
    // Both 4 GiB holes and the copytruncate one (less the zeros its writer's block holds).
    let holes = (8 * GIB + 1_118_208) as f64;
    collector.wait_until(Duration::from_secs(5), "the holes counted", || {
        collector.metric("ringtail_sparse_bytes_skipped_total{source=\"app\"}") >= holes
    });
    std::thread::sleep(Duration::from_millis(400));
    let (status, log) = collector.stop();
    assert!(status.success(), "{log}");
    assert!(log.contains("skipping a hole of a sparse file"), "{log}");

    // The checkpoints are past the holes: a restart reads only what is new.
    writer.write_all(lines("later", 0..10).as_bytes()).unwrap();
    let collector = Collector::start(dir, &config(dir));
    assert_eq!(
        wait_for_lines(&out, total + 10, Duration::from_secs(10)),
        total + 10
    );
    std::thread::sleep(Duration::from_millis(500));
    let (status, log) = collector.stop();
    assert!(status.success(), "{log}");

    let got = delivered(&out);
    let mut want: Vec<String> = [
        lines("middle", 0..200),
        lines("leading", 0..100),
        before,
        lines("after", 0..100),
        lines("later", 0..10),
    ]
    .concat()
    .lines()
    .map(str::to_string)
    .collect();
    let mut sorted = got.clone();
    sorted.sort();
    want.sort();
    assert_eq!(
        sorted.len(),
        want.len(),
        "every line once, nothing more: {log}"
    );
    assert!(sorted == want, "every line exactly once");
}
