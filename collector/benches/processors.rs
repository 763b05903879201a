//! Criterion benchmarks of each processor, run and encoded as a worker does it, reported as
//! bytes per second of message: `json` (nested, depth 2), `regex` (named groups), `nginx`,
//! `apache`, `csv` (quoted fields), `add_fields`, `drop`, and no processor as the baseline.
//! Inputs are 2,000 varied, real-looking lines per processor.
#![allow(clippy::unwrap_used, reason = "benchmark set-up")]

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ringtail::cut::decode::{Entry, Stream};
use ringtail::encode::{EncodeStats, FileFields, encode, encode_with};
use ringtail::process::{self, Fields, ProcessStats, Processor};

fn lines(make: impl Fn(usize) -> String) -> Vec<String> {
    (0..2000).map(make).collect()
}

fn regex(pattern: &str) -> regex::bytes::Regex {
    regex::bytes::Regex::new(pattern).unwrap()
}

fn cases() -> Vec<(&'static str, Vec<Processor>, Vec<String>)> {
    let nginx = |i: usize| {
        format!(
            r#"203.0.{}.{} - - [22/Nov/2026:10:{:02}:{:02} +0000] "GET /shop/item/{i}?ref=home HTTP/1.1" {} {} "https://example.com/list?page={}" "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/120.0""#,
            i % 256,
            i % 200,
            i % 60,
            i % 60,
            [200, 304, 404, 500][i % 4],
            1000 + i * 7,
            i % 9
        )
    };
    vec![
        ("none", Vec::new(), lines(nginx)),
        (
            "json",
            vec![Processor::Json {
                depth: 2,
                keep_source: false,
            }],
            lines(|i| {
                format!(
                    r#"{{"ts":"2026-11-22T10:00:{:02}Z","level":"{}","msg":"request {i} served \"ok\"","http":{{"status":{},"path":"/api/v1/items/{i}","latency_ms":{}.5}},"user":{{"id":{i},"roles":["reader","writer"]}}}}"#,
                    i % 60,
                    ["info", "warn", "error"][i % 3],
                    [200, 404, 500][i % 3],
                    i % 900
                )
            }),
        ),
        (
            "regex",
            vec![Processor::Regex {
                pattern: regex(
                    r"^(?P<time>\S+) (?P<level>[A-Z]+) \[(?P<thread>[^\]]+)\] (?P<msg>.*)$",
                ),
                keys: ["time", "level", "thread", "msg"]
                    .map(String::from)
                    .to_vec(),
            }],
            lines(|i| {
                format!(
                    "2026-11-22T10:00:{:02}.123Z {} [worker-{}] order {i} processed in {} ms for customer {}",
                    i % 60,
                    ["INFO", "WARN", "ERROR"][i % 3],
                    i % 16,
                    i % 500,
                    i * 31
                )
            }),
        ),
        ("nginx", vec![Processor::Nginx], lines(nginx)),
        (
            "apache",
            vec![Processor::Apache],
            lines(|i| {
                format!(
                    r#"10.0.{}.{} - frank [10/Oct/2026:13:55:{:02} -0700] "GET /images/{i}.gif HTTP/1.0" 200 {} "http://www.example.com/start.html" "Mozilla/4.08 [en] (Win98; I ;Nav)""#,
                    i % 256,
                    i % 250,
                    i % 60,
                    2000 + i
                )
            }),
        ),
        (
            "csv",
            vec![Processor::Csv {
                columns: ["id", "name", "city", "note", "amount"]
                    .map(String::from)
                    .to_vec(),
                delimiter: b',',
            }],
            lines(|i| {
                format!(
                    r#"{i},"Smith, Jane {i}",Berlin,"said ""hello"" at {i}",{}.{:02}"#,
                    i * 3,
                    i % 100
                )
            }),
        ),
        (
            "add_fields",
            vec![Processor::AddFields {
                fields: vec![
                    ("team".into(), "payments".into()),
                    ("env".into(), "prod".into()),
                ],
            }],
            lines(nginx),
        ),
        (
            "drop",
            vec![Processor::Drop {
                field: "message".into(),
                pattern: regex(r#"" 404 "#),
            }],
            lines(nginx),
        ),
    ]
}

fn processors(c: &mut Criterion) {
    let file = FileFields::new(Path::new("/var/log/pods/ns_pod_uid/app/0.log"), "pods", []);
    let mut group = c.benchmark_group("processors");
    for (name, chain, input) in cases() {
        let bytes: usize = input.iter().map(String::len).sum();
        group.throughput(Throughput::Bytes(bytes as u64));
        let mut out = Vec::with_capacity(bytes * 3);
        group.bench_function(name, |b| {
            b.iter(|| {
                out.clear();
                let mut enc = EncodeStats::default();
                let mut stats = ProcessStats::default();
                for line in &input {
                    let entry = Entry {
                        offset: 0,
                        message: line.as_bytes(),
                        stream: Stream::Stdout,
                        time: b"2026-11-22T10:00:00.000000000Z",
                        truncated: false,
                        error: None,
                    };
                    if chain.is_empty() {
                        encode(&mut out, &entry, &file, &mut enc);
                        continue;
                    }
                    let mut fields = Fields::default();
                    let mut error = None;
                    if process::run(&chain, &entry, &mut fields, &mut error, &mut stats)
                        == process::Outcome::Keep
                    {
                        encode_with(
                            &mut out,
                            &Entry { error, ..entry },
                            &file,
                            Some(&fields),
                            b"",
                            &mut enc,
                        );
                    }
                }
                assert_eq!(stats.failed, 0, "{name}: every benchmark line parses");
                black_box(out.len())
            })
        });
    }
    group.finish();
}

criterion_group!(benches, processors);
criterion_main!(benches);
