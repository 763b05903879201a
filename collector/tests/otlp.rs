//! The OTLP sink against real OTLP/HTTP receivers started per test (PyPI `oteltap` and
//! `rotel`, installed by `cargo xtask setup`): every line exactly once with the Kubernetes
//! resource attributes of its file, nothing lost while the receiver is down for 15 s or
//! answers 429/503, refusals dead-lettered with their reason, and secrets in headers that
//! reach the receiver but never the logs, `/metrics` or `validate`.

#![allow(clippy::unwrap_used, reason = "tests fail loudly on broken invariants")]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

mod common;

use common::Collector;
use common::otlp::{FaultProxy, Oteltap, Rotel, read_tap, wait_tap};

/// The kubelet's file of container `container` in pod `pod` of namespace `ns`.
fn kubelet_file(root: &Path, ns: &str, pod: &str, container: &str) -> PathBuf {
    let dir = root.join(format!("var/log/pods/{ns}_{pod}_uid-{pod}/{container}"));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("0.log")
}

/// Appends CRI lines `<tag> <n> <padding>` numbered `numbers` to `path`; every fifth goes to
/// stderr.
fn append_cri(path: &Path, tag: &str, numbers: std::ops::Range<u64>) {
    let mut text = String::new();
    for n in numbers {
        let stream = if n.is_multiple_of(5) {
            "stderr"
        } else {
            "stdout"
        };
        text.push_str(&format!(
            "2026-12-06T10:00:00.{n:09}Z {stream} F {tag} {n:08} {}\n",
            "k".repeat(40)
        ));
    }
    common::append(path, &text);
}

/// A configuration reading the kubelet layout under `dir/var/log/pods` as CRI into an OTLP
/// sink at `port`; `extra` is added to the sink's block.
fn config(dir: &Path, port: u16, extra: &str) -> String {
    format!(
        r#"
data_dir: {dir}/data
api:
  listen: "127.0.0.1:{{port}}"
checkpoints:
  interval: 200ms
sources:
  - name: pods
    paths: ["{dir}/var/log/pods/*/*/*.log"]
    format: cri
sinks:
  - name: otel
    type: otlp
    endpoint: http://127.0.0.1:{port}
{extra}
"#,
        dir = dir.display()
    )
}

fn start(dir: &Path, config: &str, env: &[(&str, &str)]) -> Collector {
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Collector::start_wrapped(dir, config, move |binary| {
        let mut command = Command::new(binary);
        command.env("NODE_NAME", "node-7");
        for (k, v) in &env {
            command.env(k, v);
        }
        command
    })
}

/// Each line's `<tag> <n>` must arrive exactly once: returns (missing, duplicated).
fn check_once(bodies: &[String], expected: &BTreeMap<String, u64>) -> (Vec<String>, usize) {
    let mut seen: BTreeMap<String, BTreeSet<u64>> = BTreeMap::new();
    let mut duplicates = 0;
    for body in bodies {
        let mut words = body.split(' ');
        let (Some(tag), Some(n)) = (words.next(), words.next().and_then(|n| n.parse().ok())) else {
            panic!("unexpected body {body:?}");
        };
        if !seen.entry(tag.to_string()).or_default().insert(n) {
            duplicates += 1;
        }
    }
    let mut missing = Vec::new();
    for (tag, &count) in expected {
        let got = seen.get(tag).map_or(0, BTreeSet::len) as u64;
        if got != count {
            missing.push(format!("{tag}: {got} of {count}"));
        }
    }
    (missing, duplicates)
}

#[test]
fn twenty_kubelet_files_arrive_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let tap = Oteltap::start(&dir.path().join("tap.out"));
    let files: Vec<(String, PathBuf)> = (0..20)
        .map(|i| {
            let tag = format!("f{i:02}");
            let path = kubelet_file(dir.path(), "shop", &format!("web-{i}"), "app");
            (tag, path)
        })
        .collect();
    // Half before start-up (read from a backlog), half while running.
    for (tag, path) in &files {
        append_cri(path, tag, 0..10_000);
    }
    let collector = start(
        dir.path(),
        &config(dir.path(), tap.port, "    compression: none"),
        &[],
    );
    for (tag, path) in &files {
        append_cri(path, tag, 10_000..20_000);
    }
    let total = 20 * 20_000;
    let got = wait_tap(&dir.path().join("tap.out"), total, Duration::from_secs(120));
    assert!(got >= total, "{got} of {total} records arrived");
    // Settle: nothing more may come.
    std::thread::sleep(Duration::from_secs(1));
    let records = tap.records();
    let bodies: Vec<String> = records.iter().map(|r| r.body.clone()).collect();
    let expected = files.iter().map(|(t, _)| (t.clone(), 20_000)).collect();
    let (missing, duplicates) = check_once(&bodies, &expected);
    assert!(missing.is_empty(), "lost: {missing:?}");
    assert_eq!(duplicates, 0, "duplicates");
    // Records carry their stream, offset and time.
    let r = records
        .iter()
        .find(|r| r.body.starts_with("f03 00000005 "))
        .unwrap();
    assert_eq!(r.attributes["log.iostream"], "stderr");
    assert_eq!(
        r.time, 1_796_551_200_000_000_005,
        "time from the CRI timestamp"
    );
    assert!(r.attributes.contains_key("log.file.offset"));
    assert!(collector.metric("ringtail_http_requests_total{sink=\"otel\",status=\"200\"}") >= 1.0);
    let (status, stderr) = collector.stop();
    assert!(status.success(), "{stderr}");
}

