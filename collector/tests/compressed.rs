//! Compressed rotations: kubelet's rotation (rename, reopen, gzip every rotated file but the
//! newest through `.gz.tmp`, keep `containerLogMaxFiles`) while ringtail is stopped — the
//! unread part of a log then exists only inside a `.gz` — and damaged or zstd archives.
//!
//! The rotation follows kubelet's container log manager (`pkg/kubelet/logs/
//! container_log_manager.go`: `cleanupUnusedLogs`, `removeExcessLogs`, `compressLog`,
//! `rotateLatestLog`) step by step; its names carry a timestamp with one-second resolution,
//! so the test's clock advances one second per rotation to rotate several times a second.

#![allow(clippy::unwrap_used, reason = "tests fail loudly on broken invariants")]

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{Collector, Delivered, file_sink_config, wait_delivered};

/// A container's log directory as kubelet manages it.
struct Kubelet {
    dir: PathBuf,
    /// `containerLogMaxFiles`.
    max_files: usize,
    /// The rotation clock, in seconds (names are `0.log.<YYYYMMDD-HHMMSS>`).
    clock: u64,
    stream: String,
    written: u64,
    /// Rotated files kubelet removed (`removeExcessLogs`).
    removed_files: usize,
}

impl Kubelet {
    fn new(dir: &Path, stream: &str, max_files: usize) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        Self {
            dir: dir.to_path_buf(),
            max_files,
            clock: 0,
            stream: stream.to_string(),
            written: 0,
            removed_files: 0,
        }
    }

    fn live(&self) -> PathBuf {
        self.dir.join("0.log")
    }

    /// The runtime writes `n` CRI lines to the live log (created if it was rotated away).
    fn write(&mut self, n: u64) {
        let mut text = String::new();
        for i in self.written..self.written + n {
            text.push_str(&format!(
                "2026-12-06T11:00:00.{i:09}Z stdout F {} {i:08} {}\n",
                self.stream,
                "k".repeat(60)
            ));
        }
        self.written += n;
        common::append(&self.live(), &text);
    }

    /// Rotated files (`0.log.*`), sorted as kubelet sorts them (oldest first).
    fn rotated(&self) -> Vec<PathBuf> {
        let mut logs: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("0.log."))
            })
            .collect();
        logs.sort();
        logs
    }

    /// kubelet's `rotateLog`.
    fn rotate(&mut self) {
        // cleanupUnusedLogs: compressions in progress, and originals whose `.gz` exists.
        let mut logs = Vec::new();
        for log in self.rotated() {
            let name = log.to_string_lossy().to_string();
            let gz = PathBuf::from(format!("{name}.gz"));
            if name.ends_with(".tmp") || gz.exists() {
                std::fs::remove_file(&log).unwrap();
            } else {
                logs.push(log);
            }
        }
        // removeExcessLogs: keep MaxFiles-2 rotated files, removing the oldest.
        let keep = self.max_files.saturating_sub(2);
        while logs.len() > keep {
            let old = logs.remove(0);
            self.removed_files += 1;
            std::fs::remove_file(old).unwrap();
        }
        // compressLog every rotated file not compressed yet.
        for log in logs
            .iter()
            .filter(|l| !l.to_string_lossy().ends_with(".gz"))
        {
            let data = std::fs::read(log).unwrap();
            let tmp = PathBuf::from(format!("{}.gz.tmp", log.display()));
            let mut gz = flate2::write::GzEncoder::new(
                std::fs::File::create(&tmp).unwrap(),
                flate2::Compression::default(),
            );
            gz.write_all(&data).unwrap();
            gz.finish().unwrap().sync_all().unwrap();
            std::fs::rename(&tmp, format!("{}.gz", log.display())).unwrap();
            std::fs::remove_file(log).unwrap();
        }
        // rotateLatestLog: rename the live log; the runtime reopens `0.log` on its next write.
        self.clock += 1;
        let (h, m, s) = (
            11 + self.clock / 3600,
            self.clock / 60 % 60,
            self.clock % 60,
        );
        let rotated = self.dir.join(format!("0.log.20261206-{h:02}{m:02}{s:02}"));
        if self.live().exists() {
            std::fs::rename(self.live(), rotated).unwrap();
        }
    }

    /// Writes for `duration`: `lines` every 10 ms, rotating every `rotate_every`.
    fn run(&mut self, duration: Duration, lines: u64, rotate_every: Duration) {
        let start = Instant::now();
        let mut next_rotation = start + rotate_every;
        while start.elapsed() < duration {
            self.write(lines);
            if Instant::now() >= next_rotation {
                self.rotate();
                next_rotation += rotate_every;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn expected(&self) -> BTreeMap<String, u64> {
        BTreeMap::from([(self.stream.clone(), self.written)])
    }

    fn compressed(&self) -> usize {
        self.rotated()
            .iter()
            .filter(|p| p.to_string_lossy().ends_with(".gz"))
            .count()
    }
}

fn config(dir: &Path) -> String {
    file_sink_config(dir, "", "pods", "pods/*/*/*.log", "json")
        .replace("    paths:", "    format: cri\n    paths:")
}

/// ringtail stopped (SIGTERM, or SIGKILL) for several rotations: the lines it had not read
/// are inside `.gz` files when it starts again.
fn stopped_across_rotations(kill: bool) -> (Delivered, String) {
    let dir = tempfile::tempdir().unwrap();
    let container = dir.path().join("pods/default_web-0_uid/app");
    let config = config(dir.path());
    // Ten files kept: no file with unread lines is removed while ringtail is down (what
    // kubelet removes before ringtail can hold it open is gone for any collector).
    let mut kubelet = Kubelet::new(&container, "web", 10);
    let collector = Collector::start(dir.path(), &config);
    // Running: rotations and compression while ringtail reads (nothing read twice).
    kubelet.run(Duration::from_millis(1500), 40, Duration::from_millis(300));
    wait_delivered(
        &dir.path().join("out"),
        &kubelet.expected(),
        Duration::from_secs(30),
    );
    if kill {
        // Lines are written up to the kill: what is in flight then is re-sent at most.
        kubelet.write(200);
        collector.kill();
    } else {
        let (status, log) = collector.stop();
        assert!(status.success(), "{log}");
    }
    // Stopped: three rotations, so the lines written now end up in `.gz` files (and one
    // uncompressed rotation).
    let removed = kubelet.removed_files;
    kubelet.run(Duration::from_millis(1000), 40, Duration::from_millis(300));
    assert!(kubelet.compressed() >= 4, "{:?}", kubelet.rotated());
    assert_eq!(kubelet.removed_files, removed, "{:?}", kubelet.rotated());
    let collector = Collector::start(dir.path(), &config);
    kubelet.run(Duration::from_millis(600), 40, Duration::from_millis(300));
    let delivered = wait_delivered(
        &dir.path().join("out"),
        &kubelet.expected(),
        Duration::from_secs(30),
    );
    let missing = delivered.missing(&kubelet.expected());
    let (status, log) = collector.stop();
    assert!(status.success(), "{log}");
    assert!(
        missing.is_empty(),
        "{} of {} lines missing, first {:?}\n{log}",
        missing.len(),
        kubelet.written,
        &missing[..missing.len().min(5)]
    );
    assert!(
        log.contains("compressed rotation of a file the last run had not read to its end"),
        "the unread lines were read from inside a compressed rotation: {log}"
    );
    (delivered, log)
}

#[test]
fn kubelet_gzip_rotations_while_stopped_are_read_once() {
    let (delivered, log) = stopped_across_rotations(false);
    assert_eq!(delivered.duplicates(), 0, "{log}");
    assert_eq!(delivered.fragments, 0);
    // Order is per file: the stream spans many rotated files, read side by side after the
    // restart.
}

#[test]
fn kubelet_gzip_rotations_after_a_sigkill_are_read_once() {
    let (delivered, log) = stopped_across_rotations(true);
    // The file sink's journal says how far the output holds each file, ahead of the saved
    // checkpoints: reading resumes there, inside the compressed rotations too, and the batch
    // the kill interrupted is cut from the output.
    assert_eq!(delivered.duplicates(), 0, "{log}");
    assert_eq!(delivered.fragments, 0, "{log}");
}

/// The last run read part of `app.log`; while it was down the file was rotated and
/// compressed, and the archive cut short (a node that crashed mid-compression, a full disk).
#[test]
fn a_truncated_gzip_delivers_what_decodes_and_counts_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let config = file_sink_config(dir.path(), "", "logs", "logs/*.log", "json");
    let live = logs.join("app.log");
    common::append_lines(&live, "app", 0..100, 40);
    let collector = Collector::start(dir.path(), &config);
    let expected = BTreeMap::from([("app".to_string(), 100)]);
    wait_delivered(&dir.path().join("out"), &expected, Duration::from_secs(20));
    let (status, log) = collector.stop();
    assert!(status.success(), "{log}");
    // Down: 20,000 more lines, rotated, compressed, the archive cut in half.
    common::append_lines(&live, "app", 100..20_100, 40);
    let rotated = logs.join("app.log.1");
    std::fs::rename(&live, &rotated).unwrap();
    let data = std::fs::read(&rotated).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&data).unwrap();
    let gz = gz.finish().unwrap();
    std::fs::write(logs.join("app.log.1.gz"), &gz[..gz.len() / 2]).unwrap();
    std::fs::remove_file(&rotated).unwrap();
    // And a compression still in progress, which must not be read as text.
    std::fs::write(logs.join("app.log.2.gz.tmp"), &gz[..100]).unwrap();

    let collector = Collector::start(dir.path(), &config);
    let series = "ringtail_lost_bytes_total{source=\"logs\",reason=\"damaged_archive\"}";
    collector.wait_until(Duration::from_secs(20), "the damage counted", || {
        collector.metric(series) > 0.0
    });
    // What decoded is delivered: every line up to the damage but the one it cut.
    std::thread::sleep(Duration::from_millis(500));
    let lost = collector.metric(series);
    let (status, log) = collector.stop();
    assert!(status.success(), "{log}");
    // Whole lines only: the line the damage cut arrives as a shorter record.
    let out = std::fs::read_to_string(dir.path().join("out/out.ndjson")).unwrap();
    let pad = "x".repeat(40);
    let mut got: Vec<u64> = Vec::new();
    let mut partial = 0;
    for line in out.lines() {
        let message = line
            .split("\"message\":\"")
            .nth(1)
            .and_then(|m| m.split('"').next())
            .unwrap();
        match message
            .strip_prefix("app ")
            .and_then(|m| m.strip_suffix(&format!(" {pad}")))
            .and_then(|n| n.parse().ok())
        {
            Some(n) => got.push(n),
            None => partial += 1,
        }
    }
    assert!(partial <= 1, "at most the line the damage cut: {partial}");
    let mut sorted = got.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), got.len(), "no line twice: {log}");
    let last = *sorted.last().unwrap();
    assert!(
        last > 1_000 && last < 20_000,
        "about half of the archive decodes: last line {last}"
    );
    assert_eq!(
        sorted,
        (0..=last).collect::<Vec<_>>(),
        "every line up to the damage, in order, from the checkpoint on"
    );
    assert!(
        lost > 0.0 && lost <= gz.len() as f64 / 2.0,
        "lost {lost} of {}",
        gz.len() / 2
    );
    assert!(log.contains("is damaged"), "{log}");
}

