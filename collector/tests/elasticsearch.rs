//! The Elasticsearch sink against a test server faithful to the documented `_bulk` protocol
//! (no Elasticsearch installs here; see `common/elasticsearch.rs`): every record indexed
//! exactly once into the daily index of its own time, per-item 429s retried without sending
//! accepted documents again, a mapping error dead-lettered with its reason, whole-request
//! 503s retried, oversize requests split on 413, two endpoints used in turn, gzip, an ingest
//! pipeline and basic authentication from a secret.

#![allow(clippy::unwrap_used, reason = "tests fail loudly on broken invariants")]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

mod common;

use common::Collector;
use common::elasticsearch::BulkServer;

/// The kubelet's file of a container in pod `pod` of namespace `ns`.
fn kubelet_file(root: &Path, ns: &str, pod: &str) -> PathBuf {
    let dir = root.join(format!("var/log/pods/{ns}_{pod}_uid-{pod}/app"));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("0.log")
}

/// Appends CRI lines `<tag> <n> <marker>` numbered `numbers`: lines below `midnight` are
/// written at 23:59:59 on 5 December, the others just after midnight; `marker(n)` adds a
/// word.
fn append_cri(
    path: &Path,
    tag: &str,
    numbers: std::ops::Range<u64>,
    midnight: u64,
    marker: impl Fn(u64) -> &'static str,
) {
    let mut text = String::new();
    for n in numbers {
        let time = if n < midnight {
            format!("2026-12-05T23:59:59.{n:09}Z")
        } else {
            format!("2026-12-06T00:00:00.{n:09}Z")
        };
        text.push_str(&format!(
            "{time} stdout F {tag} {n:08} {} {}\n",
            marker(n),
            "e".repeat(60)
        ));
    }
    common::append(path, &text);
}

#[test]
fn every_record_is_indexed_once_in_its_daily_index_through_429s_503s_and_413s() {
    use base64::Engine;
    let dir = tempfile::tempdir().unwrap();
    let auth = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("ringtail:es-pw-51c2")
    );
    let plan = serde_json::json!({
        "auth": auth,
        "max_content_length": 10_000,
        "unavailable_first": 2,
        "reject_marker": "RETRY",
        "mapping_marker": "BADMAP",
    });
    let server = BulkServer::start(&dir.path().join("es"), 2, &plan);
    let password = dir.path().join("es-password");
    std::fs::write(&password, "es-pw-51c2\n").unwrap();
    let dead = dir.path().join("dead/es.ndjson");
    let files: Vec<(String, &str, PathBuf)> = [("shop", "web-1"), ("billing", "api-2")]
        .iter()
        .enumerate()
        .map(|(i, (ns, pod))| (format!("e{i}"), *ns, kubelet_file(dir.path(), ns, pod)))
        .collect();
    const LINES: u64 = 6_000;
    let marker = |n: u64| match n {
        4_321 => "BADMAP",
        n if n % 97 == 0 => "RETRY",
        _ => "ok",
    };
    for (tag, _, path) in &files {
        append_cri(path, tag, 0..LINES / 2, LINES / 2, marker);
    }
    let config = format!(
        r#"
data_dir: {d}/data
api:
  listen: "127.0.0.1:{{port}}"
pipeline:
  batch_size: 512KiB
sources:
  - name: pods
    paths: ["{d}/var/log/pods/*/*/*.log"]
    format: cri
sinks:
  - name: es
    type: elasticsearch
    endpoints: ["http://127.0.0.1:{p0}", "http://127.0.0.1:{p1}/"]
    index: "logs-{{k8s.namespace}}-%Y.%m.%d"
    pipeline: geoip
    compression: gzip
    retry_max: 1s
    auth:
      username: ringtail
      password: "${{file:{pw}}}"
    dead_letter: {dead}
"#,
        d = dir.path().display(),
        p0 = server.ports[0],
        p1 = server.ports[1],
        pw = password.display(),
        dead = dead.display(),
    );
    let collector = Collector::start_wrapped(dir.path(), &config, |binary| {
        let mut command = Command::new(binary);
        command.env("RUST_LOG", "debug");
        command
    });
    for (tag, _, path) in &files {
        append_cri(path, tag, LINES / 2..LINES, LINES / 2, marker);
    }
    let total = files.len() * (LINES as usize - 1);
    let got = server.wait_accepted(total, Duration::from_secs(120));
    assert_eq!(got, total, "accepted documents");
    std::thread::sleep(Duration::from_secs(1));

    // Every record exactly once, in the daily index of its own time.
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    for accepted in server.accepted() {
        let doc = &accepted["doc"];
        let message = doc["message"].as_str().unwrap().to_string();
        let mut words = message.split(' ');
        let tag = words.next().unwrap();
        let n: u64 = words.next().unwrap().parse().unwrap();
        let ns = files.iter().find(|(t, _, _)| t == tag).unwrap().1;
        let day = if n < LINES / 2 { "05" } else { "06" };
        assert_eq!(
            accepted["index"],
            format!("logs-{ns}-2026.12.{day}"),
            "{message}"
        );
        let timestamp = doc["@timestamp"].as_str().unwrap();
        assert!(
            timestamp.starts_with(&format!("2026-12-{day}T")),
            "{timestamp}"
        );
        assert_eq!(accepted["op"], "index");
        assert_eq!(accepted["query"], "pipeline=geoip");
        assert!(
            seen.insert(message.clone(), timestamp.to_string())
                .is_none(),
            "indexed twice: {message}"
        );
    }
    assert_eq!(seen.len(), total);

    // Per-item 429s: those documents came twice, every accepted one only once.
    let mut arrivals: BTreeMap<String, usize> = BTreeMap::new();
    for arrival in server.arrivals() {
        *arrivals
            .entry(arrival["message"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    for (message, count) in &arrivals {
        let expected = if message.contains("RETRY") { 2 } else { 1 };
        assert_eq!(*count, expected, "{message} sent {count} times");
    }

    // The mapping error: dead-lettered with its reason, once per file.
    let dead_letters: Vec<serde_json::Value> = std::fs::read_to_string(&dead)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(dead_letters.len(), files.len(), "{dead_letters:?}");
    for letter in &dead_letters {
        assert_eq!(letter["sink"], "es");
        assert!(letter["index"].as_str().unwrap().ends_with("-2026.12.06"));
        assert!(
            letter["error"]
                .as_str()
                .unwrap()
                .contains("bulk item status 400: mapper_parsing_exception")
        );
        assert!(
            letter["record"]["message"]
                .as_str()
                .unwrap()
                .contains("BADMAP")
        );
    }

    // 503s and 413s happened and were handled; both endpoints served.
    let requests = server.requests();
    let outcomes: Vec<i64> = requests
        .iter()
        .map(|r| r["outcome"].as_i64().unwrap())
        .collect();
    assert_eq!(&outcomes[..2], &[503, 503], "{outcomes:?}");
    assert!(
        outcomes.contains(&413),
        "a request over the size limit: {outcomes:?}"
    );
    assert!(
        !outcomes.contains(&401),
        "authentication failed: {outcomes:?}"
    );
    for port in &server.ports {
        assert!(
            requests
                .iter()
                .any(|r| r["port"] == *port && r["outcome"] == 200),
            "endpoint {port} unused"
        );
    }
    assert_eq!(
        collector.metric("ringtail_sink_dead_lettered_total{sink=\"es\"}"),
        2.0
    );
    let (status, stderr) = collector.stop();
    assert!(status.success(), "{stderr}");
    assert!(!stderr.contains("es-pw-51c2"), "the password was logged");
}
