//! Configuration reload while lines flow: a rewritten file, an invalid file, SIGHUP, and a
//! ConfigMap-style volume (the file is a link through `..data`, which is swapped) — every
//! line is delivered exactly once, new settings apply to later records, and an invalid
//! configuration is rejected while the old one keeps running.
#![allow(clippy::unwrap_used, reason = "tests fail loudly on broken invariants")]

mod common;

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{Collector, Delivered, records};

const WAIT: Duration = Duration::from_secs(30);

fn config(dir: &Path, port: &str, version: &str, extra: &str) -> String {
    format!(
        r#"data_dir: {dir}/data
api:
  listen: 127.0.0.1:{port}
sources:
  - name: app
    paths: ["{dir}/logs/*.log"]
    tags: {{version: "{version}"}}
{extra}
sinks:
  - name: out
    type: file
    path: {dir}/out/out.ndjson
    sync_interval: 50ms
"#,
        dir = dir.display()
    )
}

/// Replaces `path` atomically (write, then rename), as editors and ConfigMaps do.
fn replace(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn reloads(collector: &Collector, result: &str) -> f64 {
    collector.metric(&format!(
        "ringtail_config_reloads_total{{result=\"{result}\"}}"
    ))
}

fn wait_reloads(collector: &Collector, result: &str, n: f64) {
    collector.wait_until(WAIT, &format!("{n} reloads {result}"), || {
        reloads(collector, result) >= n
    });
}

#[test]
fn reloads_apply_without_losing_or_duplicating_lines_and_bad_ones_are_rejected() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::create_dir_all(dir.join("logs")).unwrap();
    std::fs::create_dir_all(dir.join("out")).unwrap();
    let collector = Collector::start(dir, &config(dir, "{port}", "1", ""));
    let port = &collector.port.to_string();
    let file = dir.join("ringtail.yaml");

    // Lines flow the whole time, with a rotation now and then, until told to stop.
    let done = Arc::new(AtomicBool::new(false));
    let writer = {
        let logs = dir.join("logs");
        let done = Arc::clone(&done);
        std::thread::spawn(move || {
            let mut out = std::fs::File::create(logs.join("app.log")).unwrap();
            let mut n = 0u64;
            while !done.load(Ordering::Acquire) {
                writeln!(out, "app {n} {}", "x".repeat(100)).unwrap();
                n += 1;
                if n.is_multiple_of(15_000) {
                    std::fs::rename(logs.join("app.log"), logs.join(format!("app.{n}"))).unwrap();
                    out = std::fs::File::create(logs.join("app.log")).unwrap();
                }
                if n.is_multiple_of(200) {
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
            n
        })
    };

    // 1. The file is rewritten: applied.
    std::thread::sleep(Duration::from_millis(200));
    replace(&file, &config(dir, port, "2", ""));
    wait_reloads(&collector, "applied", 1.0);

    // 2. An invalid file: rejected, the running configuration stays (and keeps delivering).
    replace(
        &file,
        &config(dir, port, "bad", "    multiline: {start: '(unclosed'}"),
    );
    wait_reloads(&collector, "rejected", 1.0);
    assert!(collector.stderr().contains("configuration not reloaded"));
    assert!(collector.stderr().contains("invalid regex"));
    let before = records(&dir.join("out/out.ndjson")).len();
    collector.wait_until(WAIT, "delivery after the rejected reload", || {
        records(&dir.join("out/out.ndjson")).len() > before
    });
    // SIGHUP with the same (invalid) contents: nothing to do.
    rustix::process::kill_process(
        rustix::process::Pid::from_child(&collector.child),
        rustix::process::Signal::HUP,
    )
    .unwrap();
    wait_reloads(&collector, "unchanged", 1.0);
    assert_eq!(reloads(&collector, "applied"), 1.0);

    // 3. ConfigMap-style: the file becomes a link through `..data`, which is then swapped.
    let v3 = dir.join("..v3");
    std::fs::create_dir_all(&v3).unwrap();
    std::fs::write(v3.join("ringtail.yaml"), config(dir, port, "3", "")).unwrap();
    std::os::unix::fs::symlink("..v3", dir.join("..data")).unwrap();
    std::os::unix::fs::symlink("..data/ringtail.yaml", dir.join("link.tmp")).unwrap();
    std::fs::rename(dir.join("link.tmp"), &file).unwrap();
    wait_reloads(&collector, "applied", 2.0);
    let v4 = dir.join("..v4");
    std::fs::create_dir_all(&v4).unwrap();
    std::fs::write(v4.join("ringtail.yaml"), config(dir, port, "4", "")).unwrap();
    std::os::unix::fs::symlink("..v4", dir.join("..data.tmp")).unwrap();
    std::fs::rename(dir.join("..data.tmp"), dir.join("..data")).unwrap();
    wait_reloads(&collector, "applied", 3.0);

    std::thread::sleep(Duration::from_millis(300));
    done.store(true, Ordering::Release);
    let lines = writer.join().unwrap();
    collector.wait_until(WAIT, "every line", || {
        let d = Delivered::read(&dir.join("out"));
        d.streams.get("app").map_or(0, Vec::len) as u64 >= lines
    });
    std::thread::sleep(Duration::from_millis(300));
    let (status, log) = collector.stop();
    assert!(status.success(), "{log}");

    let delivered = Delivered::read(&dir.join("out"));
    let expected = [("app".to_string(), lines)].into();
    assert_eq!(delivered.missing(&expected), vec![], "no line lost");
    assert_eq!(delivered.duplicates(), 0, "no line twice");
    assert_eq!(delivered.fragments, 0);
    // Each configuration delivered records, in order; the last one the last records.
    let versions: Vec<String> = records(&dir.join("out/out.ndjson"))
        .iter()
        .map(|r| r["tags"]["version"].as_str().unwrap().to_string())
        .collect();
    let mut seen: Vec<&str> = versions.iter().map(String::as_str).collect();
    seen.dedup();
    assert_eq!(seen, vec!["1", "2", "3", "4"], "{log}");
}
