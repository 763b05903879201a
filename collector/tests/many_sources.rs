//! Start-up is linear in the number of sources: 20,000 sources (one directory each, a tenth
//! of them present with a log in it, the rest not created yet) start, deliver every line, stop
//! and start again from their checkpoints within a bound that a quadratic start-up (225 s for
//! 20,000 sources before) cannot meet. Real binary (the debug build the tests use, which
//! spends most of those seconds parsing the configuration), real files.
#![allow(clippy::unwrap_used, reason = "tests fail loudly on broken invariants")]

mod common;

use std::fmt::Write as _;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{Collector, append_lines, wait_for_lines};

const SOURCES: usize = 20_000;
const PRESENT_EVERY: usize = 10;
/// Generous: the debug build takes about 6 s on a 2-core VM; a quadratic start-up takes
/// minutes.
const BOUND: Duration = Duration::from_secs(60);

fn config(dir: &Path) -> String {
    let mut text = format!(
        "data_dir: {dir}/data\napi:\n  listen: 127.0.0.1:{{port}}\nsources:\n",
        dir = dir.display()
    );
    for i in 0..SOURCES {
        writeln!(
            text,
            "  - name: s{i}\n    paths: [\"{dir}/logs/d{i}/*.log\"]",
            dir = dir.display()
        )
        .unwrap();
    }
    write!(
        text,
        "sinks:\n  - name: out\n    type: file\n    path: {dir}/out/out.ndjson\n    encoding: text\n    sync_interval: 50ms\n",
        dir = dir.display()
    )
    .unwrap();
    text
}

#[test]
fn twenty_thousand_sources_start_and_restart_within_a_linear_bound() {
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let dir = tmp.path();
    let present: Vec<usize> = (0..SOURCES).step_by(PRESENT_EVERY).collect();
    for &i in &present {
        let d = dir.join(format!("logs/d{i}"));
        std::fs::create_dir_all(&d).unwrap();
        append_lines(&d.join("a.log"), &format!("s{i}"), 0..1, 0);
    }
    let out = dir.join("out/out.ndjson");
    let config = config(dir);

    let started = Instant::now();
    let collector = Collector::start_within(dir, &config, Stdio::null, BOUND);
    let n = present.len();
    assert_eq!(
        wait_for_lines(&out, n, BOUND),
        n,
        "every file read within {BOUND:?}: {}",
        collector.stderr()
    );
    let first = started.elapsed();
    assert!(first < BOUND, "start-up took {first:?}");
    std::thread::sleep(Duration::from_millis(300));
    let (status, log) = collector.stop();
    assert!(status.success(), "{log}");

    // Restart: every file resumes from its checkpoint; one new line each.
    for &i in &present {
        append_lines(
            &dir.join(format!("logs/d{i}/a.log")),
            &format!("s{i}"),
            1..2,
            0,
        );
    }
    let started = Instant::now();
    let collector = Collector::start_within(dir, &config, Stdio::null, BOUND);
    assert_eq!(
        wait_for_lines(&out, 2 * n, BOUND),
        2 * n,
        "every new line read within {BOUND:?}, nothing twice: {}",
        collector.stderr()
    );
    let second = started.elapsed();
    assert!(second < BOUND, "restart took {second:?}");
    std::thread::sleep(Duration::from_millis(300));
    let (status, log) = collector.stop();
    assert!(status.success(), "{log}");
    assert_eq!(
        common::count_lines(&out),
        2 * n,
        "nothing read twice after the restart"
    );
    eprintln!("{SOURCES} sources: first start {first:?}, restart {second:?}");
}
