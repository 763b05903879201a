//! Pipelines from a directory (`--config-dir`): three pipeline files, one invalid — the two
//! valid ones run and the error names the bad file; `validate --config-dir` reports it; a
//! pipeline file edited while lines flow is applied with no line lost or repeated.
#![allow(clippy::unwrap_used, reason = "tests fail loudly on broken invariants")]

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{Delivered, binary, free_port, records};

const WAIT: Duration = Duration::from_secs(30);

fn pipeline(dir: &Path, name: &str, tag: &str) -> String {
    format!(
        r#"sources:
  - name: app
    paths: ["{d}/logs/{name}/*.log"]
    tags: {{version: "{tag}"}}
    processors:
      - {{type: add_fields, fields: {{pipeline: {name}}}}}
sinks:
  - name: out
    type: file
    path: {d}/out/{name}/out.ndjson
    sync_interval: 50ms
"#,
        d = dir.display()
    )
}

fn replace(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn metric(port: u16, series: &str) -> f64 {
    use std::io::Read;
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return 0.0;
    };
    let _ = write!(stream, "GET /metrics HTTP/1.0\r\n\r\n");
    let mut text = String::new();
    let _ = stream.read_to_string(&mut text);
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|r| r.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

fn wait(what: &str, stderr: &Path, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "gave up waiting for {what}:\n{}",
            std::fs::read_to_string(stderr).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn pipelines_from_a_directory_run_beside_a_bad_one_and_reload_without_loss() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let conf = dir.join("conf.d");
    for sub in ["conf.d", "logs/a", "logs/b", "out/a", "out/b"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    let port = free_port();
    let settings = dir.join("settings.yaml");
    std::fs::write(
        &settings,
        format!(
            "data_dir: {}/data\napi:\n  listen: 127.0.0.1:{port}\n",
            dir.display()
        ),
    )
    .unwrap();
    std::fs::write(conf.join("a.yaml"), pipeline(dir, "a", "1")).unwrap();
    std::fs::write(conf.join("b.yaml"), pipeline(dir, "b", "1")).unwrap();
    std::fs::write(
        conf.join("broken.yaml"),
        "sources:\n  - name: x\n    paths: [\"/logs/*.log\"]\n    processors:\n      - {type: nope}\nsinks:\n  - {name: o, type: stdout}\n",
    )
    .unwrap();

    // validate names the bad file and fails; the good ones are counted.
    let out = Command::new(binary())
        .args(["validate", "--config"])
        .arg(&settings)
        .arg("--config-dir")
        .arg(&conf)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("broken.yaml") && stderr.contains("unknown processor `nope`"),
        "{stderr}"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("2 sources"));

    let log = dir.join("ringtail.stderr");
    let mut child = Command::new(binary())
        .args(["run", "--config"])
        .arg(&settings)
        .arg("--config-dir")
        .arg(&conf)
        .env("RINGTAIL_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    wait("ringtail to start", &log, || {
        metric(port, "ringtail_files_open") >= 0.0
            && std::fs::read_to_string(&log)
                .unwrap_or_default()
                .contains("ringtail is running")
    });
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("broken.yaml") && text.contains("pipeline file not used"),
        "{text}"
    );

    // Lines flow into both pipelines while `a` is edited.
    let done = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = ["a", "b"]
        .into_iter()
        .map(|name| {
            let path = dir.join("logs").join(name).join("app.log");
            let done = Arc::clone(&done);
            std::thread::spawn(move || {
                let mut f = std::fs::File::create(path).unwrap();
                let mut n = 0u64;
                while !done.load(Ordering::Acquire) {
                    writeln!(f, "{name} {n} {}", "x".repeat(80)).unwrap();
                    n += 1;
                    if n.is_multiple_of(200) {
                        std::thread::sleep(Duration::from_millis(3));
                    }
                }
                n
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    replace(&conf.join("a.yaml"), &pipeline(dir, "a", "2"));
    wait("the edit to be applied", &log, || {
        metric(port, "ringtail_config_reloads_total{result=\"applied\"}") >= 1.0
    });
    // A new pipeline file that is bad: named, and nothing else changes.
    replace(&conf.join("also-broken.yaml"), "sources: [");
    wait("the bad file to be rejected", &log, || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("also-broken.yaml")
    });
    std::thread::sleep(Duration::from_millis(300));
    done.store(true, Ordering::Release);
    let counts: Vec<u64> = writers.into_iter().map(|w| w.join().unwrap()).collect();
    for (name, count) in ["a", "b"].iter().zip(&counts) {
        let out = dir.join("out").join(name);
        wait(&format!("every line of {name}"), &log, || {
            Delivered::read(&out).streams.get(*name).map_or(0, Vec::len) as u64 >= *count
        });
    }
    std::thread::sleep(Duration::from_millis(200));
    rustix::process::kill_process(
        rustix::process::Pid::from_child(&child),
        rustix::process::Signal::TERM,
    )
    .unwrap();
    assert!(child.wait().unwrap().success());

    for (name, count) in ["a", "b"].iter().zip(&counts) {
        let out = dir.join("out").join(name);
        let delivered = Delivered::read(&out);
        let expected = [(name.to_string(), *count)].into();
        assert_eq!(delivered.missing(&expected), vec![], "{name}: nothing lost");
        assert_eq!(delivered.duplicates(), 0, "{name}: nothing twice");
        let all = records(&out.join("out.ndjson"));
        assert!(all.iter().all(|r| r["fields"]["pipeline"] == *name));
        assert!(all.iter().all(|r| r["source"] == format!("{name}/app")));
        let mut versions: Vec<&str> = all
            .iter()
            .map(|r| r["tags"]["version"].as_str().unwrap())
            .collect();
        versions.dedup();
        let expect: &[&str] = if *name == "a" { &["1", "2"] } else { &["1"] };
        assert_eq!(versions, expect, "{name}");
    }
}
