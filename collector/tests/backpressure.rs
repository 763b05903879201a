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
    let mut collector = Collector::start_with_stdout(root, &config, Stdio::piped);
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
    let peak = collector.peak_rss();
    eprintln!(
        "RSS while the sink is stalled: {} MiB at rest, {} MiB at the peak",
        idle >> 20,
        peak >> 20
    );
    // The configured buffers (8 MiB read, 1 MiB queued) plus what the process needs besides
    // buffered data (ringtail::config::MEMORY_OVERHEAD).
    let bound = (9 << 20) + ringtail::config::MEMORY_OVERHEAD as u64;
    assert!(
        peak < bound,
        "peak RSS {} MiB (bound {} MiB) while {} MiB wait on disk",
        peak >> 20,
        bound >> 20,
        (written as u64) >> 20
    );
    let (sink, healthy) = (
        collector.metric("ringtail_queue_depth{queue=\"sink:out\"}"),
        collector.get("/readyz").unwrap(),
    );
    assert!(sink >= 1.0, "the sink's queue is full: {sink}");
    assert!(
        healthy.contains("\"status\":\"ready\""),
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

/// `partial_timeout` counts once a file has nothing more to read: the rest of a line, written
/// within the timeout but while the sink was stalled, waits on disk behind a backlog far
/// longer than the timeout, and still joins its first half instead of being cut from it.
#[test]
fn a_line_whose_rest_waits_behind_a_stalled_sink_is_not_cut() {
    let run = written_in_two_parts_behind_a_stalled_sink(
        "text",
        "",
        "the first half of a line, ",
        "and its second half\n",
        |line| line.starts_with("the first") || line.starts_with("and its"),
    );
    assert_eq!(
        run.found,
        vec!["the first half of a line, and its second half".to_string()]
    );
    assert_eq!(run.lines, BUSY + 1);
    assert_eq!(run.partial_flushed, 0.0);
}

/// The multi-line `timeout` counts the same way: the rest of a stack trace, written within
/// the timeout but while the sink was stalled, joins its first line instead of being split
/// from it.
#[test]
fn a_stack_trace_whose_rest_waits_behind_a_stalled_sink_is_not_split() {
    let run = written_in_two_parts_behind_a_stalled_sink(
        "json",
        "    multiline:\n      preset: java\n      timeout: 1s\n",
        "java.lang.IllegalStateException: boom\n",
        "\tat shop.Cart.add(Cart.java:42)\n\tat shop.Main.main(Main.java:7)\n",
        |line| line.contains("boom") || line.contains("shop."),
    );
    let messages: Vec<String> = run
        .found
        .iter()
        .map(|line| {
            let record: serde_json::Value = serde_json::from_str(line).unwrap();
            record["message"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(
        messages,
        vec![
            "java.lang.IllegalStateException: boom\n\tat shop.Cart.add(Cart.java:42)\n\tat shop.Main.main(Main.java:7)"
                .to_string()
        ]
    );
    assert_eq!(run.lines, BUSY + 1);
    assert_eq!(run.partial_flushed, 0.0);
}

/// Lines of the busy file that stalls the sink in [`written_in_two_parts_behind_a_stalled_sink`].
const BUSY: usize = 200_000;

/// What [`written_in_two_parts_behind_a_stalled_sink`] saw.
struct TwoParts {
    /// The output lines the caller's filter picked, in order.
    found: Vec<String>,
    /// Output lines in all.
    lines: usize,
    /// `ringtail_partial_lines_flushed_total` of the source.
    partial_flushed: f64,
}

/// Writes `first` to a file and waits until it is read; stalls the stdout sink behind a busy
/// file; writes `rest` within a second (the source's `partial_timeout`); keeps the sink
/// stalled for 3 s; then drains it, and checks that every record arrived.
fn written_in_two_parts_behind_a_stalled_sink(
    encoding: &str,
    source_settings: &str,
    first: &str,
    rest: &str,
    pick: fn(&str) -> bool,
) -> TwoParts {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("logs")).unwrap();
    let config = format!(
        r#"data_dir: {dir}/data
api:
  listen: 127.0.0.1:{{port}}
reader:
  chunk_size: 64KiB
  buffer_memory: 1MiB
pipeline:
  queue_batches: 2
  batch_size: 64KiB
sources:
  - name: raw
    paths: ["{dir}/logs/*.log"]
    partial_timeout: 1s
{source_settings}sinks:
  - name: out
    type: stdout
    encoding: {encoding}
"#,
        dir = root.display()
    );
    let mut collector = Collector::start_with_stdout(root, &config, Stdio::piped);
    let two = root.join("logs/two.log");
    std::fs::write(&two, first).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while collector.metric("ringtail_read_bytes_total{source=\"raw\"}") < first.len() as f64 {
        assert!(
            std::time::Instant::now() < deadline,
            "{}",
            collector.stderr()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Nobody reads stdout: a busy file fills the pipe and the queues, and reading stops.
    let mut busy =
        std::io::BufWriter::new(std::fs::File::create(root.join("logs/busy.log")).unwrap());
    for i in 0..BUSY {
        writeln!(busy, "{i:08} {LINE}").unwrap();
    }
    busy.flush().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let mut file = std::fs::OpenOptions::new().append(true).open(&two).unwrap();
    file.write_all(rest.as_bytes()).unwrap();
    std::thread::sleep(Duration::from_secs(3));

    let stdout = collector.child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut found = Vec::new();
        let mut lines = 0usize;
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap();
            if pick(&line) {
                found.push(line);
            }
            lines += 1;
        }
        (found, lines)
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while collector.metric("ringtail_sink_records_total{sink=\"out\"}") < (BUSY + 1) as f64 {
        assert!(
            std::time::Instant::now() < deadline,
            "not all records delivered\n{}",
            collector.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let partial_flushed = collector.metric("ringtail_partial_lines_flushed_total{source=\"raw\"}");
    let (status, stderr) = collector.stop();
    assert!(status.success(), "{stderr}");
    let (found, lines) = reader.join().unwrap();
    TwoParts {
        found,
        lines,
        partial_flushed,
    }
}

/// `limits.memory`: 1,000 busy files and a sink that drains slowly keep the process under its
/// ceiling — reading waits for the sink — and every record still arrives.
#[test]
fn a_thousand_busy_files_and_a_slow_sink_stay_under_limits_memory() {
    const FILES: usize = 1000;
    const PER_FILE: usize = 1000;
    // The default buffers alone would take this process to ~180 MiB here.
    const CEILING: u64 = 128 << 20;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("logs")).unwrap();
    let config = format!(
        r#"data_dir: {dir}/data
api:
  listen: 127.0.0.1:{{port}}
limits:
  memory: {CEILING}
sources:
  - name: busy
    paths: ["{dir}/logs/*.log"]
sinks:
  - name: out
    type: stdout
"#,
        dir = root.display()
    );
    let mut collector = Collector::start_with_stdout(root, &config, Stdio::piped);
    // A slow reader of the sink's output: 64 KiB every 4 ms (~16 MB/s).
    let stdout = collector.child.stdout.take().unwrap();
    let drain = std::thread::spawn(move || {
        use std::io::Read;
        let mut stdout = stdout;
        let mut buf = vec![0u8; 64 << 10];
        let mut lines = 0usize;
        loop {
            match stdout.read(&mut buf) {
                Ok(0) | Err(_) => return lines,
                Ok(n) => lines += buf[..n].iter().filter(|&&b| b == b'\n').count(),
            }
            std::thread::sleep(Duration::from_millis(4));
        }
    });
    // Every file busy at once: written round-robin, as fast as possible.
    let mut files: Vec<std::io::BufWriter<std::fs::File>> = (0..FILES)
        .map(|i| {
            std::io::BufWriter::with_capacity(
                8 << 10,
                std::fs::File::create(root.join(format!("logs/f{i:04}.log"))).unwrap(),
            )
        })
        .collect();
    for n in 0..PER_FILE {
        for (i, f) in files.iter_mut().enumerate() {
            writeln!(f, "{i:04} {n:06} {LINE}").unwrap();
        }
    }
    for f in &mut files {
        f.flush().unwrap();
    }
    drop(files);
    let total = FILES * PER_FILE;
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while collector.metric("ringtail_sink_records_total{sink=\"out\"}") < total as f64 {
        assert!(
            std::time::Instant::now() < deadline,
            "not all records delivered\n{}",
            collector.stderr()
        );
        assert!(
            collector.rss() < CEILING,
            "RSS {} MiB over limits.memory",
            collector.rss() >> 20
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // The writer's buffers cut lines in two; a file's rest waits behind the backlog, which
    // is no reason to emit its first half on its own.
    assert_eq!(
        collector.metric("ringtail_partial_lines_flushed_total{source=\"busy\"}"),
        0.0,
        "lines were cut"
    );
    let peak = collector.peak_rss();
    eprintln!(
        "peak RSS with {FILES} busy files and a slow sink: {} MiB (limits.memory {} MiB)",
        peak >> 20,
        CEILING >> 20
    );
    assert!(peak < CEILING, "peak RSS {} MiB", peak >> 20);
    let (status, stderr) = collector.stop();
    assert!(status.success(), "{stderr}");
    assert_eq!(drain.join().unwrap(), total, "every record, none twice");
}

#[test]
fn deleted_files_hold_at_most_max_deleted_bytes_unread_and_the_rest_is_counted_and_named() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("logs")).unwrap();
    let config = format!(
        r#"data_dir: {dir}/data
api:
  listen: 127.0.0.1:{{port}}
reader:
  chunk_size: 64KiB
  buffer_memory: 1MiB
  max_deleted_bytes: 2MiB
pipeline:
  queue_batches: 2
  batch_size: 64KiB
sources:
  - name: raw
    paths: ["{dir}/logs/*.log"]
sinks:
  - name: out
    type: stdout
    encoding: text
"#,
        dir = root.display()
    );
    let mut collector = Collector::start_with_stdout(root, &config, Stdio::piped);
    // A slow sink: stdout is read at about 0.8 MB/s.
    let stdout = collector.child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        use std::io::Read;
        let mut stdout = stdout;
        let mut buf = [0u8; 4096];
        let mut total = 0usize;
        loop {
            match stdout.read(&mut buf) {
                Ok(0) | Err(_) => return total,
                Ok(n) => total += n,
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    });
    // Files of 1 MiB each are written, opened by ringtail and deleted, faster than the sink
    // takes them.
    const FILES: usize = 6;
    const PER_FILE: usize = 10_000;
    let line_len = 9 + LINE.len() + 1;
    for f in 0..FILES {
        let path = root.join(format!("logs/f{f}.log"));
        let mut file = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        for i in 0..PER_FILE {
            writeln!(file, "{i:08} {LINE}").unwrap();
        }
        file.flush().unwrap();
        drop(file);
        // Open by ringtail itself (a count of open files would also see the previous file,
        // kept open for a moment at its end).
        collector.wait_until(Duration::from_secs(10), "the file is open", || {
            std::fs::read_dir(format!("/proc/{}/fd", collector.child.id()))
                .into_iter()
                .flatten()
                .flatten()
                .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|target| target == path))
        });
        std::fs::remove_file(&path).unwrap();
        std::thread::sleep(Duration::from_millis(100));
    }
    let total = (FILES * PER_FILE * line_len) as f64;
    collector.wait_until(Duration::from_secs(20), "lost bytes counted", || {
        collector.metric("ringtail_lost_bytes_total{source=\"raw\",reason=\"deleted_limit\"}") > 0.0
    });
    let log = collector.stderr();
    assert!(
        log.contains("reader.max_deleted_bytes") && log.contains("/logs/f"),
        "the closed file is named with the bound: {log}"
    );
    // Drain: every byte is either delivered or counted as lost.
    collector.wait_until(Duration::from_secs(60), "deleted files drained", || {
        collector.metric("ringtail_deleted_files_open") == 0.0
    });
    std::thread::sleep(Duration::from_millis(500));
    let lost =
        collector.metric("ringtail_lost_bytes_total{source=\"raw\",reason=\"deleted_limit\"}");
    let (status, log) = collector.stop();
    assert!(status.success(), "{log}");
    let delivered = reader.join().unwrap() as f64;
    println!(
        "{FILES} deleted files of 1 MiB, bound 2 MiB, slow sink: {lost} bytes lost and counted, {delivered} delivered"
    );
    let slack = (FILES * line_len) as f64;
    assert!(
        lost + delivered >= total - slack && lost + delivered <= total + slack,
        "unaccounted bytes: lost {lost}, delivered {delivered} of {total}"
    );
    assert!(
        lost >= 1_000_000.0,
        "more than 2 MiB of 6 could not be held: lost {lost}"
    );
}
