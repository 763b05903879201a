//! The inotify watch limit reached with eBPF discovery: the directories inotify refuses are
//! still registered with the kernel, which reports every file opened for writing in them —
//! 100 new pod directories with about 30 watches to spare, and every pod's log is reported
//! and read. The limit is the machine's (`fs.inotify.max_user_watches`, for root), lowered to
//! what root holds now plus 30 for this test only and restored after; eBPF needs the initial
//! user namespace, so the test cannot use a namespace of its own as `watch_limit.rs` does.
#![allow(clippy::unwrap_used, reason = "tests fail loudly on broken invariants")]

mod common;

use std::path::Path;
use std::time::Duration;

use common::{Collector, append_lines, is_root, wait_for_lines};

const SPARE: usize = 30;
const PODS: u64 = 100;
const SYSCTL: &str = "/proc/sys/fs/inotify/max_user_watches";

fn config(dir: &Path) -> String {
    common::text_sink_config(dir, "discovery: ebpf\n", "pods", "logs/*/*.log")
}

/// inotify watches held now by root's processes.
fn root_watches() -> usize {
    let mut watches = 0;
    for proc in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(status) = std::fs::read_to_string(proc.path().join("status")) else {
            continue;
        };
        let root = status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|u| u.split_whitespace().nth(1))
            == Some("0");
        if !root {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(proc.path().join("fdinfo")) else {
            continue;
        };
        for fd in fds.flatten() {
            if let Ok(info) = std::fs::read_to_string(fd.path()) {
                watches += info
                    .lines()
                    .filter(|l| l.starts_with("inotify wd:"))
                    .count();
            }
        }
    }
    watches
}

/// Sets the machine's watch limit while it lives, and puts the old one back.
struct Limit(String);

impl Limit {
    fn set(limit: usize) -> Limit {
        let old = std::fs::read_to_string(SYSCTL).unwrap();
        std::fs::write(SYSCTL, limit.to_string()).unwrap();
        Limit(old)
    }
}

impl Drop for Limit {
    fn drop(&mut self) {
        let _ = std::fs::write(SYSCTL, self.0.trim());
    }
}

#[test]
fn with_ebpf_the_kernel_reports_files_in_directories_inotify_refused() {
    if !is_root() {
        eprintln!("skipped: needs root (eBPF, the sysctl)");
        return;
    }
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let dir = tmp.path();
    std::fs::create_dir_all(dir.join("logs")).unwrap();
    let out = dir.join("out/out.ndjson");
    let limit = Limit::set(root_watches() + SPARE);
    let collector = Collector::start(dir, &config(dir));

    for p in 0..PODS {
        std::fs::create_dir_all(dir.join(format!("logs/pod{p:03}"))).unwrap();
    }
    std::thread::sleep(Duration::from_millis(300));
    for p in 0..PODS {
        let pod = dir.join(format!("logs/pod{p:03}"));
        append_lines(&pod.join("0.log"), &format!("pod{p}"), 0..10, 0);
    }
    let total = (PODS * 10) as usize;
    assert_eq!(
        wait_for_lines(&out, total, Duration::from_secs(30)),
        total,
        "{}",
        collector.stderr()
    );
    assert!(collector.metric("ringtail_directories_unwatched") >= 1.0);
    let reported = collector.metric("ringtail_discovery_events_total{kind=\"kernel_open\"}");
    assert!(
        reported >= PODS as f64,
        "the kernel reported the logs opened in every pod directory, watched or not: {reported}"
    );
    let (status, log) = collector.stop();
    drop(limit);
    assert!(status.success(), "{log}");
    assert_eq!(common::count_lines(&out), total, "every line once");
}
