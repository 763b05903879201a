//! Seeded log workloads.
//!
//! A *record* is what a collector should deliver as one output record: a single log line, or a
//! Java or Python stack trace of several lines. Every record starts with `seq=<stream>:<n> `,
//! so delivery can be checked even for collectors that report no offsets. Records are encoded
//! as raw, CRI or docker json-file lines: CRI output follows containerd (one `F` line per
//! message line, lines longer than [`CRI_SPLIT`] split into `P` pieces), docker output follows
//! json-file (split at the same size).
//!
//! Two ways to write:
//! - [`FileWriter`] appends records to one file and returns, for each, the [`Expected`] record
//!   (offset and exact message) — used by the collector's end-to-end tests;
//! - [`plan`] pre-generates a whole workload ([`Spec`]: many files, sizes, formats, traces) in
//!   memory, and [`play`] writes it as fast as allowed, rotating or deleting files as the spec
//!   says — used by the benchmark harness, so every collector sees exactly the same bytes.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Where containerd and docker split long lines.
pub const CRI_SPLIT: usize = 16 * 1024;

/// Marker in the head line of records sampled for latency.
pub const LATENCY_MARK: &[u8] = b"lat! ";

/// Line format of a generated file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Plain lines.
    Raw,
    /// Kubernetes CRI.
    Cri,
    /// Docker json-file.
    Docker,
}

/// Which kind of stack trace multi-line records are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trace {
    /// Java: exception header, `\tat` frames, `Caused by:`.
    Java,
    /// Python: `Traceback (most recent call last):`, indented frames, `SomeError: …`.
    Python,
}

/// A small, fast, seeded generator (SplitMix64): reproducible across platforms and runs.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// `true` with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        let unit = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        unit < p
    }
}

/// What records look like.
#[derive(Debug, Clone)]
pub struct Shape {
    /// Shortest single-line record, in bytes.
    pub line_min: usize,
    /// Longest single-line record (other than long lines), in bytes.
    pub line_max: usize,
    /// Fraction of records that are stack traces.
    pub multiline_fraction: f64,
    /// Kind of stack trace.
    pub trace: Trace,
    /// Fraction of records that are long lines (over [`CRI_SPLIT`], split by the runtime).
    pub long_fraction: f64,
}

impl Default for Shape {
    fn default() -> Self {
        Self {
            line_min: 200,
            line_max: 200,
            multiline_fraction: 0.0,
            trace: Trace::Java,
            long_fraction: 0.0,
        }
    }
}

/// Generates the message lines of record `seq` of stream `stream`; `mark` adds the latency
/// marker to its head line.
pub fn record_lines(
    rng: &mut Rng,
    stream: &str,
    seq: u64,
    shape: &Shape,
    mark: bool,
) -> Vec<String> {
    let head = if mark {
        format!(
            "seq={stream}:{seq} {}",
            String::from_utf8_lossy(LATENCY_MARK)
        )
    } else {
        format!("seq={stream}:{seq} ")
    };
    if rng.chance(shape.multiline_fraction) {
        return match shape.trace {
            Trace::Java => java_trace(rng, &head),
            Trace::Python => python_trace(rng, &head),
        };
    }
    let len = if rng.chance(shape.long_fraction) {
        CRI_SPLIT + 1 + rng.below(2 * CRI_SPLIT as u64) as usize
    } else {
        let span = shape.line_max.saturating_sub(shape.line_min) as u64;
        shape.line_min + rng.below(span + 1) as usize
    };
    // The timestamp first, as loggers print it, so that multiline rules (and `mode: auto`)
    // see records begin the way real ones do; the sequence token follows it.
    let mut line = String::from(TIMESTAMP);
    line.push_str(&head);
    let head_len = line.len();
    line.push_str("INFO [worker] c.e.Api - ");
    const WORDS: [&str; 8] = [
        "user",
        "login",
        "ok",
        "latency_ms=12",
        "path=/api/v1/items",
        "status=200",
        "bytes=512",
        "trace=ab12cd34",
    ];
    while line.len() < len {
        line.push_str(WORDS[rng.below(WORDS.len() as u64) as usize]);
        line.push(' ');
    }
    // Never cut into the head: the sequence number must survive whole.
    line.truncate(len.max(head_len));
    vec![line]
}

/// How every record's first line begins.
const TIMESTAMP: &str = "2024-01-01 12:00:00.000 ";

