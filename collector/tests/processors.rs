//! Processors end to end: real-looking nginx and Apache access logs, JSON with nested objects
//! and escapes, CSV with quoted commas, a regex chain with static fields and a drop rule —
//! each with malformed lines, which keep their message and get an `error`.
#![allow(clippy::unwrap_used, reason = "tests fail loudly on broken invariants")]

mod common;

use std::time::Duration;

use common::{Collector, records};

const NGINX: &str = r#"203.0.113.7 - - [22/Nov/2026:10:00:01 +0000] "GET /shop/cart?id=12 HTTP/1.1" 200 2326 "https://example.com/" "Mozilla/5.0 (X11; Linux x86_64)"
198.51.100.2 - bob [22/Nov/2026:10:00:02 +0000] "POST /api/v1/orders HTTP/2.0" 201 512 "-" "curl/8.5.0"
192.0.2.1 - - [22/Nov/2026:10:00:03 +0000] "\x16\x03\x01\x00" 400 157 "-" "-"
this is not an access log line
"#;

const APACHE: &str = r#"127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326 "http://www.example.com/start.html" "Mozilla/4.08 [en] (Win98; I ;Nav)"
10.0.0.5 - - [10/Oct/2000:13:55:37 -0700] "HEAD / HTTP/1.1" 304 - "-" "check \"quoted\" agent"
10.0.0.5 - - [10/Oct/2000:13:55:38 -0700] "GET / HTTP/1.1" 2xx 1 "-" "-"
"#;

