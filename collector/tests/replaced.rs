//! A file replaced by a rename (`mv new.log app.log`: editors, `sed -i`, rotators that write a
//! new file and move it into place) is treated like a deleted file: what its writer wrote is
//! read to its end, then it is closed — counted while held, no descriptor left behind. Real
//! binary, real files, twenty replaces in a row.
#![allow(clippy::unwrap_used, reason = "tests fail loudly on broken invariants")]

mod common;

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{Collector, records, wait_for_lines};

const REPLACES: usize = 20;
const OLD_LINES: usize = 50;

fn config(dir: &Path) -> String {
    common::file_sink_config(
        dir,
        "reader:\n  chunk_size: 4KiB\n  buffer_memory: 1MiB\n",
        "app",
        "logs/*.log",
        "json",
    )
}

fn append(path: &Path) -> File {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap()
}

/// Descriptors the collector holds on files that no longer have a name.
fn deleted_descriptors(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
        .filter(|e| {
            std::fs::read_link(e.path())
                .is_ok_and(|target| target.to_string_lossy().ends_with("(deleted)"))
        })
        .count()
}

#[test]
fn a_file_replaced_by_a_rename_is_read_to_its_end_and_closed() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let app = logs.join("app.log");
    let mut writer = append(&app);
    writeln!(writer, "first").unwrap();
    let collector = Collector::start(dir, &config(dir));
    let out = dir.join("out/out.ndjson");
    assert_eq!(wait_for_lines(&out, 1, Duration::from_secs(10)), 1);

    // The old writers stay alive, as a process that still has the replaced file open does.
    let mut old_writers = Vec::new();
    let mut expected = 1;
    for k in 0..REPLACES {
        // A backlog (4 KiB reads take a while over it), then a new file moved over the name,
        // then the old writer goes on writing to the file it still has open.
        let padding = "x".repeat(8 * 1024);
        for i in 0..OLD_LINES {
            writeln!(writer, "old {k} {i} {padding}").unwrap();
        }
        let new = logs.join("new.log.tmp");
        let mut next = append(&new);
        writeln!(next, "new {k}").unwrap();
        std::fs::rename(&new, &app).unwrap();
        for j in 0..OLD_LINES {
            writeln!(writer, "after {k} {j}").unwrap();
        }
        old_writers.push(std::mem::replace(&mut writer, next));
        expected += 2 * OLD_LINES + 1;
        assert_eq!(
            wait_for_lines(&out, expected, Duration::from_secs(20)),
            expected,
            "every line of replace {k}, the replaced file's included:\n{}",
            collector.stderr()
        );
    }
    collector.wait_until(Duration::from_secs(10), "replaced files closed", || {
        deleted_descriptors(collector.child.id()) == 0
            && collector.metric("ringtail_deleted_files_open") == 0.0
    });
    assert_eq!(
        collector.metric("ringtail_files_open"),
        1.0,
        "only the current file"
    );
    let (status, log) = collector.stop();
    assert!(status.success(), "{log}");
    let messages: Vec<String> = records(&out)
        .iter()
        .map(|r| r["message"].as_str().unwrap().to_string())
        .collect();
    for k in 0..REPLACES {
        assert!(messages.contains(&format!("new {k}")), "new {k} missing");
        for j in 0..OLD_LINES {
            assert!(
                messages.contains(&format!("after {k} {j}")),
                "after {k} {j} missing"
            );
        }
    }
    drop(old_writers);
}

/// A writer that had its file open before the collector started is named by the start-up
/// listing (eBPF); when the file is replaced before discovery's first turn handles that
/// listing, the replaced file has been read to its end and closed by then, and must not be
/// read again (CI once had the whole file twice: 203 lines of 102, when discovery's thread
/// was slow to start under load; here its first turn waits for a file the test creates).
#[test]
fn a_file_listed_at_start_up_and_replaced_before_discovery_looks_is_read_once() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let app = logs.join("app.log");
    let gate = dir.join("discovery-may-start");
    let mut writer = append(&app);
    writeln!(writer, "first").unwrap();
    let collector = Collector::start_wrapped(dir, &config(dir), |binary| {
        let mut command = Command::new(binary);
        command.env("RINGTAIL_TEST_HOLD_DISCOVERY", &gate);
        command
    });
    let out = dir.join("out/out.ndjson");
    // The start-up scan handed the file to a reader: it is read before discovery's turn.
    assert_eq!(wait_for_lines(&out, 1, Duration::from_secs(10)), 1);
    for i in 0..OLD_LINES {
        writeln!(writer, "old {i}").unwrap();
    }
    let new = logs.join("new.log.tmp");
    let mut next = append(&new);
    writeln!(next, "new").unwrap();
    std::fs::rename(&new, &app).unwrap();
    for j in 0..OLD_LINES {
        writeln!(writer, "after {j}").unwrap();
    }
    let kernel_opens = "ringtail_discovery_events_total{kind=\"kernel_open\"}";
    assert_eq!(collector.metric(kernel_opens), 0.0, "discovery is held");
    std::fs::write(&gate, "").unwrap();
    let expected = 2 * OLD_LINES + 2;
    assert_eq!(
        wait_for_lines(&out, expected, Duration::from_secs(20)),
        expected,
        "{}",
        collector.stderr()
    );
    let ebpf = collector.stderr().contains("mode=\"ebpf\"");
    collector.wait_until(Duration::from_secs(10), "the listing handled", || {
        // The listing and the new file's opening, when the kernel reports them.
        (!ebpf || collector.metric(kernel_opens) >= 2.0)
            && collector.metric("ringtail_deleted_files_open") == 0.0
            && collector.metric("ringtail_files_open") == 1.0
    });
    let (status, log) = collector.stop();
    assert!(status.success(), "{log}");
    assert_eq!(
        records(&out).len(),
        expected,
        "every line once, the replaced file's read once:\n{log}"
    );
    drop((writer, next));
}