/// A zstd rotation of a file rotated and compressed while ringtail was down is read whole,
/// with the path of the file it was compressed from.
#[test]
fn a_zstd_rotation_made_while_stopped_is_read_whole() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let config = file_sink_config(dir.path(), "", "logs", "logs/*.log", "json");
    common::append_lines(&logs.join("app.log"), "first", 0..10, 10);
    let collector = Collector::start(dir.path(), &config);
    let expected = BTreeMap::from([("first".to_string(), 10)]);
    wait_delivered(&dir.path().join("out"), &expected, Duration::from_secs(20));
    let (status, log) = collector.stop();
    assert!(status.success(), "{log}");
    // Down: a new file, written, rotated, compressed with zstd.
    std::fs::remove_file(logs.join("app.log")).unwrap();
    let mut text = String::new();
    for n in 0..5000u64 {
        text.push_str(&format!("second {n:08} zstd\n"));
    }
    let zst = zstd::encode_all(text.as_bytes(), 3).unwrap();
    std::fs::write(logs.join("app.log.1.zst"), zst).unwrap();
    let collector = Collector::start(dir.path(), &config);
    let expected = BTreeMap::from([("first".to_string(), 10), ("second".to_string(), 5000)]);
    let delivered = wait_delivered(&dir.path().join("out"), &expected, Duration::from_secs(20));
    let (status, log) = collector.stop();
    assert!(status.success(), "{log}");
    assert!(delivered.missing(&expected).is_empty(), "{log}");
    assert_eq!(delivered.duplicates(), 0);
    let out = std::fs::read_to_string(dir.path().join("out/out.ndjson")).unwrap();
    let path = logs.join("app.log.1");
    assert!(
        out.contains(&format!("\"{}\"", path.display())),
        "records name the file it was compressed from"
    );
}