const JSON: &str = r#"{"level":"info","msg":"user said \"hi\"\nthen left","user":{"id":42,"name":"Zoë","roles":["a","b"]},"latency_ms":12.5}
{"level":"error","err":{"kind":"io","detail":{"path":"/tmp/x","errno":2}}}
{"level":"warn", broken
"#;

const CSV: &str = r#"1001,"Smith, Jane","said ""hello"", then left",ok
1002,Doe,plain,ok
1003,"unterminated,x,ok
"#;

const APP: &str =
    "INFO service started\nDEBUG cache warm\nERROR payment failed: card declined\nno level here\n";

#[test]
fn processors_extract_fields_and_malformed_records_keep_their_message() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    for (name, text) in [
        ("nginx.log", NGINX),
        ("apache.log", APACHE),
        ("json.log", JSON),
        ("csv.log", CSV),
        ("app.log", APP),
    ] {
        std::fs::write(logs.join(name), text).unwrap();
    }
    let out = dir.join("out.ndjson");
    let source = |name: &str, processors: &str| {
        format!(
            "  - name: {name}\n    paths: [\"{}/{name}.log\"]\n    processors:\n{processors}",
            logs.display()
        )
    };
    let config = format!(
        "data_dir: {dir}/data\napi:\n  listen: 127.0.0.1:{{port}}\nsources:\n{}{}{}{}{}sinks:\n  - name: out\n    type: file\n    path: {out}\n    sync_interval: 100ms\n",
        source("nginx", "      - type: nginx\n"),
        source("apache", "      - type: apache\n"),
        source(
            "json",
            "      - {type: json, depth: 2, keep_source: false}\n"
        ),
        source(
            "csv",
            "      - {type: csv, columns: [id, name, note, status]}\n"
        ),
        source(
            "app",
            "      - {type: regex, pattern: '^(?P<level>[A-Z]+) (?P<text>.*)$'}\n      - {type: add_fields, fields: {team: payments}}\n      - {type: drop, field: level, pattern: '^DEBUG$'}\n"
        ),
        dir = dir.display(),
        out = out.display(),
    );
    let collector = Collector::start(dir, &config);
    let expected = 4 + 3 + 3 + 3 + 3;
    collector.wait_until(Duration::from_secs(20), "every record", || {
        records(&out).len() >= expected
    });
    std::thread::sleep(Duration::from_millis(300));
    let all = records(&out);
    assert_eq!(all.len(), expected);
    let of = |source: &str| -> Vec<&serde_json::Value> {
        all.iter().filter(|r| r["source"] == source).collect()
    };

    let nginx = of("nginx");
    assert_eq!(nginx[0]["fields"]["status"], 200);
    assert_eq!(nginx[0]["fields"]["path"], "/shop/cart?id=12");
    assert_eq!(nginx[0]["fields"]["remote_user"], serde_json::Value::Null);
    assert_eq!(nginx[1]["fields"]["remote_user"], "bob");
    assert_eq!(nginx[1]["fields"]["method"], "POST");
    assert_eq!(nginx[1]["fields"]["body_bytes_sent"], 512);
    assert_eq!(nginx[2]["fields"]["status"], 400);
    assert_eq!(nginx[3]["message"], "this is not an access log line");
    assert_eq!(nginx[3]["error"], "nginx: not a combined access-log line");
    assert!(nginx[3].get("fields").is_none());

    let apache = of("apache");
    assert_eq!(apache[0]["fields"]["remote_user"], "frank");
    assert_eq!(apache[0]["fields"]["bytes"], 2326);
    assert_eq!(apache[1]["fields"]["bytes"], serde_json::Value::Null);
    assert_eq!(apache[1]["fields"]["status"], 304);
    assert!(apache[2]["error"].as_str().unwrap().starts_with("apache:"));

    let json = of("json");
    assert!(json[0].get("message").is_none(), "keep_source: false");
    assert_eq!(json[0]["fields"]["msg"], "user said \"hi\"\nthen left");
    assert_eq!(json[0]["fields"]["user.name"], "Zoë");
    assert_eq!(
        json[0]["fields"]["user.roles"],
        serde_json::json!(["a", "b"])
    );
    assert_eq!(json[0]["fields"]["latency_ms"], 12.5);
    assert_eq!(
        json[1]["fields"]["err.detail"],
        serde_json::json!({"path": "/tmp/x", "errno": 2}),
        "deeper than depth 2 stays JSON"
    );
    assert_eq!(json[2]["message"], r#"{"level":"warn", broken"#);
    assert_eq!(json[2]["error"], "json: the message is not a JSON object");

    let csv = of("csv");
    assert_eq!(
        csv[0]["fields"],
        serde_json::json!({"id": "1001", "name": "Smith, Jane",
            "note": "said \"hello\", then left", "status": "ok"})
    );
    assert_eq!(csv[1]["fields"]["name"], "Doe");
    assert_eq!(csv[2]["message"], r#"1003,"unterminated,x,ok"#);
    assert!(csv[2]["error"].as_str().unwrap().starts_with("csv:"));

    let app = of("app");
    let levels: Vec<serde_json::Value> = app.iter().map(|r| r["fields"]["level"].clone()).collect();
    assert_eq!(
        levels,
        vec![
            serde_json::json!("INFO"),
            serde_json::json!("ERROR"),
            serde_json::Value::Null
        ]
    );
    assert_eq!(app[1]["fields"]["text"], "payment failed: card declined");
    assert!(app.iter().all(|r| r["fields"]["team"] == "payments"));
    assert_eq!(app[2]["error"], "regex: the message does not match");
    assert_eq!(app[2]["message"], "no level here");

    assert_eq!(
        collector.metric("ringtail_records_dropped_total{source=\"app\"}"),
        1.0
    );
    let failed: f64 = ["nginx", "apache", "json", "csv", "app"]
        .iter()
        .map(|s| {
            collector.metric(&format!(
                "ringtail_processing_failed_total{{source=\"{s}\"}}"
            ))
        })
        .sum();
    assert_eq!(failed, 5.0);
    let (status, log) = collector.stop();
    assert!(status.success(), "{log}");
}

/// A `timestamp` processor after multiline joining: a record's own time and level come from
/// its leading timestamp; the runtime's time, or a plain file's read time, becomes its
/// `observed_time`; a record without a timestamp keeps its message and gets an `error`.
#[test]
fn a_records_own_time_and_level_come_from_its_leading_timestamp() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    std::fs::write(
        logs.join("app.log"),
        "2026-12-06 20:13:15.898 SEVERE request failed\njava.lang.IllegalStateException: x\n\tat A.b(A.java:1)\n2026-12-06 20:13:16,001 INFO next\n",
    )
    .unwrap();
    std::fs::write(
        logs.join("pod.log"),
        "2026-12-06T20:13:17.000000000Z stdout F 2026-12-06T20:13:16.5+01:00 [WARN] proxied\n2026-12-06T20:13:18.000000000Z stdout F no timestamp here\n",
    )
    .unwrap();
    let out = dir.join("out.ndjson");
    let config = format!(
        "data_dir: {dir}/data\napi:\n  listen: 127.0.0.1:{{port}}\nsources:\n  - name: app\n    paths: [\"{logs}/app.log\"]\n    multiline: {{preset: java}}\n    processors: [{{type: timestamp}}]\n  - name: pod\n    paths: [\"{logs}/pod.log\"]\n    format: cri\n    processors: [{{type: timestamp}}]\nsinks:\n  - name: out\n    type: file\n    path: {out}\n    sync_interval: 100ms\n",
        dir = dir.display(),
        logs = logs.display(),
        out = out.display(),
    );
    let collector = Collector::start(dir, &config);
    collector.wait_until(Duration::from_secs(20), "every record", || {
        records(&out).len() >= 4
    });
    let (status, log) = collector.stop();
    assert!(status.success(), "{log}");
    let mut got = records(&out);
    got.sort_by_key(|r| {
        (
            r["source"].as_str().unwrap_or("").to_string(),
            r["offset"].as_u64(),
        )
    });
    assert_eq!(got.len(), 4, "{got:#?}");
    let fields = |r: &serde_json::Value| (r["time"].clone(), r["fields"]["level"].clone());
    assert_eq!(
        fields(&got[0]),
        ("2026-12-06T20:13:15.898000000Z".into(), "SEVERE".into())
    );
    assert!(
        got[0]["message"]
            .as_str()
            .unwrap()
            .ends_with("\tat A.b(A.java:1)")
    );
    assert_eq!(
        fields(&got[1]),
        ("2026-12-06T20:13:16.001000000Z".into(), "INFO".into())
    );
    for record in &got[..2] {
        // A plain file's records: when they were read.
        let observed = record["observed_time"].as_str().unwrap();
        assert!(
            observed.starts_with("20") && observed.ends_with('Z'),
            "{record}"
        );
    }
    assert_eq!(
        fields(&got[2]),
        ("2026-12-06T19:13:16.500000000Z".into(), "WARN".into())
    );
    assert_eq!(got[2]["observed_time"], "2026-12-06T20:13:17.000000000Z");
    // No timestamp: the message is kept, with an error, and the runtime's time.
    assert_eq!(got[3]["message"], "no timestamp here");
    assert_eq!(
        got[3]["error"],
        "timestamp: the message does not begin with a timestamp"
    );
    assert_eq!(got[3]["time"], "2026-12-06T20:13:18.000000000Z");
    assert!(got[3].get("observed_time").is_none());
}