/// The start regex of a record (what peers' multiline rules are given).
/// POSIX ERE, so that every peer's regex dialect takes it.
pub const RECORD_START: &str = "^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:";

fn java_trace(rng: &mut Rng, head: &str) -> Vec<String> {
    let frames = 3 + rng.below(12) as usize;
    let mut lines = vec![
        format!("{TIMESTAMP}{head}ERROR [main] c.e.Service - request failed"),
        "java.lang.IllegalStateException: connection reset".to_string(),
    ];
    for f in 0..frames {
        lines.push(format!(
            "\tat com.example.service.Handler{f}.handle(Handler{f}.java:{})",
            10 + f
        ));
    }
    if rng.chance(0.5) {
        lines.push("Caused by: java.io.IOException: broken pipe".to_string());
        lines.push("\tat java.base/sun.nio.ch.IOUtil.write(IOUtil.java:62)".to_string());
        lines.push(format!("\t... {frames} more"));
    }
    lines
}

fn python_trace(rng: &mut Rng, head: &str) -> Vec<String> {
    let frames = 2 + rng.below(8) as usize;
    let mut lines = vec![
        format!("{TIMESTAMP}{head}ERROR app.handlers: request failed"),
        "Traceback (most recent call last):".to_string(),
    ];
    for f in 0..frames {
        lines.push(format!(
            "  File \"/app/handlers/h{f}.py\", line {}, in handle",
            10 + f
        ));
        lines.push(format!("    result = step{f}(request)"));
    }
    lines.push("ValueError: invalid literal for int() with base 10: 'x'".to_string());
    lines
}

/// One record a collector must deliver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    /// The file it was written to.
    pub file: PathBuf,
    /// Byte offset of its first byte in the file.
    pub offset: u64,
    /// `stdout`/`stderr` for CRI and docker; `None` for raw.
    pub stream: Option<String>,
    /// The message after decoding and multiline joining.
    pub message: String,
}

/// Appends the encoding of a record's message lines to `out`; returns the number of physical
/// lines written.
pub fn encode_record(out: &mut Vec<u8>, format: Format, lines: &[String], stream: &str) -> u64 {
    let mut physical = 0;
    for line in lines {
        match format {
            Format::Raw => {
                out.extend_from_slice(line.as_bytes());
                out.push(b'\n');
                physical += 1;
            }
            Format::Cri => {
                let pieces = split(line.as_bytes(), CRI_SPLIT);
                let last = pieces.len() - 1;
                for (i, piece) in pieces.into_iter().enumerate() {
                    let tag = if i == last { "F" } else { "P" };
                    out.extend_from_slice(b"2024-01-01T12:00:00.123456789Z ");
                    out.extend_from_slice(stream.as_bytes());
                    out.push(b' ');
                    out.extend_from_slice(tag.as_bytes());
                    out.push(b' ');
                    out.extend_from_slice(piece);
                    out.push(b'\n');
                    physical += 1;
                }
            }
            Format::Docker => {
                let text = format!("{line}\n");
                for piece in split(text.as_bytes(), CRI_SPLIT) {
                    let piece = String::from_utf8_lossy(piece);
                    let json = serde_json::json!({"log": piece, "stream": stream, "time": "2024-01-01T12:00:00.123456789Z"});
                    out.extend_from_slice(json.to_string().as_bytes());
                    out.push(b'\n');
                    physical += 1;
                }
            }
        }
    }
    physical
}

/// Appends records to one file, keeping track of offsets.
#[derive(Debug)]
pub struct FileWriter {
    path: PathBuf,
    file: File,
    offset: u64,
    format: Format,
    buf: Vec<u8>,
}