/// Seconds the outage test keeps Kafka frozen: 60 by default (CI); the 10 minutes
/// with `RINGTAIL_OUTAGE_SECONDS=600`.
fn outage_seconds() -> u64 {
    std::env::var("RINGTAIL_OUTAGE_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60)
}

/// A long sink outage while kubelet rotates (every second) and compresses, keeping its
/// default 5 files: kubelet deletes rotations whose lines have not reached Kafka, and
/// ringtail — which opened every file when it appeared, and reads no further than its
/// bounded buffers allow — reads them from the descriptors it holds once Kafka is back.
/// Every line arrives; nothing is counted lost.
#[test]
fn a_long_kafka_outage_while_kubelet_rotates_and_compresses_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let broker = common::kafka::broker();
    let container = dir.path().join("pods/default_web-0_uid/app");
    let config = format!(
        "data_dir: {d}/data\napi:\n  listen: 127.0.0.1:{{port}}\nsources:\n  - name: pods\n    paths: [\"{d}/pods/*/*/*.log\"]\n    format: cri\nsinks:\n  - name: kafka\n    type: kafka\n    brokers: {b}\n    topic: logs\n    compression: zstd\n",
        d = dir.path().display(),
        b = broker.address
    );
    let mut kubelet = Kubelet::new(&container, "web", 5);
    let collector = Collector::start(dir.path(), &config);
    kubelet.run(Duration::from_secs(2), 20, Duration::from_secs(1));
    common::kafka::signal(&broker, rustix::process::Signal::STOP);
    let outage = outage_seconds();
    let removed = kubelet.removed_files;
    kubelet.run(Duration::from_secs(outage), 20, Duration::from_secs(1));
    let removed = kubelet.removed_files - removed;
    // Deleted files ringtail holds open (what kubelet removed unread is still reachable).
    let held = std::fs::read_dir(format!("/proc/{}/fd", collector.child.id()))
        .unwrap()
        .flatten()
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .filter(|target| {
            target.starts_with(dir.path()) && target.to_string_lossy().ends_with(" (deleted)")
        })
        .count();
    common::kafka::signal(&broker, rustix::process::Signal::CONT);
    kubelet.run(Duration::from_secs(2), 20, Duration::from_secs(1));
    let total = kubelet.written;
    collector.wait_until(Duration::from_secs(180), "every line sent", || {
        collector.metric("ringtail_kafka_delivered_total{sink=\"kafka\"}") >= total as f64
    });
    let lost = collector.metric_sum("ringtail_lost_bytes_total", "source=\"pods\"");
    let (status, log) = collector.stop();
    assert!(status.success(), "{log}");
    let messages =
        common::kafka::consume(&broker, &["logs"], total as usize, Duration::from_secs(5));
    common::kafka::write_values(&dir.path().join("consumed"), &messages);
    let delivered = Delivered::read(&dir.path().join("consumed"));
    let missing = delivered.missing(&kubelet.expected());
    assert!(
        missing.is_empty(),
        "{} of {total} lines missing, first {:?}",
        missing.len(),
        missing.first()
    );
    assert_eq!(lost, 0.0);
    assert!(
        removed >= 2,
        "kubelet removed rotations during the outage: {removed}"
    );
    println!(
        "Kafka frozen {outage} s while kubelet rotated every second (5 files kept; kubelet removed {removed} rotations meanwhile, some before ringtail read them): {total} lines, 0 lost, {} duplicates; {held} deleted files held open at the end of the outage",
        delivered.duplicates()
    );
}