#[test]
fn resources_carry_the_kubernetes_attributes_of_each_file() {
    let dir = tempfile::tempdir().unwrap();
    let rotel = Rotel::start(&dir.path().join("rotel.out"));
    let a = kubelet_file(dir.path(), "shop", "web-1", "nginx");
    let b = kubelet_file(dir.path(), "billing", "api-2", "server");
    append_cri(&a, "a", 0..300);
    append_cri(&b, "b", 0..300);
    // gzip, the default: rotel takes it.
    let collector = start(dir.path(), &config(dir.path(), rotel.port, ""), &[]);
    assert_eq!(rotel.wait_records(600, Duration::from_secs(60)), 600);
    let resources = rotel.resources();
    let mut bodies = Vec::new();
    for resource in &resources {
        let attrs = &resource.attributes;
        let tag = &resource.bodies[0][..1];
        // One ResourceLogs per file: all its records are that file's.
        assert!(
            resource
                .bodies
                .iter()
                .all(|b| b.starts_with(&format!("{tag} "))),
            "records of two files in one resource"
        );
        let (ns, pod, container, path) = match tag {
            "a" => ("shop", "web-1", "nginx", &a),
            _ => ("billing", "api-2", "server", &b),
        };
        assert_eq!(attrs["k8s.namespace.name"], ns);
        assert_eq!(attrs["k8s.pod.name"], pod);
        assert_eq!(attrs["k8s.pod.uid"], format!("uid-{pod}"));
        assert_eq!(attrs["k8s.container.name"], container);
        assert_eq!(attrs["k8s.container.restart_count"], "0");
        assert_eq!(attrs["k8s.node.name"], "node-7");
        assert_eq!(attrs["log.file.path"], path.display().to_string());
        assert_eq!(attrs["ringtail.source"], "pods");
        bodies.extend(resource.bodies.iter().cloned());
    }
    let expected = BTreeMap::from([("a".to_string(), 300), ("b".to_string(), 300)]);
    let (missing, duplicates) = check_once(&bodies, &expected);
    assert!(
        missing.is_empty() && duplicates == 0,
        "{missing:?} {duplicates}"
    );
    let (status, stderr) = collector.stop();
    assert!(status.success(), "{stderr}");
}

