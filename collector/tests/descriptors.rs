//! Out of descriptors: with a hard open-file limit of 256 and 400 new files, the files that
//! cannot be opened wait and are retried — nothing is lost. `/readyz` names the condition
//! while they wait, the API keeps answering, and once descriptors free up (the first files,
//! read to their ends, are deleted, as a node's pods go away) every line arrives and `/readyz`
//! is ready again. Real binary, its limit lowered with `prlimit(2)` while it runs.
#![allow(clippy::unwrap_used, reason = "tests fail loudly on broken invariants")]

mod common;

use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{Collector, append_lines};
use rustix::process::{Pid, Resource, Rlimit, prlimit};

const FILES: u64 = 400;
const LINES: u64 = 5;

fn config(dir: &Path) -> String {
    common::text_sink_config(dir, "", "app", "logs/*.log")
}

/// The delivered lines (`f<file> <n>`).
fn delivered(out: &Path) -> HashSet<String> {
    std::fs::read_to_string(out)
        .unwrap_or_default()
        .lines()
        .map(|l| l.trim_end().to_string())
        .collect()
}

fn line(file: u64, n: u64) -> String {
    format!("f{file} {n:08}")
}

#[test]
fn files_that_cannot_get_a_descriptor_wait_and_are_read_once_descriptors_free_up() {
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let dir = tmp.path();
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let out = dir.join("out/out.ndjson");
    let collector = Collector::start(dir, &config(dir));
    let pid = Pid::from_raw(collector.child.id() as i32).unwrap();
    let limit = Rlimit {
        current: Some(256),
        maximum: Some(256),
    };
    prlimit(Some(pid), Resource::Nofile, limit).unwrap();

    for f in 0..FILES {
        append_lines(
            &logs.join(format!("{f:03}.log")),
            &format!("f{f}"),
            0..LINES,
            0,
        );
    }
    // /readyz names the condition while files wait (asked often: the API answers through
    // its spare descriptor, and the wait can be short).
    collector.wait_until(Duration::from_secs(20), "/readyz names it", || {
        collector
            .get("/readyz")
            .is_some_and(|b| b.contains("descriptors") && b.contains("not ready"))
    });
    collector.wait_until(Duration::from_secs(5), "counted", || {
        collector.metric("ringtail_descriptors_exhausted_total{kind=\"file\"}") > 0.0
    });
    assert!(
        collector.get("/healthz").is_some(),
        "the API answers while descriptors are exhausted"
    );

    // Pods go away: files read to their ends are deleted, their descriptors freed, and the
    // files that waited are opened.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut deleted = HashSet::new();
    loop {
        let got = delivered(&out);
        if (0..FILES).all(|f| (0..LINES).all(|n| got.contains(&line(f, n)))) {
            break;
        }
        for f in 0..FILES {
            if !deleted.contains(&f) && (0..LINES).all(|n| got.contains(&line(f, n))) {
                std::fs::remove_file(logs.join(format!("{f:03}.log"))).unwrap();
                deleted.insert(f);
            }
        }
        assert!(
            Instant::now() < deadline,
            "{} of {} lines delivered; {}",
            got.len(),
            FILES * LINES,
            collector.stderr()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    collector.wait_until(Duration::from_secs(10), "ready again", || {
        collector
            .get("/readyz")
            .is_some_and(|b| b.contains(r#""status":"ready""#))
    });
    // (/metrics is rendered at most every 200 ms.)
    collector.wait_until(Duration::from_secs(2), "nothing waits", || {
        collector.metric("ringtail_waiting_for_descriptors") == 0.0
    });
    let (status, log) = collector.stop();
    assert!(status.success(), "{log}");
    assert!(log.contains("out of descriptors"), "{log}");
    assert_eq!(
        common::count_lines(&out),
        (FILES * LINES) as usize,
        "every line once"
    );
}