impl FileWriter {
    /// Creates (or truncates) `path`.
    pub fn create(path: &Path, format: Format) -> io::Result<Self> {
        let file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(path)?;
        Ok(Self {
            path: path.to_path_buf(),
            file,
            offset: 0,
            format,
            buf: Vec::new(),
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes written so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Encodes a record (its message lines) into the internal buffer; call [`flush`] to write.
    /// Returns what the collector should deliver for it.
    ///
    /// [`flush`]: Self::flush
    pub fn add(&mut self, lines: &[String], stream: &str) -> Expected {
        let start = self.offset + self.buf.len() as u64;
        encode_record(&mut self.buf, self.format, lines, stream);
        Expected {
            file: self.path.clone(),
            offset: start,
            stream: (self.format != Format::Raw).then(|| stream.to_string()),
            message: lines.join("\n"),
        }
    }

    /// Writes what [`add`](Self::add) buffered, in one `write` call.
    pub fn flush(&mut self) -> io::Result<()> {
        self.file.write_all(&self.buf)?;
        self.offset += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }
}

/// Splits at `size` bytes (generated text is ASCII, so never inside a character).
fn split(bytes: &[u8], size: usize) -> Vec<&[u8]> {
    if bytes.is_empty() {
        return vec![bytes];
    }
    bytes.chunks(size).collect()
}

/// How files come and go while a workload is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Churn {
    /// Each stream is one file, written to the end.
    None,
    /// Every `bytes`, the file is renamed to `<name>.<k>` and a new one created (kubelet,
    /// logrotate); only the newest `keep` rotated files are kept.
    Rotate {
        /// Bytes per file before it rotates.
        bytes: u64,
        /// Rotated files kept; older ones are deleted.
        keep: usize,
    },
    /// Every `bytes`, the file is closed and a new one (`<name>-<k>.log`) started; the closed
    /// file is deleted `delete_after` later (short-lived pods).
    ShortLived {
        /// Bytes per file.
        bytes: u64,
        /// Delay between closing and deleting a file.
        delete_after: Duration,
    },
}

/// A whole workload.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Number of streams (files written concurrently).
    pub files: usize,
    /// Total bytes written, over all files.
    pub total_bytes: u64,
    /// Line format.
    pub format: Format,
    /// Record shape.
    pub shape: Shape,
    /// Total write rate in bytes per second; `None` writes as fast as possible.
    pub rate: Option<u64>,
    /// With a rate: each file gets its share of a step's bytes per write (e.g. 10 ms: a
    /// hundred writes a second to each file, as pods write), instead of 64 KiB chunks.
    pub step: Option<Duration>,
    /// Rotation or short-lived files.
    pub churn: Churn,
    /// Every `sample_every`-th record carries the latency marker.
    pub sample_every: u64,
    /// Seed of the generator.
    pub seed: u64,
}

/// One stream's pre-generated bytes.
#[derive(Debug)]
pub struct StreamPlan {
    /// Stream name (`s<i>`), also the file's base name.
    pub name: String,
    /// Encoded bytes.
    pub data: Vec<u8>,
    /// Offset of each record's first byte in `data`.
    pub records: Vec<u32>,
    /// Records sampled for latency: (offset in `data`, sequence number).
    pub samples: Vec<(u32, u64)>,
    /// Physical lines in `data`.
    pub lines: u64,
    /// Lines of the records' messages (a multi-line record counts each of its lines; a line
    /// the runtime split into pieces counts once).
    pub message_lines: u64,
}

/// A pre-generated workload.
#[derive(Debug)]
pub struct Plan {
    /// The spec it was made from.
    pub spec: Spec,
    /// One entry per stream.
    pub streams: Vec<StreamPlan>,
}

impl Plan {
    /// Total bytes.
    pub fn bytes(&self) -> u64 {
        self.streams.iter().map(|s| s.data.len() as u64).sum()
    }

    /// Total records (what a collector that joins multi-line records delivers).
    pub fn records(&self) -> u64 {
        self.streams.iter().map(|s| s.records.len() as u64).sum()
    }

    /// Total physical lines (what a line-oriented collector delivers).
    pub fn lines(&self) -> u64 {
        self.streams.iter().map(|s| s.lines).sum()
    }

    /// Total lines of the messages (what a collector writing each decoded message as text
    /// delivers).
    pub fn message_lines(&self) -> u64 {
        self.streams.iter().map(|s| s.message_lines).sum()
    }