#[test]
fn a_receiver_down_for_15_seconds_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("tap.out");
    let mut tap = Oteltap::start(&out);
    let port = tap.port;
    let files: Vec<(String, PathBuf)> = (0..4)
        .map(|i| {
            let tag = format!("o{i}");
            (
                tag,
                kubelet_file(dir.path(), "ops", &format!("job-{i}"), "c"),
            )
        })
        .collect();
    let collector = start(
        dir.path(),
        &config(dir.path(), port, "    compression: none\n    retry_max: 2s"),
        &[],
    );
    for (tag, path) in &files {
        append_cri(path, tag, 0..2_000);
    }
    assert!(wait_tap(&out, 8_000, Duration::from_secs(60)) >= 8_000);
    tap.stop();
    let down = Instant::now();
    // Written while the receiver is down.
    for round in 0..10u64 {
        for (tag, path) in &files {
            append_cri(path, tag, 2_000 + round * 500..2_500 + round * 500);
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    collector.wait_until(
        Duration::from_secs(15),
        "the sink shows as degraded",
        || {
            collector
                .get("/healthz")
                .is_some_and(|h| h.contains("otel") && h.contains("degraded"))
        },
    );
    std::thread::sleep(Duration::from_secs(15).saturating_sub(down.elapsed()));
    let _tap = Oteltap::start_on(port, &out);
    let total = 4 * 7_000;
    let got = wait_tap(&out, total, Duration::from_secs(90));
    assert!(got >= total, "{got} of {total} records arrived");
    let bodies: Vec<String> = read_tap(&out).into_iter().map(|r| r.body).collect();
    let expected = files.iter().map(|(t, _)| (t.clone(), 7_000)).collect();
    let (missing, _duplicates) = check_once(&bodies, &expected);
    assert!(missing.is_empty(), "lost: {missing:?}");
    assert!(collector.metric("ringtail_http_retries_total{sink=\"otel\"}") >= 1.0);
    collector.wait_until(Duration::from_secs(20), "the sink is healthy again", || {
        collector
            .get("/healthz")
            .is_some_and(|h| !h.contains("degraded"))
    });
    let (status, stderr) = collector.stop();
    assert!(status.success(), "{stderr}");
}

#[test]
fn answers_429_and_503_are_retried_and_secrets_reach_only_the_receiver() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("tap.out");
    let tap = Oteltap::start(&out);
    let token = "tok-7f3a9c1e5b";
    let tenant_file = dir.path().join("tenant");
    std::fs::write(&tenant_file, "tenant-42b\n").unwrap();
    let plan = serde_json::json!({
        "headers": {"Authorization": format!("Bearer {token}"), "X-Scope-OrgID": "tenant-42b"},
        "rules": [
            {"from": 0, "until": 3, "status": 503, "retry_after": 1, "text": "overloaded"},
            {"from": 3, "until": 6, "status": 429, "text": "slow down"},
        ],
    });
    let proxy = FaultProxy::start(dir.path(), tap.port, &plan);
    let a = kubelet_file(dir.path(), "shop", "web-1", "app");
    let extra = format!(
        "    compression: none\n    retry_max: 1s\n    headers:\n      Authorization: \"Bearer ${{OTLP_TOKEN}}\"\n      X-Scope-OrgID: \"${{file:{}}}\"",
        tenant_file.display()
    );
    let collector = Collector::start_wrapped(
        dir.path(),
        &config(dir.path(), proxy.port, &extra),
        |binary| {
            let mut command = Command::new(binary);
            command.env("OTLP_TOKEN", token).env("RUST_LOG", "debug");
            command
        },
    );
    for round in 0..8u64 {
        append_cri(&a, "r", round * 1_000..(round + 1) * 1_000);
        std::thread::sleep(Duration::from_millis(500));
    }
    let got = wait_tap(&out, 8_000, Duration::from_secs(60));
    assert!(
        got >= 8_000,
        "{got} of 8000 arrived; proxy: {:?}",
        proxy.log()
    );
    std::thread::sleep(Duration::from_secs(1));
    let bodies: Vec<String> = tap.records().into_iter().map(|r| r.body).collect();
    let expected = BTreeMap::from([("r".to_string(), 8_000)]);
    // Refused requests never reached the receiver: exactly once.
    let (missing, duplicates) = check_once(&bodies, &expected);
    assert!(
        missing.is_empty() && duplicates == 0,
        "{missing:?} {duplicates}"
    );
    let log = proxy.log();
    assert!(log.iter().any(|l| l.ends_with(" 503")), "{log:?}");
    assert!(log.iter().any(|l| l.ends_with(" 429")), "{log:?}");
    assert!(
        !log.iter().any(|l| l.contains(" 401 ")),
        "headers wrong: {log:?}"
    );
    assert!(collector.metric("ringtail_http_requests_total{sink=\"otel\",status=\"503\"}") >= 1.0);
    let metrics = collector.get("/metrics").unwrap();
    let (status, stderr) = collector.stop();
    assert!(status.success(), "{stderr}");
    for secret in [token, "tenant-42b"] {
        assert!(!stderr.contains(secret), "a secret in the log");
        assert!(!metrics.contains(secret), "a secret in /metrics");
    }
}

