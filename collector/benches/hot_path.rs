//! Criterion benchmarks of the per-byte hot path, each reported as bytes per second of input:
//! the line splitter, the CRI decoder, the NDJSON encoder, and the whole per-core chain
//! (framing → decoding → multiline → encoding) as a worker runs it. Inputs are 8 MiB of
//! 200-byte lines from the seeded workload generator, fed in 512 KiB chunks like the reader's.
#![allow(clippy::unwrap_used, reason = "benchmark set-up")]

use std::collections::BTreeMap;
use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bench::workload::{self, FileWriter, Format, Rng, Shape};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ringtail::cut::decode::Format as SourceFormat;
use ringtail::cut::decode::cri::CriDecoder;
use ringtail::cut::decode::{DecodeStats, Decoder, Entry};
use ringtail::cut::framing::{FrameStats, Framer, Line};
use ringtail::cut::multiline::{self, Multiline, MultilineRules};
use ringtail::cut::{CutStats, Records};
use ringtail::encode::{EncodeStats, FileFields, encode};

const INPUT: usize = 8 << 20;
const CHUNK: usize = 512 << 10;

/// `INPUT` bytes of generated records in `format`.
fn input(format: Format, multiline_fraction: f64) -> Vec<u8> {
    let dir = std::env::temp_dir().join(format!("ringtail-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{format:?}-{multiline_fraction}.log"));
    let mut writer = FileWriter::create(&path, format).unwrap();
    let mut rng = Rng::new(42);
    let shape = Shape {
        multiline_fraction,
        ..Shape::default()
    };
    let mut seq = 0;
    while writer.offset() < INPUT as u64 {
        for _ in 0..1000 {
            let lines = workload::record_lines(&mut rng, "bench", seq, &shape, false);
            writer.add(&lines, "stdout");
            seq += 1;
        }
        writer.flush().unwrap();
    }
    let data = std::fs::read(&path).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    data
}

fn framing(c: &mut Criterion) {
    let data = input(Format::Raw, 0.0);
    let mut group = c.benchmark_group("framing");
    group.throughput(Throughput::Bytes(data.len() as u64));
    group.bench_function("split_200b_lines", |b| {
        b.iter(|| {
            let mut framer = Framer::new(256 << 10, 0);
            let mut stats = FrameStats::default();
            let mut lines = 0u64;
            for chunk in data.chunks(CHUNK) {
                framer.push(chunk, &mut stats, &mut |l: Line<'_>| {
                    lines += l.bytes.len() as u64 & 1
                });
            }
            black_box(lines)
        })
    });
    group.finish();
}

fn cri_decode(c: &mut Criterion) {
    let data = input(Format::Cri, 0.0);
    let lines: Vec<&[u8]> = data
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    let mut group = c.benchmark_group("cri_decode");
    group.throughput(Throughput::Bytes(data.len() as u64));
    group.bench_function("200b_lines", |b| {
        b.iter(|| {
            let mut decoder = CriDecoder::new(256 << 10, std::time::Duration::from_secs(5));
            let now = std::time::Instant::now();
            let mut stats = DecodeStats::default();
            let mut n = 0usize;
            let mut offset = 0u64;
            for line in &lines {
                let line = Line {
                    offset,
                    bytes: line,
                    truncated: false,
                };
                decoder.push(line, now, &mut stats, &mut |e: Entry<'_>| {
                    n += e.message.len()
                });
                offset += line.bytes.len() as u64 + 1;
            }
            black_box(n)
        })
    });
    group.finish();
}

fn ndjson_encode(c: &mut Criterion) {
    let data = input(Format::Raw, 0.0);
    let lines: Vec<&[u8]> = data
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    let mut tags = BTreeMap::new();
    tags.insert("cluster".to_string(), "prod-eu-1".to_string());
    let fields = FileFields::new(
        Path::new("/var/log/pods/ns_pod_uid/app/0.log"),
        "pods",
        &tags,
    );
    let mut out = Vec::with_capacity(2 * data.len());
    let mut group = c.benchmark_group("ndjson_encode");
    group.throughput(Throughput::Bytes(data.len() as u64));
    group.bench_function("200b_messages", |b| {
        b.iter(|| {
            out.clear();
            let mut stats = EncodeStats::default();
            for (i, line) in lines.iter().enumerate() {
                let entry = Entry {
                    offset: i as u64 * 201,
                    message: line,
                    stream: ringtail::cut::decode::Stream::Stdout,
                    time: b"2024-01-01T12:00:00.123456789Z",
                    truncated: false,
                    error: None,
                };
                encode(&mut out, &entry, &fields, &mut stats);
            }
            black_box(out.len())
        })
    });
    group.finish();
}

fn chain(c: &mut Criterion) {
    let fields = FileFields::new(
        Path::new("/var/log/pods/ns_pod_uid/app/0.log"),
        "pods",
        &BTreeMap::new(),
    );
    let java: Arc<MultilineRules> = Arc::new(MultilineRules {
        mode: multiline::preset("java").unwrap(),
        end: None,
        max_lines: 1000,
        max_bytes: 1 << 20,
        timeout: Duration::from_secs(1),
    });
    let cases = [
        ("raw_200b", Format::Raw, SourceFormat::Raw, 0.0, None),
        ("cri_200b", Format::Cri, SourceFormat::Cri, 0.0, None),
        (
            "cri_java_multiline",
            Format::Cri,
            SourceFormat::Cri,
            0.2,
            Some(java),
        ),
    ];
    let mut group = c.benchmark_group("chain");
    for (name, generated, format, fraction, rules) in cases {
        let data = input(generated, fraction);
        let mut out = Vec::with_capacity(2 * data.len());
        group.throughput(Throughput::Bytes(data.len() as u64));
        group.bench_function(name, |b| {
            b.iter(|| {
                out.clear();
                let mut records = Records::from_parts(
                    Framer::new(256 << 10, 0),
                    Decoder::new(format, 256 << 10, std::time::Duration::from_secs(5)),
                    rules.clone().map(Multiline::new),
                );
                let mut cut = CutStats::default();
                let mut enc = EncodeStats::default();
                let now = Instant::now();
                for chunk in data.chunks(CHUNK) {
                    records.push(chunk, now, &mut cut, &mut |e: Entry<'_>| {
                        encode(&mut out, &e, &fields, &mut enc)
                    });
                }
                records.finish(None, &mut cut, &mut |e: Entry<'_>| {
                    encode(&mut out, &e, &fields, &mut enc)
                });
                black_box(enc.records)
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(4));
    targets = framing, cri_decode, ndjson_encode, chain
}
criterion_main!(benches);