    /// Records per stream, indexed like the `s<i>` stream names.
    pub fn records_per_stream(&self) -> Vec<u64> {
        self.streams
            .iter()
            .map(|s| s.records.len() as u64)
            .collect()
    }
}

/// Pre-generates `spec` in memory.
pub fn plan(spec: &Spec) -> Plan {
    let files = spec.files.max(1);
    let per_stream = (spec.total_bytes / files as u64).max(1);
    let streams = (0..files)
        .map(|i| {
            let name = format!("s{i}");
            let mut rng = Rng::new(spec.seed.wrapping_mul(1_000_003).wrapping_add(i as u64));
            let mut data = Vec::with_capacity(per_stream as usize + 64 * 1024);
            let mut records = Vec::new();
            let mut samples = Vec::new();
            let mut lines = 0;
            let mut message_lines = 0;
            let mut seq = 0u64;
            let stream = if spec.format == Format::Raw {
                ""
            } else {
                "stdout"
            };
            while (data.len() as u64) < per_stream {
                let offset = data.len() as u32;
                let mark =
                    spec.sample_every > 0 && seq % spec.sample_every == spec.sample_every / 2;
                let message = record_lines(&mut rng, &name, seq, &spec.shape, mark);
                lines += encode_record(&mut data, spec.format, &message, stream);
                message_lines += message.len() as u64;
                records.push(offset);
                if mark {
                    samples.push((offset, seq));
                }
                seq += 1;
            }
            StreamPlan {
                name,
                data,
                records,
                samples,
                lines,
                message_lines,
            }
        })
        .collect();
    Plan {
        spec: spec.clone(),
        streams,
    }
}

/// What happened while a plan was written.
#[derive(Debug)]
pub struct Played {
    /// When the first byte was written.
    pub started: Instant,
    /// When the last byte was written.
    pub finished: Instant,
    /// Bytes written.
    pub bytes: u64,
    /// Files created.
    pub files_created: u64,
    /// Rotations (renames) done.
    pub rotations: u64,
    /// Files deleted.
    pub deleted: u64,
    /// For each latency-sampled record: (stream index, sequence number, when its bytes were
    /// handed to `write`).
    pub sample_times: Vec<(u32, u64, Instant)>,
}

/// Bytes written per `write` call: large enough for page-cache speed, small enough that files
/// grow concurrently.
const CHUNK: usize = 64 * 1024;

struct Writing {
    file: Option<File>,
    path: PathBuf,
    /// Bytes of `data` written.
    pos: usize,
    /// Bytes written to the current physical file.
    in_file: u64,
    /// Physical files started for this stream.
    segment: u64,
    /// Next latency sample to time.
    next_sample: usize,
}

/// Creates the (empty) files of a plan without churn, so that [`play`] times writing, not
/// the filesystem's file creation (10,000 files cost seconds of inode allocation on ext4).
/// Plans that rotate or use short-lived files create files as part of the workload.
///
/// Each file also gets its space allocated beyond its end (`FALLOC_FL_KEEP_SIZE`: the size
/// stays 0 and grows with the writes, as a collector sees it): on tmpfs that allocates the
/// pages, and writing into them costs the writer less than half of what allocating them on
/// the way does — CPU the writer would otherwise take from the collector on the same cores.
/// Best effort: a filesystem without `fallocate` just writes as usual.
pub fn prepare(plan: &Plan, dir: &Path) -> io::Result<()> {
    if plan.spec.churn != Churn::None {
        return Ok(());
    }
    for s in &plan.streams {
        let file = File::create(dir.join(format!("{}.log", s.name)))?;
        let _ = rustix::fs::fallocate(
            &file,
            rustix::fs::FallocateFlags::KEEP_SIZE,
            0,
            s.data.len() as u64,
        );
    }
    Ok(())
}

/// Writes `plan` into `dir`; `progress` counts bytes written, for progress lines.
pub fn play(plan: &Plan, dir: &Path, progress: &AtomicU64) -> io::Result<Played> {
    let spec = &plan.spec;
    let mut writing: Vec<Writing> = plan
        .streams
        .iter()
        .map(|s| Writing {
            file: None,
            path: dir.join(format!("{}.log", s.name)),
            pos: 0,
            in_file: 0,
            segment: 0,
            next_sample: 0,
        })
        .collect();
    let mut deletions: VecDeque<(Instant, PathBuf)> = VecDeque::new();
    let mut played = Played {
        started: Instant::now(),
        finished: Instant::now(),
        bytes: 0,
        files_created: 0,
        rotations: 0,
        deleted: 0,
        sample_times: Vec::new(),
    };
    let segment_bytes = match spec.churn {
        Churn::None => u64::MAX,
        Churn::Rotate { bytes, .. } | Churn::ShortLived { bytes, .. } => bytes.max(1),
    };
    // Bytes per write when the case writes in steps: each file's share of a step.
    let step_bytes = spec.step.zip(spec.rate).map(|(step, rate)| {
        ((rate as f64 * step.as_secs_f64() / plan.streams.len().max(1) as f64) as usize).max(1)
    });
    let mut first = true;
    let mut active = plan.streams.len();
    while active > 0 {
        active = 0;
        for (i, (stream, w)) in plan.streams.iter().zip(writing.iter_mut()).enumerate() {
            if w.pos >= stream.data.len() {
                continue;
            }
            active += 1;
            if w.file.is_none() {
                if let Churn::ShortLived { .. } = spec.churn {
                    w.path = dir.join(format!("{}-{}.log", stream.name, w.segment));
                }
                w.file = Some(OpenOptions::new().create(true).append(true).open(&w.path)?);
                w.in_file = 0;
                w.segment += 1;
                played.files_created += 1;
            }
            // End the chunk at a record boundary, within CHUNK bytes and the segment, but
            // always write at least one record.
            let room = (segment_bytes - w.in_file).min(step_bytes.unwrap_or(CHUNK) as u64) as usize;
            let limit = w.pos + room;
            // Record starts at or before `pos`, and at or before `limit`.
            let before = stream.records.partition_point(|&r| (r as usize) <= w.pos);
            let within = stream.records.partition_point(|&r| (r as usize) <= limit);
            let end = if stream.data.len() <= limit {
                stream.data.len()
            } else if within > before {
                // The last record start in (pos, limit]: whole records only.
                stream.records[within - 1] as usize
            } else {
                // One record longer than the room: write it whole.
                stream
                    .records
                    .get(before)
                    .map_or(stream.data.len(), |&r| r as usize)
            };
            let chunk = &stream.data[w.pos..end];
            let now = Instant::now();
            if first {
                played.started = now;
                first = false;
            }
            while let Some(&(offset, seq)) = stream.samples.get(w.next_sample) {
                if (offset as usize) >= end {
                    break;
                }
                played.sample_times.push((i as u32, seq, now));
                w.next_sample += 1;
            }
            if let Some(file) = w.file.as_mut() {
                file.write_all(chunk)?;
            }
            w.pos = end;
            w.in_file += chunk.len() as u64;
            played.bytes += chunk.len() as u64;
            progress.fetch_add(chunk.len() as u64, Ordering::Relaxed);
            if w.in_file >= segment_bytes && w.pos < stream.data.len() {
                w.file = None;
                match spec.churn {
                    Churn::Rotate { keep, .. } => {
                        let k = w.segment;
                        std::fs::rename(&w.path, dir.join(format!("{}.log.{k}", stream.name)))?;
                        played.rotations += 1;
                        if k > keep as u64 {
                            let old = dir.join(format!("{}.log.{}", stream.name, k - keep as u64));
                            if std::fs::remove_file(old).is_ok() {
                                played.deleted += 1;
                            }
                        }
                    }
                    Churn::ShortLived { delete_after, .. } => {
                        deletions.push_back((Instant::now() + delete_after, w.path.clone()));
                    }
                    Churn::None => {}
                }
            }
            if w.pos >= stream.data.len()
                && let Churn::ShortLived { delete_after, .. } = spec.churn
            {
                w.file = None;
                deletions.push_back((Instant::now() + delete_after, w.path.clone()));
            }
            if let Some(rate) = spec.rate {
                let due =
                    played.started + Duration::from_secs_f64(played.bytes as f64 / rate as f64);
                let now = Instant::now();
                if due > now {
                    std::thread::sleep(due - now);
                }
            }
            while deletions
                .front()
                .is_some_and(|(at, _)| *at <= Instant::now())
            {
                if let Some((_, path)) = deletions.pop_front()
                    && std::fs::remove_file(path).is_ok()
                {
                    played.deleted += 1;
                }
            }
        }
    }
    played.finished = Instant::now();
    for (at, path) in deletions {
        let now = Instant::now();
        if at > now {
            std::thread::sleep(at - now);
        }
        if std::fs::remove_file(path).is_ok() {
            played.deleted += 1;
        }
    }
    Ok(played)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_is_reproducible() {
        let shape = Shape {
            multiline_fraction: 0.3,
            ..Shape::default()
        };
        let a: Vec<_> = (0..50)
            .map(|i| record_lines(&mut Rng::new(7 + i), "f1", i, &shape, false))
            .collect();
        let b: Vec<_> = (0..50)
            .map(|i| record_lines(&mut Rng::new(7 + i), "f1", i, &shape, false))
            .collect();
        assert_eq!(a, b);
        assert!(
            a.iter().any(|r| r.len() > 1),
            "some records are stack traces"
        );
        assert!(
            a.iter()
                .all(|r| r[0].starts_with(TIMESTAMP)
                    && r[0][TIMESTAMP.len()..].starts_with("seq=f1:"))
        );
        // Only a record's first line begins like RECORD_START (a date and an hour).
        let starts = |l: &str| {
            let b = l.as_bytes();
            b.len() > 13
                && b[..4].iter().all(u8::is_ascii_digit)
                && b[4] == b'-'
                && b[10] == b' '
                && b[11..13].iter().all(u8::is_ascii_digit)
        };
        assert!(
            a.iter()
                .all(|r| starts(&r[0]) && r[1..].iter().all(|l| !starts(l)))
        );
        let python = Shape {
            multiline_fraction: 1.0,
            trace: Trace::Python,
            ..Shape::default()
        };
        let trace = record_lines(&mut Rng::new(1), "p", 0, &python, true);
        assert!(trace[0].starts_with(&format!("{TIMESTAMP}seq=p:0 lat! ")));
        assert_eq!(trace[1], "Traceback (most recent call last):");
    }

    #[test]
    fn writer_offsets_point_at_each_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        let mut w = FileWriter::create(&path, Format::Cri).unwrap();
        let long = "x".repeat(CRI_SPLIT + 10);
        let e1 = w.add(&["one".to_string()], "stdout");
        let e2 = w.add(&[long.clone(), "two".to_string()], "stderr");
        w.flush().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(e1.offset, 0);
        assert!(
            text[e2.offset as usize..].starts_with("2024-01-01T12:00:00.123456789Z stderr P xxx")
        );
        assert_eq!(e2.message, format!("{long}\ntwo"));
        assert_eq!(
            text.lines().count(),
            4,
            "one F line, a P and an F for the long line, one F"
        );
    }