#[test]
fn refused_requests_and_partial_successes_go_to_the_dead_letter_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("tap.out");
    let tap = Oteltap::start(&out);
    let plan = serde_json::json!({
        "rules": [
            {"first": 0, "last": 1, "status": 400, "text": "bad record"},
            {"first": 1, "last": 2, "status": 200, "partial": [2, "two too old"]},
        ],
    });
    let proxy = FaultProxy::start(dir.path(), tap.port, &plan);
    let a = kubelet_file(dir.path(), "shop", "web-1", "app");
    let dead = dir.path().join("dead/otlp.ndjson");
    let extra = format!("    compression: none\n    dead_letter: {}", dead.display());
    let collector = start(dir.path(), &config(dir.path(), proxy.port, &extra), &[]);
    append_cri(&a, "d", 0..10);
    let deadline = Instant::now() + Duration::from_secs(30);
    while common::count_lines(&dead) < 10 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    append_cri(&a, "d", 10..20);
    assert!(wait_tap(&out, 10, Duration::from_secs(30)) >= 10);
    let deadline = Instant::now() + Duration::from_secs(30);
    while common::count_lines(&dead) < 11 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&dead)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 11, "{lines:?}");
    // The 400: each of the first ten records, with the reason.
    for line in &lines[..10] {
        assert_eq!(line["sink"], "otel");
        assert!(
            line["error"]
                .as_str()
                .unwrap()
                .contains("HTTP 400: bad record")
        );
        assert!(line["record"].is_string() || line["record_base64"].is_string());
    }
    // The partial success: how many, and the receiver's message.
    assert_eq!(lines[10]["records"], 2);
    assert!(lines[10]["error"].as_str().unwrap().contains("two too old"));
    assert_eq!(
        collector.metric("ringtail_sink_refused_total{sink=\"otel\"}"),
        12.0
    );
    assert_eq!(
        collector.metric("ringtail_sink_dead_lettered_total{sink=\"otel\"}"),
        12.0
    );
    let (status, stderr) = collector.stop();
    assert!(status.success(), "{stderr}");
}

#[test]
fn secrets_missing_or_quoted_by_a_problem_are_reported_without_their_values() {
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "sources:\n  - name: s\n    paths: [\"{}/*.log\"]\nsinks:\n  - name: o\n    type: otlp\n    endpoint: http://127.0.0.1:4318\n    compression: ${{SECRET_CODEC}}\n    headers:\n      Authorization: \"${{MISSING_TOKEN}}\"\n",
        dir.path().display()
    );
    let path = dir.path().join("c.yaml");
    std::fs::write(&path, config).unwrap();
    let out = Command::new(common::binary())
        .args(["validate", "--config"])
        .arg(&path)
        .env("SECRET_CODEC", "hunter2-codec")
        .env_remove("MISSING_TOKEN")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success());
    assert!(text.contains("`MISSING_TOKEN` is not set"), "{text}");
    assert!(
        text.contains("line 10"),
        "the line of the reference: {text}"
    );
    assert!(text.contains("unknown value `***`"), "{text}");
    assert!(!text.contains("hunter2-codec"), "a secret printed: {text}");
}

#[test]
fn https_with_a_ca_file_and_a_client_certificate_and_without_them() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("tap.out");
    let tap = Oteltap::start(&out);
    let tls = common::tls::Terminator::start(
        &dir.path().join("tls"),
        &format!("127.0.0.1:{}", tap.port),
        true,
    );
    let a = kubelet_file(dir.path(), "shop", "web-1", "app");
    append_cri(&a, "h", 0..1_000);
    let https = |extra: &str| {
        config(
            dir.path(),
            tls.port,
            &format!("    compression: none\n{extra}"),
        )
        .replace("http://127.0.0.1", "https://127.0.0.1")
    };
    // The test CA and a client certificate: delivered.
    let trusted = format!(
        "    tls:\n      ca_file: {}\n      cert_file: {}\n      key_file: {}",
        tls.ca.display(),
        tls.client_cert.display(),
        tls.client_key.display()
    );
    let collector = start(dir.path(), &https(&trusted), &[]);
    assert_eq!(wait_tap(&out, 1_000, Duration::from_secs(60)), 1_000);
    let (status, stderr) = collector.stop();
    assert!(status.success(), "{stderr}");
    // The built-in roots do not know the test CA: nothing goes, the sink says why.
    append_cri(&a, "h", 1_000..1_100);
    let untrusted = format!(
        "    tls:\n      cert_file: {}\n      key_file: {}",
        tls.client_cert.display(),
        tls.client_key.display()
    );
    let collector = start(dir.path(), &https(&untrusted), &[]);
    collector.wait_until(
        Duration::from_secs(30),
        "the sink shows as degraded",
        || {
            collector
                .get("/healthz")
                .is_some_and(|h| h.contains("degraded") && h.to_lowercase().contains("certificate"))
        },
    );
    assert_eq!(read_tap(&out).len(), 1_000);
    collector.kill();
    // `verify: false` (written, never the default) takes the unknown CA.
    let unverified = format!("{untrusted}\n      verify: \"false\"");
    let collector = start(dir.path(), &https(&unverified), &[]);
    assert_eq!(wait_tap(&out, 1_100, Duration::from_secs(60)), 1_100);
    let (status, stderr) = collector.stop();
    assert!(status.success(), "{stderr}");
    let bodies: Vec<String> = read_tap(&out).into_iter().map(|r| r.body).collect();
    let (missing, duplicates) = check_once(&bodies, &BTreeMap::from([("h".to_string(), 1_100)]));
    assert!(
        missing.is_empty() && duplicates == 0,
        "{missing:?} {duplicates}"
    );
}

