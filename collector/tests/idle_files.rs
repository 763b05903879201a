//! A file read to its end and idle for `reader.close_idle` is closed — its descriptor given
//! back — and its next write opens it again at its offset, whether inotify or the eBPF write
//! hook reports the write. A parked file that is rotated (renamed, a new file in its place)
//! or deleted loses nothing that was written before its last read, nor a write made just
//! before its deletion. Real binary, real files.
#![allow(clippy::unwrap_used, reason = "tests fail loudly on broken invariants")]

mod common;

use std::path::Path;
use std::time::Duration;

use common::{Collector, append_lines, wait_for_lines};

const FILES: u64 = 50;

fn config(dir: &Path, wake: &str) -> String {
    let reader = format!("reader:\n  close_idle: 500ms\n  wake: {wake}\n");
    common::text_sink_config(dir, &reader, "app", "logs/*.log")
}

fn log(dir: &Path, f: u64) -> std::path::PathBuf {
    dir.join(format!("logs/{f:02}.log"))
}

fn idle_files_are_closed_and_opened_again(wake: &str) {
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let dir = tmp.path();
    std::fs::create_dir_all(dir.join("logs")).unwrap();
    let out = dir.join("out/out.ndjson");
    let collector = Collector::start(dir, &config(dir, wake));
    for f in 0..FILES {
        append_lines(&log(dir, f), &format!("f{f}"), 0..10, 0);
    }
    let mut total = (FILES * 10) as usize;
    assert_eq!(wait_for_lines(&out, total, Duration::from_secs(10)), total);
    collector.wait_until(Duration::from_secs(10), "every file parked", || {
        collector.metric("ringtail_files_parked") == FILES as f64
            && collector.metric("ringtail_files_open") == 0.0
    });

    // Their next writes open them again, at their offsets.
    for f in 0..FILES {
        append_lines(&log(dir, f), &format!("f{f}"), 10..20, 0);
    }
    total += (FILES * 10) as usize;
    assert_eq!(
        wait_for_lines(&out, total, Duration::from_secs(10)),
        total,
        "{}",
        collector.stderr()
    );
    collector.wait_until(Duration::from_secs(10), "parked again", || {
        collector.metric("ringtail_files_parked") == FILES as f64
    });

    // A parked file rotated: renamed, written once more by its old writer, and a new file in
    // its place. Another deleted.
    std::fs::rename(log(dir, 0), dir.join("logs/00.log.1")).unwrap();
    append_lines(&dir.join("logs/00.log.1"), "f0", 20..25, 0);
    append_lines(&log(dir, 0), "new0", 0..5, 0);
    std::fs::remove_file(log(dir, 1)).unwrap();
    total += 10;
    assert_eq!(
        wait_for_lines(&out, total, Duration::from_secs(10)),
        total,
        "{}",
        collector.stderr()
    );

    // A parked file (02, parked since above) written and deleted right after: the write is
    // not held for the reader's linger (25 ms by default), so the file is opened again
    // before it is gone.
    append_lines(&log(dir, 2), "f2", 20..25, 0);
    std::thread::sleep(Duration::from_millis(10));
    std::fs::remove_file(log(dir, 2)).unwrap();
    total += 5;
    assert_eq!(
        wait_for_lines(&out, total, Duration::from_secs(10)),
        total,
        "{}",
        collector.stderr()
    );
    assert_eq!(
        collector.metric_sum("ringtail_files_gone_while_parked_total", "source=\"app\""),
        0.0
    );
    std::thread::sleep(Duration::from_millis(300));
    let (status, log) = collector.stop();
    assert!(status.success(), "{log}");
    assert_eq!(common::count_lines(&out), total, "every line once");
}

#[test]
fn idle_files_are_closed_and_opened_again_by_inotify() {
    idle_files_are_closed_and_opened_again("inotify");
}

#[test]
fn idle_files_are_closed_and_opened_again_by_the_write_hook() {
    idle_files_are_closed_and_opened_again("write_hook");
}
