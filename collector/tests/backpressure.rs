//! Backpressure: a sink that stops accepting data (stdout into a pipe nobody reads) stops the
//! reading instead of buffering — memory stays bounded and nothing is dropped — and once the
//! sink drains, every record arrives, in order.
#![allow(clippy::unwrap_used, reason = "tests fail loudly on broken invariants")]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;
use std::time::Duration;

use common::Collector;

const LINES: usize = 1_500_000;
const LINE: &str = "a line of about one hundred bytes, padded so that it is exactly that long, give or take ......";

#[test]
fn a_stalled_sink_stops_reading_without_dropping_or_growing() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("logs")).unwrap();
    let config = format!(
        r#"data_dir: {dir}/data
api:
  listen: 127.0.0.1:{{port}}
reader:
  chunk_size: 256KiB
  buffer_memory: 8MiB
pipeline:
  queue_batches: 4
  batch_size: 256KiB
sources:
  - name: raw
    paths: ["{dir}/logs/*.log"]
sinks:
  - name: out
    type: stdout
"#,
        dir = root.display()
    );
    let mut collector = Collector::start_with_stdout(root, &config, Stdio::piped());
    let idle = collector.rss();
    let mut file =
        std::io::BufWriter::new(std::fs::File::create(root.join("logs/big.log")).unwrap());
    for i in 0..LINES {
        writeln!(file, "{i:08} {LINE}").unwrap();
    }
    file.flush().unwrap();
    let written = (LINES * (9 + LINE.len() + 1)) as f64;

    // Nobody reads stdout: the pipe fills, then the queues, then the buffer pool; reading stops.
    std::thread::sleep(Duration::from_secs(2));
    let read_before = collector.metric("ringtail_read_bytes_total{source=\"raw\"}");
    std::thread::sleep(Duration::from_millis(500));
    let read_after = collector.metric("ringtail_read_bytes_total{source=\"raw\"}");
    assert!(read_before > 0.0);
    assert!(
        read_before < written / 2.0,
        "reading should stop early, but {read_before} of {written} bytes were read"
    );
    assert_eq!(
        read_before, read_after,
        "reading waits while the sink is stalled"
    );
    let growth = collector.peak_rss().saturating_sub(idle);
    eprintln!("RSS growth while the sink is stalled: {} MiB", growth >> 20);
    assert!(
        growth < 48 << 20,
        "RSS grew by {} MiB while {} MiB wait on disk",
        growth >> 20,
        (written as u64) >> 20
    );
    let (sink, healthy) = (
        collector.metric("ringtail_queue_depth{queue=\"sink:out\"}"),
        collector.get("/healthz").unwrap(),
    );
    assert!(sink >= 1.0, "the sink's queue is full: {sink}");
    assert!(
        healthy.contains("\"status\":\"ok\""),
        "a slow sink is not an unhealthy one: {healthy}"
    );

    // Drain the pipe: everything arrives, in order, exactly once.
    let stdout = collector.child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut next = 0usize;
        for line in BufReader::new(stdout).lines() {
            let value: serde_json::Value = serde_json::from_str(&line.unwrap()).unwrap();
            let message = value["message"].as_str().unwrap();
            assert_eq!(message, format!("{next:08} {LINE}"), "record {next}");
            next += 1;
        }
        next
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while collector.metric("ringtail_sink_records_total{sink=\"out\"}") < LINES as f64 {
        assert!(
            std::time::Instant::now() < deadline,
            "not all records delivered\n{}",
            collector.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let (status, stderr) = collector.stop();
    assert!(status.success(), "{stderr}");
    assert_eq!(reader.join().unwrap(), LINES);
}
