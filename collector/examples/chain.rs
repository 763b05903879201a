//! Runs one file's worth of records through framing → decoding → multiline → encoding, once,
//! for instruction counting under callgrind, which is repeatable on noisy machines where
//! wall-clock benchmarks are not:
//!
//! ```text
//! cargo build --release -p ringtail --example chain
//! valgrind --tool=callgrind target/release/examples/chain cri     # raw | cri | java
//! ```
#![allow(clippy::unwrap_used, reason = "a measurement tool")]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bench::workload::{self, FileWriter, Format, Rng, Shape};
use ringtail::cut::decode::Format as SourceFormat;
use ringtail::cut::decode::{Decoder, Entry};
use ringtail::cut::framing::Framer;
use ringtail::cut::multiline::{self, Multiline, MultilineRules};
use ringtail::cut::{CutStats, Records};
use ringtail::encode::{EncodeStats, FileFields, encode};

fn main() {
    let which = std::env::args().nth(1).unwrap_or_else(|| "cri".to_string());
    let (format, source_format, fraction) = match which.as_str() {
        "raw" => (Format::Raw, SourceFormat::Raw, 0.0),
        "java" => (Format::Cri, SourceFormat::Cri, 0.2),
        _ => (Format::Cri, SourceFormat::Cri, 0.0),
    };
    let dir = std::env::temp_dir().join(format!("ringtail-chain-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("input.log");
    let mut writer = FileWriter::create(&path, format).unwrap();
    let mut rng = Rng::new(42);
    let shape = Shape {
        multiline_fraction: fraction,
        ..Shape::default()
    };
    let mut seq = 0;
    while writer.offset() < 4 << 20 {
        for _ in 0..1000 {
            let lines = workload::record_lines(&mut rng, "chain", seq, &shape, false);
            writer.add(&lines, "stdout");
            seq += 1;
        }
        writer.flush().unwrap();
    }
    let data = std::fs::read(&path).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    let rules = (fraction > 0.0).then(|| {
        Arc::new(MultilineRules {
            mode: multiline::preset("java").unwrap(),
            end: None,
            max_lines: 1000,
            max_bytes: 1 << 20,
            timeout: Duration::from_secs(1),
        })
    });
    let fields = FileFields::new(
        Path::new("/var/log/pods/ns_pod_uid/app/0.log"),
        "pods",
        &BTreeMap::new(),
    );
    let mut records = Records::from_parts(
        Framer::new(256 << 10, 0),
        Decoder::new(source_format, 256 << 10, std::time::Duration::from_secs(5)),
        rules.map(Multiline::new),
    );
    let mut out = Vec::with_capacity(2 * data.len());
    let (mut cut, mut enc) = (CutStats::default(), EncodeStats::default());
    let now = Instant::now();
    for chunk in data.chunks(512 << 10) {
        records.push(chunk, now, &mut cut, &mut |e: Entry<'_>| {
            encode(&mut out, &e, &fields, &mut enc)
        });
    }
    records.finish(None, &mut cut, &mut |e: Entry<'_>| {
        encode(&mut out, &e, &fields, &mut enc)
    });
    println!(
        "{which}: {} bytes in, {} records, {} bytes out",
        data.len(),
        enc.records,
        out.len()
    );
}
