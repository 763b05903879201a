//! Descriptors follow active files, not every file ever matched: 100,000 small logs (1,000
//! pod directories × 100) under an open-file limit of 4,096. Every line arrives once, the
//! readers never hold more than `reader.max_open_files` (the limit less its reserve) and the
//! process never runs out of descriptors; files closed while idle are opened again by their
//! next write. Real binary, real files; the limit is set on the test process and inherited.
#![allow(clippy::unwrap_used, reason = "tests fail loudly on broken invariants")]

mod common;

use std::collections::HashSet;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use common::Collector;
use rustix::process::{Resource, Rlimit, setrlimit};

const DIRS: usize = 1_000;
const PER_DIR: usize = 100;
const LIMIT: u64 = 4_096;
/// `reader.max_open_files` by default: the limit less an eighth of it.
const MAX_OPEN: f64 = (LIMIT - LIMIT / 8) as f64;

fn config(dir: &Path) -> String {
    common::text_sink_config(dir, "", "app", "logs/*/*.log")
}

fn open_descriptors(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// Waits for `n` lines in `out`, sampling the collector's descriptors meanwhile; returns the
/// most seen open for reading and in all.
fn wait_sampling(collector: &Collector, out: &Path, n: usize) -> (f64, usize) {
    let pid = collector.child.id();
    let deadline = Instant::now() + Duration::from_secs(240);
    let (mut reading, mut all) = (0.0f64, 0);
    loop {
        reading = reading.max(collector.metric("ringtail_files_open"));
        all = all.max(open_descriptors(pid));
        if common::count_lines(out) >= n {
            return (reading, all);
        }
        assert!(
            Instant::now() < deadline,
            "{} of {n} lines: {}",
            common::count_lines(out),
            collector.stderr()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_hundred_thousand_files_under_four_thousand_descriptors() {
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(LIMIT),
            maximum: Some(LIMIT),
        },
    )
    .unwrap();
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let dir = tmp.path();
    for d in 0..DIRS {
        let pod = dir.join(format!("logs/p{d}"));
        std::fs::create_dir_all(&pod).unwrap();
        for f in 0..PER_DIR {
            std::fs::write(pod.join(format!("{f}.log")), format!("p{d} f{f} 0\n")).unwrap();
        }
    }
    let out = dir.join("out/out.ndjson");
    let collector = Collector::start(dir, &config(dir));
    let files = DIRS * PER_DIR;
    let (reading, all) = wait_sampling(&collector, &out, files);
    assert!(
        reading <= MAX_OPEN,
        "files open for reading stay within the budget: {reading}"
    );
    assert!(all <= LIMIT as usize, "{all} descriptors");
    for kind in ["file", "directory"] {
        assert_eq!(
            collector.metric(&format!(
                "ringtail_descriptors_exhausted_total{{kind=\"{kind}\"}}"
            )),
            0.0,
            "the reserve kept the process from running out ({kind})"
        );
    }
    let rss = collector.rss();
    eprintln!(
        "{files} files: at most {reading} open for reading, {all} descriptors in all; RSS {} MiB ({} bytes per file, debug build)",
        rss >> 20,
        rss / files as u64
    );

    // One more line in the first file of every pod: parked files open again.
    for d in 0..DIRS {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(dir.join(format!("logs/p{d}/0.log")))
            .unwrap();
        writeln!(f, "p{d} f0 1").unwrap();
    }
    let (reading, _) = wait_sampling(&collector, &out, files + DIRS);
    assert!(reading <= MAX_OPEN, "{reading}");
    std::thread::sleep(Duration::from_millis(300));
    let (status, log) = collector.stop();
    assert!(status.success(), "{log}");

    let text = std::fs::read_to_string(&out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let unique: HashSet<&str> = lines.iter().copied().collect();
    assert_eq!(lines.len(), files + DIRS, "every line once");
    assert_eq!(unique.len(), lines.len(), "no line twice");
    assert!(unique.contains("p999 f99 0") && unique.contains("p999 f0 1"));
}
