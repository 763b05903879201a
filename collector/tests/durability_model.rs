//! Model-based durability test: proptest generates sequences of file operations (write,
//! rotate by rename, copytruncate, compress or delete a rotated file) and collector restarts and crashes
//! (SIGKILL), runs them against the real binary, and checks the output against a model of what
//! was written: every line delivered at least once, in order per file, and duplicates only in
//! sequences with a crash.
//!
//! Cases: `PROPTEST_CASES` (default 32, about 10 s here; each case starts the binary at
//! least once).

#![allow(clippy::unwrap_used, reason = "tests fail loudly on broken invariants")]

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{Collector, append_lines, wait_delivered};
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestRunner};

const FILES: usize = 3;

#[derive(Debug, Clone)]
enum Op {
    /// Append lines to the live file `a<k>.log` (creating it).
    Write { file: usize, lines: u64 },
    /// Rename the live file to `a<k>.log.<n>` (no longer matching the glob).
    Rotate { file: usize },
    /// Copy the live file to `a<k>.log.<n>` and truncate it to 0, as logrotate's copytruncate.
    CopyTruncate { file: usize },
    /// Delete the oldest rotated file of `a<k>`.
    DeleteRotated { file: usize },
    /// gzip the oldest uncompressed rotated file of `a<k>` as kubelet does (`.gz.tmp`,
    /// renamed to `.gz`, the original removed).
    Compress { file: usize },
    /// SIGTERM, then start again.
    Restart,
    /// SIGKILL, then start again.
    Crash,
}

fn op() -> impl Strategy<Value = Op> {
    let file = 0..FILES;
    prop_oneof![
        6 => (file.clone(), 1..400u64).prop_map(|(file, lines)| Op::Write { file, lines }),
        2 => file.clone().prop_map(|file| Op::Rotate { file }),
        1 => file.clone().prop_map(|file| Op::CopyTruncate { file }),
        1 => file.clone().prop_map(|file| Op::DeleteRotated { file }),
        1 => file.prop_map(|file| Op::Compress { file }),
        1 => Just(Op::Restart),
        1 => Just(Op::Crash),
    ]
}

/// What was written, and where.
#[derive(Default)]
struct Model {
    /// Lines per stream; a stream is one file's content from its creation (or truncation).
    expected: BTreeMap<String, u64>,
    /// Per logical file: the stream of the live file, if it exists.
    live: [Option<String>; FILES],
    /// Per logical file: rotated copies, oldest first.
    rotated: [Vec<PathBuf>; FILES],
    streams: u64,
    generation: u64,
    crashed: bool,
}

struct Run {
    dir: tempfile::TempDir,
    config: String,
    collector: Option<Collector>,
    model: Model,
}

