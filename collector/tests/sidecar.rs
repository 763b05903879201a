//! Sidecar mode with the real binary: ringtail beside an app in its pod, sharing the app's
//! log directory. The pod is being stopped: ringtail gets SIGTERM while the app still writes
//! its last lines, and no later run will read them. With `sidecar`, it reads until every file
//! is delivered and quiet, then exits 0 with every line delivered; as a DaemonSet it would
//! stop at once and leave them to its next start.
#![allow(clippy::unwrap_used, reason = "tests fail loudly on broken invariants")]

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{Collector, Delivered, append_lines};

fn config(dir: &Path, sidecar: &str) -> String {
    format!(
        r#"data_dir: {dir}/data
discovery: inotify
api:
  listen: 127.0.0.1:{{port}}
sources:
  - name: app
    paths: ["{dir}/shared/*.log"]
sinks:
  - name: out
    type: file
    path: {dir}/out/out.ndjson
{sidecar}"#,
        dir = dir.display()
    )
}

/// The app writes 20,000 lines into two files; ringtail gets SIGTERM when 15,000 are written
/// and the app goes on for another second (its own shutdown: flushing buffers, last words).
/// Returns what was delivered, how ringtail exited, and its log.
fn stopped_while_the_app_writes(sidecar: &str) -> (Delivered, bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let shared = dir.path().join("shared");
    std::fs::create_dir_all(&shared).unwrap();
    let mut collector = Collector::start(dir.path(), &config(dir.path(), sidecar));
    let files = [shared.join("app.log"), shared.join("audit.log")];
    for chunk in 0..15u64 {
        for (f, path) in files.iter().enumerate() {
            append_lines(path, &format!("s{f}"), chunk * 500..(chunk + 1) * 500, 40);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(collector.child.id() as i32).unwrap(),
        rustix::process::Signal::TERM,
    )
    .unwrap();
    let started = Instant::now();
    for chunk in 15..20u64 {
        for (f, path) in files.iter().enumerate() {
            append_lines(path, &format!("s{f}"), chunk * 500..(chunk + 1) * 500, 40);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let status = collector.wait_exit(Duration::from_secs(60));
    println!("stopped {:?} after SIGTERM", started.elapsed());
    let log = collector.stderr();
    let delivered = Delivered::read(&dir.path().join("out"));
    (delivered, status.success(), log)
}

#[test]
fn a_sidecar_delivers_what_the_app_wrote_after_sigterm_and_exits_0() {
    let (delivered, success, log) =
        stopped_while_the_app_writes("sidecar:\n  drain_quiet: 1s\n  drain_max: 20s\n");
    assert!(success, "{log}");
    let expected = BTreeMap::from([("s0".to_string(), 10_000), ("s1".to_string(), 10_000)]);
    let missing = delivered.missing(&expected);
    assert!(
        missing.is_empty(),
        "{} lines lost, e.g. {:?}\n{log}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    assert_eq!(delivered.duplicates(), 0);
    assert!(
        log.contains("every file is delivered to its end and none has grown since"),
        "{log}"
    );
}

/// Without `sidecar`, a SIGTERM stops reading at once (a DaemonSet's next start resumes from
/// the checkpoints): the lines the app wrote after it are not delivered by this run — what
/// sidecar mode is for.
#[test]
fn without_sidecar_mode_the_last_lines_wait_for_the_next_start() {
    let (delivered, success, log) = stopped_while_the_app_writes("");
    assert!(success, "{log}");
    let expected = BTreeMap::from([("s0".to_string(), 10_000), ("s1".to_string(), 10_000)]);
    assert!(!delivered.missing(&expected).is_empty(), "{log}");
}
