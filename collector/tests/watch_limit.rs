//! The inotify watch limit reached: 100 new pod directories while only about 30 watches are
//! allowed. The directories inotify refuses are counted, shown in `/readyz` and the metrics,
//! and still found — by bounded rescans of just those directories (inotify-only discovery
//! here) — so every line of every pod arrives, also lines appended later. Real binary, run in
//! a user namespace of its own whose `max_inotify_watches` is lowered, so nothing else on the
//! machine is limited.
#![allow(clippy::unwrap_used, reason = "tests fail loudly on broken invariants")]

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{Collector, append_lines, is_root, wait_for_lines};

const WATCHES: u32 = 30;
const PODS: u64 = 100;

fn config(dir: &Path) -> String {
    common::text_sink_config(dir, "discovery: inotify\n", "pods", "logs/*/*.log")
}

/// The binary in a new user namespace (root mapped to root) with at most `WATCHES` inotify
/// watches.
fn limited(binary: &str) -> Command {
    let mut command = Command::new("unshare");
    command.args([
        "--user",
        "--map-root-user",
        "sh",
        "-c",
        &format!("echo {WATCHES} > /proc/sys/user/max_inotify_watches && exec \"$0\" \"$@\""),
        binary,
    ]);
    command
}

#[test]
fn directories_inotify_refuses_are_rescanned_and_reported() {
    if !is_root() {
        eprintln!("skipped: needs root to map root into a user namespace");
        return;
    }
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let dir = tmp.path();
    std::fs::create_dir_all(dir.join("logs")).unwrap();
    let out = dir.join("out/out.ndjson");
    let collector = Collector::start_wrapped(dir, &config(dir), limited);

    // The pods' directories first, as kubelet makes them; their logs a moment later, once
    // discovery has looked into the new directories.
    for p in 0..PODS {
        std::fs::create_dir_all(dir.join(format!("logs/pod{p:03}"))).unwrap();
    }
    std::thread::sleep(Duration::from_millis(300));
    for p in 0..PODS {
        let pod = dir.join(format!("logs/pod{p:03}"));
        append_lines(&pod.join("0.log"), &format!("pod{p}"), 0..10, 0);
    }
    let mut total = (PODS * 10) as usize;
    assert_eq!(
        wait_for_lines(&out, total, Duration::from_secs(30)),
        total,
        "every pod's lines, watched or not: {}",
        collector.stderr()
    );
    assert!(collector.metric("ringtail_watch_failures_total") >= 1.0);
    assert!(collector.metric("ringtail_directories_unwatched") >= 1.0);
    let ready = collector.get("/readyz").unwrap();
    assert!(
        ready.contains("not ready") && ready.contains("watches"),
        "{ready}"
    );

    // Later lines in every pod, watched or not, arrive too (within the rescans' backoff).
    for p in 0..PODS {
        let pod = dir.join(format!("logs/pod{p:03}"));
        append_lines(&pod.join("0.log"), &format!("pod{p}"), 10..20, 0);
    }
    total *= 2;
    assert_eq!(
        wait_for_lines(&out, total, Duration::from_secs(30)),
        total,
        "{}",
        collector.stderr()
    );

    // Every pod's log rotated: renamed, written once more by its old writer, a new file in
    // its place. Where no event tells, the rescan finds the path naming another file: the
    // new one is read, and the old one to its end.
    for p in 0..PODS {
        let pod = dir.join(format!("logs/pod{p:03}"));
        std::fs::rename(pod.join("0.log"), pod.join("0.log.1")).unwrap();
        append_lines(&pod.join("0.log.1"), &format!("pod{p}"), 20..22, 0);
        append_lines(&pod.join("0.log"), &format!("new{p}"), 0..3, 0);
    }
    total += (PODS * 5) as usize;
    assert_eq!(
        wait_for_lines(&out, total, Duration::from_secs(30)),
        total,
        "{}",
        collector.stderr()
    );

    // A last line in every pod's new log, which is deleted at once (the pod goes away):
    // the rescan finds it gone, and its reader reads it to its end.
    for p in 0..PODS {
        let log = dir.join(format!("logs/pod{p:03}/0.log"));
        append_lines(&log, &format!("new{p}"), 3..4, 0);
        std::fs::remove_file(&log).unwrap();
    }
    total += PODS as usize;
    assert_eq!(
        wait_for_lines(&out, total, Duration::from_secs(30)),
        total,
        "{}",
        collector.stderr()
    );
    std::thread::sleep(Duration::from_millis(300));
    let (status, log) = collector.stop();
    assert!(status.success(), "{log}");
    assert!(log.contains("cannot watch directory"), "{log}");
    assert_eq!(common::count_lines(&out), total, "every line once");
}
