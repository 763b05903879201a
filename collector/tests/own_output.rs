//! ringtail never reads what it writes: a configuration whose file sink (or a rotation of it,
//! or a dead-letter file) a source would read is refused by `validate` and `run`, and at run
//! time a file that is one of its outputs by identity — here a hard link to the sink's file
//! inside a source's directory, which no configuration check can see — is not read. Real
//! binary, real files.
#![allow(clippy::unwrap_used, reason = "tests fail loudly on broken invariants")]

mod common;

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{Collector, count_lines, wait_for_lines};

fn config(dir: &Path, sink: &str) -> String {
    format!(
        r#"data_dir: {dir}/data
api:
  listen: 127.0.0.1:{{port}}
sources:
  - name: host
    paths: ["{dir}/logs/*.log"]
sinks:
  - name: out
    type: file
    path: {sink}
    encoding: text
    sync_interval: 50ms
"#,
        dir = dir.display()
    )
}

fn append(path: &Path, from: usize, to: usize) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    for i in from..to {
        writeln!(f, "line {i}").unwrap();
    }
}

#[test]
fn a_sink_file_a_source_matches_is_refused_by_validate_and_run() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::create_dir_all(dir.join("logs")).unwrap();
    let path = dir.join("ringtail.yaml");
    std::fs::write(
        &path,
        config(dir, &format!("{}/logs/ringtail.log", dir.display())).replace("{port}", "0"),
    )
    .unwrap();
    for command in ["validate", "run"] {
        let output = Command::new(common::binary())
            .args([command, "--config"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(!output.status.success(), "{command} refuses it");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("sinks[0].path")
                && stderr.contains("ringtail would read what it writes"),
            "{command}: {stderr}"
        );
    }
}

#[test]
fn a_file_that_is_one_of_its_outputs_is_never_read() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let out = dir.join("out/out.log");
    let collector = Collector::start(dir, &config(dir, &out.display().to_string()));
    append(&logs.join("app.log"), 0, 10);
    assert_eq!(wait_for_lines(&out, 10, Duration::from_secs(10)), 10);
    // The sink's file shows up under a source's glob, by a name no configuration shows.
    std::fs::hard_link(&out, logs.join("echo.log")).unwrap();
    append(&logs.join("app.log"), 10, 20);
    assert_eq!(wait_for_lines(&out, 20, Duration::from_secs(10)), 20);
    collector.wait_until(Duration::from_secs(10), "the refusal counted", || {
        collector.metric("ringtail_own_files_refused_total{source=\"host\"}") >= 1.0
    });
    std::thread::sleep(Duration::from_secs(1));
    let (status, log) = collector.stop();
    assert!(status.success(), "{log}");
    assert_eq!(count_lines(&out), 20, "nothing read back:\n{log}");
    assert!(log.contains("one of ringtail's own outputs"), "{log}");
}