    fn spec(churn: Churn) -> Spec {
        Spec {
            files: 3,
            total_bytes: 300_000,
            format: Format::Raw,
            shape: Shape {
                line_min: 100,
                line_max: 300,
                multiline_fraction: 0.1,
                ..Shape::default()
            },
            rate: None,
            step: None,
            churn,
            sample_every: 50,
            seed: 9,
        }
    }

    #[test]
    fn a_plan_is_written_whole_and_reproducibly() {
        let a = plan(&spec(Churn::None));
        let b = plan(&spec(Churn::None));
        assert_eq!(a.streams[1].data, b.streams[1].data);
        assert!(a.bytes() >= 300_000 && a.records() > 0 && a.lines() > a.records());
        let dir = tempfile::tempdir().unwrap();
        let progress = AtomicU64::new(0);
        let played = play(&a, dir.path(), &progress).unwrap();
        assert_eq!(played.bytes, a.bytes());
        assert_eq!(progress.load(Ordering::Relaxed), a.bytes());
        for s in &a.streams {
            assert_eq!(
                std::fs::read(dir.path().join(format!("{}.log", s.name))).unwrap(),
                s.data
            );
        }
        let samples: usize = a.streams.iter().map(|s| s.samples.len()).sum();
        assert_eq!(played.sample_times.len(), samples);
    }

