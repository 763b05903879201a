//! Seeded log workloads.
//!
//! A *record* is what a collector should deliver as one output record: a single log line, or a
//! Java stack trace of several lines. Every record starts with `seq=<stream>:<n> ` so that
//! delivery can be checked even by collectors that do not report offsets. A [`FileWriter`]
//! appends records to a file in one of three formats and returns, for each, the [`Expected`]
//! record: file, byte offset of its first byte, and exact message after decoding and joining.
//!
//! CRI output follows containerd: one `F` line per message line, and lines longer than
//! [`CRI_SPLIT`] bytes split into `P` pieces; docker output follows json-file, splitting at
//! the same size.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Where containerd and docker split long lines.
pub const CRI_SPLIT: usize = 16 * 1024;

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
    /// Typical length of a single-line record, in bytes (±50% jitter).
    pub line_len: usize,
    /// Fraction of records that are Java stack traces.
    pub multiline_fraction: f64,
    /// Fraction of records that are long lines (over [`CRI_SPLIT`], split by the runtime).
    pub long_fraction: f64,
}

impl Default for Shape {
    fn default() -> Self {
        Self {
            line_len: 200,
            multiline_fraction: 0.0,
            long_fraction: 0.0,
        }
    }
}

/// Generates the message lines of the record with sequence number `seq` of stream `stream`.
pub fn record_lines(rng: &mut Rng, stream: &str, seq: u64, shape: &Shape) -> Vec<String> {
    let head = format!("seq={stream}:{seq} ");
    if rng.chance(shape.multiline_fraction) {
        let frames = 3 + rng.below(12) as usize;
        let mut lines = vec![
            format!("{head}2024-01-01 12:00:00.000 ERROR [main] c.e.Service - request failed"),
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
            lines.push(format!("\t... {} more", frames));
        }
        return lines;
    }
    let len = if rng.chance(shape.long_fraction) {
        CRI_SPLIT + 1 + rng.below(2 * CRI_SPLIT as u64) as usize
    } else {
        let jitter = shape.line_len / 2;
        shape.line_len - jitter + rng.below(2 * jitter as u64 + 1) as usize
    };
    let mut line = head;
    line.push_str("2024-01-01 12:00:00.000 INFO [worker] c.e.Api - ");
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
    line.truncate(len.max(1));
    vec![line]
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
        for line in lines {
            match self.format {
                Format::Raw => {
                    self.buf.extend_from_slice(line.as_bytes());
                    self.buf.push(b'\n');
                }
                Format::Cri => {
                    let pieces = split(line.as_bytes(), CRI_SPLIT);
                    let last = pieces.len() - 1;
                    for (i, piece) in pieces.into_iter().enumerate() {
                        let tag = if i == last { "F" } else { "P" };
                        self.buf.extend_from_slice(
                            format!("2024-01-01T12:00:00.123456789Z {stream} {tag} ").as_bytes(),
                        );
                        self.buf.extend_from_slice(piece);
                        self.buf.push(b'\n');
                    }
                }
                Format::Docker => {
                    let text = format!("{line}\n");
                    let pieces = split(text.as_bytes(), CRI_SPLIT);
                    for piece in pieces {
                        let piece = String::from_utf8_lossy(piece);
                        let json = serde_json::json!({"log": piece, "stream": stream, "time": "2024-01-01T12:00:00.123456789Z"});
                        self.buf.extend_from_slice(json.to_string().as_bytes());
                        self.buf.push(b'\n');
                    }
                }
            }
        }
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

/// Splits at `size` bytes, never inside a UTF-8 character (generated text is ASCII anyway).
fn split(bytes: &[u8], size: usize) -> Vec<&[u8]> {
    if bytes.is_empty() {
        return vec![bytes];
    }
    bytes.chunks(size).collect()
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
            .map(|i| record_lines(&mut Rng::new(7 + i), "f1", i, &shape))
            .collect();
        let b: Vec<_> = (0..50)
            .map(|i| record_lines(&mut Rng::new(7 + i), "f1", i, &shape))
            .collect();
        assert_eq!(a, b);
        assert!(
            a.iter().any(|r| r.len() > 1),
            "some records are stack traces"
        );
        assert!(a.iter().all(|r| r[0].starts_with("seq=f1:")));
    }

    #[test]
    fn writer_offsets_point_at_each_record() {
        let dir = std::env::temp_dir().join(format!("rt-workload-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("a.log");
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
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