#[test]
fn a_frozen_receiver_times_requests_out_and_nothing_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("tap.out");
    let tap = Oteltap::start(&out);
    let a = kubelet_file(dir.path(), "shop", "web-1", "app");
    let collector = start(
        dir.path(),
        &config(
            dir.path(),
            tap.port,
            "    compression: none\n    timeout: 1s\n    retry_max: 1s",
        ),
        &[],
    );
    append_cri(&a, "z", 0..1_000);
    assert_eq!(wait_tap(&out, 1_000, Duration::from_secs(30)), 1_000);
    // Frozen: the kernel still accepts connections, nothing answers.
    tap.signal(rustix::process::Signal::STOP);
    append_cri(&a, "z", 1_000..2_000);
    collector.wait_degraded(Duration::from_secs(20), "timeout");
    std::thread::sleep(Duration::from_secs(3));
    tap.signal(rustix::process::Signal::CONT);
    // A request the receiver read before freezing may be answered late and sent again: at
    // least once, nothing lost.
    assert!(wait_tap(&out, 2_000, Duration::from_secs(60)) >= 2_000);
    let bodies: Vec<String> = read_tap(&out).into_iter().map(|r| r.body).collect();
    let (missing, _) = check_once(&bodies, &BTreeMap::from([("z".to_string(), 2_000)]));
    assert!(missing.is_empty(), "lost: {missing:?}");
    let (status, stderr) = collector.stop();
    assert!(status.success(), "{stderr}");
}

#[test]
fn a_refusal_without_a_dead_letter_file_stops_the_pipeline_and_the_next_run_resends() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("tap.out");
    let tap = Oteltap::start(&out);
    let plan = serde_json::json!({
        "rules": [{"first": 0, "last": 1, "status": 400, "text": "schema violation"}],
    });
    let proxy = FaultProxy::start(dir.path(), tap.port, &plan);
    let a = kubelet_file(dir.path(), "shop", "web-1", "app");
    append_cri(&a, "n", 0..50);
    let mut collector = start(
        dir.path(),
        &config(dir.path(), proxy.port, "    compression: none"),
        &[],
    );
    let status = collector.wait_exit(Duration::from_secs(30));
    let log = collector.stderr();
    assert!(!status.success(), "{log}");
    assert!(
        log.contains("schema violation") && log.contains("no dead_letter file"),
        "{log}"
    );
    drop(collector);
    assert!(
        read_tap(&out).is_empty(),
        "the refused request reached the receiver"
    );
    // The refused records were never acknowledged: the next run sends them (the proxy now
    // forwards).
    let collector = start(
        dir.path(),
        &config(dir.path(), proxy.port, "    compression: none"),
        &[],
    );
    assert_eq!(wait_tap(&out, 50, Duration::from_secs(30)), 50);
    let bodies: Vec<String> = read_tap(&out).into_iter().map(|r| r.body).collect();
    let (missing, duplicates) = check_once(&bodies, &BTreeMap::from([("n".to_string(), 50)]));
    assert!(
        missing.is_empty() && duplicates == 0,
        "{missing:?} {duplicates}"
    );
    let (status, stderr) = collector.stop();
    assert!(status.success(), "{stderr}");
}

#[test]
fn the_json_encoding_reaches_a_real_receiver_with_the_same_resources() {
    let dir = tempfile::tempdir().unwrap();
    let rotel = Rotel::start(&dir.path().join("rotel.out"));
    let a = kubelet_file(dir.path(), "shop", "web-1", "nginx");
    append_cri(&a, "j", 0..200);
    let collector = start(
        dir.path(),
        &config(dir.path(), rotel.port, "    encoding: json"),
        &[],
    );
    assert_eq!(rotel.wait_records(200, Duration::from_secs(60)), 200);
    let resources = rotel.resources();
    let mut bodies = Vec::new();
    for resource in &resources {
        assert_eq!(resource.attributes["k8s.pod.name"], "web-1");
        assert_eq!(resource.attributes["k8s.container.restart_count"], "0");
        bodies.extend(resource.bodies.iter().cloned());
    }
    let (missing, duplicates) = check_once(&bodies, &BTreeMap::from([("j".to_string(), 200)]));
    assert!(
        missing.is_empty() && duplicates == 0,
        "{missing:?} {duplicates}"
    );
    let (status, stderr) = collector.stop();
    assert!(status.success(), "{stderr}");
}