    #[test]
    fn rotation_keeps_records_whole_and_deletes_old_files() {
        let p = plan(&spec(Churn::Rotate {
            bytes: 20_000,
            keep: 2,
        }));
        let dir = tempfile::tempdir().unwrap();
        let played = play(&p, dir.path(), &AtomicU64::new(0)).unwrap();
        assert!(played.rotations >= 12);
        assert!(played.deleted > 0);
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("s0."))
            .collect();
        names.sort();
        assert_eq!(
            names.len(),
            3,
            "the live file and two rotated ones: {names:?}"
        );
        // Every file starts with a record head.
        for n in &names {
            let text = std::fs::read_to_string(dir.path().join(n)).unwrap();
            assert!(
                text.starts_with(&format!("{TIMESTAMP}seq=s0:")),
                "{n} starts mid-record"
            );
        }
    }

    #[test]
    fn short_lived_files_are_deleted_after_the_delay() {
        let p = plan(&spec(Churn::ShortLived {
            bytes: 50_000,
            delete_after: Duration::from_millis(20),
        }));
        let dir = tempfile::tempdir().unwrap();
        let played = play(&p, dir.path(), &AtomicU64::new(0)).unwrap();
        assert!(played.files_created >= 6);
        assert_eq!(played.deleted, played.files_created);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