impl Run {
    fn new() -> Run {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("logs")).unwrap();
        let config = format!(
            r#"
data_dir: {dir}/data
api:
  listen: 127.0.0.1:{{port}}
checkpoints:
  interval: 50ms
sources:
  - name: logs
    paths: ["{dir}/logs/*.log"]
sinks:
  - name: out
    type: file
    path: {dir}/out/out.ndjson
    sync_interval: 10ms
"#,
            dir = dir.path().display()
        );
        let collector = Some(Collector::start(dir.path(), &config));
        Run {
            dir,
            config,
            collector,
            model: Model::default(),
        }
    }

    fn logs(&self) -> PathBuf {
        self.dir.path().join("logs")
    }

    fn out(&self) -> PathBuf {
        self.dir.path().join("out")
    }

    fn collector(&self) -> &Collector {
        self.collector.as_ref().unwrap()
    }

    fn live_path(&self, file: usize) -> PathBuf {
        self.logs().join(format!("a{file}.log"))
    }

    fn rotated_path(&mut self, file: usize) -> PathBuf {
        self.model.generation += 1;
        self.logs()
            .join(format!("a{file}.log.{}", self.model.generation))
    }

    fn new_stream(&mut self, file: usize) -> String {
        self.model.streams += 1;
        format!("a{file}s{}", self.model.streams)
    }

    /// Waits until everything written so far is delivered.
    fn catch_up(&self) -> Result<(), TestCaseError> {
        let delivered = wait_delivered(&self.out(), &self.model.expected, Duration::from_secs(30));
        let missing = delivered.missing(&self.model.expected);
        prop_assert!(
            missing.is_empty(),
            "not delivered: {:?}\n{}",
            &missing[..missing.len().min(5)],
            self.collector().stderr()
        );
        Ok(())
    }

    fn apply(&mut self, op: &Op) -> Result<(), TestCaseError> {
        match *op {
            Op::Write { file, lines } => {
                let stream = match &self.model.live[file] {
                    Some(stream) => stream.clone(),
                    None => {
                        let stream = self.new_stream(file);
                        self.model.live[file] = Some(stream.clone());
                        stream
                    }
                };
                let path = self.live_path(file);
                let count = self.model.expected.entry(stream.clone()).or_insert(0);
                append_lines(&path, &stream, *count..*count + lines, 20);
                *count += lines;
            }
            Op::Rotate { file } => {
                if self.model.live[file].take().is_some() {
                    let to = self.rotated_path(file);
                    std::fs::rename(self.live_path(file), &to).unwrap();
                    self.model.rotated[file].push(to);
                }
            }
            Op::CopyTruncate { file } => {
                let lines = self.model.live[file]
                    .as_ref()
                    .map_or(0, |stream| self.model.expected[stream]);
                // An empty file cannot be seen to shrink; truncating it changes nothing.
                if lines > 0 {
                    // Lines written between the copy and the truncation would be in the copy
                    // only; logrotate's copytruncate loses them with any tailer. The model
                    // tests what a collector controls: the truncation is noticed and the new
                    // content read from 0.
                    self.catch_up()?;
                    let series = "ringtail_truncations_total{source=\"logs\"}";
                    let before = self.collector().metric(series);
                    let copy = self.rotated_path(file);
                    std::fs::copy(self.live_path(file), copy).unwrap();
                    std::fs::OpenOptions::new()
                        .write(true)
                        .open(self.live_path(file))
                        .unwrap()
                        .set_len(0)
                        .unwrap();
                    let deadline = Instant::now() + Duration::from_secs(10);
                    while self.collector().metric(series) <= before {
                        prop_assert!(Instant::now() < deadline, "truncation not noticed");
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    let stream = self.new_stream(file);
                    self.model.live[file] = Some(stream.clone());
                    self.model.expected.insert(stream, 0);
                }
            }
            Op::DeleteRotated { file } => {
                if !self.model.rotated[file].is_empty() {
                    // As logrotate does, not in the same instant as the rotation: the
                    // collector has had the file open since it was created. Its unread part
                    // is then read from the deleted file.
                    std::thread::sleep(Duration::from_millis(50));
                    let oldest = self.model.rotated[file].remove(0);
                    std::fs::remove_file(oldest).unwrap();
                }
            }
            Op::Compress { file } => {
                let oldest = self.model.rotated[file]
                    .iter()
                    .position(|p| p.extension().is_none_or(|e| e != "gz"));
                if let Some(i) = oldest {
                    // Not in the same instant as the rotation, as with deletions.
                    std::thread::sleep(Duration::from_millis(50));
                    let original = self.model.rotated[file][i].clone();
                    let tmp = PathBuf::from(format!("{}.gz.tmp", original.display()));
                    let gz = PathBuf::from(format!("{}.gz", original.display()));
                    let data = std::fs::read(&original).unwrap();
                    let mut encoder = flate2::write::GzEncoder::new(
                        std::fs::File::create(&tmp).unwrap(),
                        flate2::Compression::fast(),
                    );
                    encoder.write_all(&data).unwrap();
                    encoder.finish().unwrap();
                    std::fs::rename(&tmp, &gz).unwrap();
                    std::fs::remove_file(&original).unwrap();
                    self.model.rotated[file][i] = gz;
                }
            }
            Op::Restart => {
                let (status, log) = self.collector.take().unwrap().stop();
                prop_assert!(status.success(), "{log}");
                self.collector = Some(Collector::start(self.dir.path(), &self.config));
            }
            Op::Crash => {
                // A file opened in the last few milliseconds may not be in the checkpoints
                // yet; if it were also renamed away while ringtail is down, nothing would
                // find it. Crashes here come after that window.
                std::thread::sleep(Duration::from_millis(30));
                self.collector.take().unwrap().kill();
                self.model.crashed = true;
                self.collector = Some(Collector::start(self.dir.path(), &self.config));
            }
        }
        Ok(())
    }

    fn finish(mut self) -> Result<(), TestCaseError> {
        self.catch_up()?;
        let (status, log) = self.collector.take().unwrap().stop();
        prop_assert!(status.success(), "{log}");
        let delivered = common::Delivered::read(&self.out());
        let out_of_order = delivered.out_of_order();
        prop_assert!(out_of_order.is_empty(), "out of order: {out_of_order:?}");
        if !self.model.crashed {
            prop_assert_eq!(delivered.duplicates(), 0, "duplicates without a crash");
            prop_assert_eq!(delivered.fragments, 0);
        }
        Ok(())
    }
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(32)
}

#[test]
fn every_line_arrives_in_order_with_duplicates_only_after_a_crash() {
    let mut runner = TestRunner::new(ProptestConfig {
        cases: cases(),
        max_shrink_iters: 16,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let result = runner.run(&proptest::collection::vec(op(), 4..16), |ops| {
        let mut run = Run::new();
        for op in &ops {
            run.apply(op)?;
        }
        run.finish()
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// Found by the model (CI, 2026-11-22): a copytruncate copy made while ringtail ran was read
/// again at a clean restart as a file "rotated while ringtail was down".
#[test]
fn a_copytruncate_copy_made_while_running_is_not_read_again_after_a_clean_restart() {
    let mut run = Run::new();
    for op in [
        Op::Write { file: 0, lines: 72 },
        Op::CopyTruncate { file: 0 },
        Op::Rotate { file: 1 },
        Op::Restart,
    ] {
        run.apply(&op).unwrap();
    }
    run.finish().unwrap();
}

/// Found by the model (2026-12-06, against a file sink that cut its output back to the last
/// checkpoint after a crash): a file read, rotated and deleted just before a SIGKILL exists
/// only in what the sink wrote; whatever a restart does, those lines must stay delivered.
#[test]
fn lines_of_a_file_deleted_just_before_a_crash_stay_delivered() {
    let mut run = Run::new();
    for op in [
        Op::Write {
            file: 0,
            lines: 331,
        },
        Op::Rotate { file: 0 },
        Op::DeleteRotated { file: 0 },
        Op::Crash,
        Op::Write {
            file: 1,
            lines: 235,
        },
    ] {
        run.apply(&op).unwrap();
    }
    run.finish().unwrap();
}
