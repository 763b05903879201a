//! Checking a collector's output against what was written.
//!
//! - [`verify`]: ringtail's NDJSON against [`Expected`] records, matched by `(file, offset)`;
//!   each match must carry the expected message (and stream). The report counts records lost,
//!   delivered more than once, out of order within their file and stream, with a wrong message,
//!   or not expected at all — every count must be zero for an exact run.
//! - [`SeqCheck`]: any collector's output (raw lines, NDJSON, …) against the sequence numbers
//!   of a workload: every `seq=s<stream>:<n>` token is counted, so lost and duplicated records
//!   are found without knowing the output format. It checks delivery, not record grouping.

use std::collections::HashMap;
use std::io::{BufRead, Read};
use std::path::{Path, PathBuf};

use crate::workload::Expected;

/// Why output could not be checked.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// Reading the output failed.
    #[error("cannot read output: {source}")]
    Read {
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
}

/// The outcome of a check.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    /// Records expected.
    pub expected: usize,
    /// Output records read.
    pub delivered: usize,
    /// Expected records never delivered (first few, with the total in `lost`).
    pub missing: Vec<(PathBuf, u64)>,
    /// Expected records never delivered.
    pub lost: usize,
    /// Deliveries beyond the first of the same record.
    pub duplicates: usize,
    /// Records delivered after a later record of the same file and stream.
    pub out_of_order: usize,
    /// Records whose message (or stream) differs from what was written.
    pub wrong: Vec<String>,
    /// Output lines that are not JSON or do not match any expected record.
    pub unexpected: Vec<String>,
}

impl Report {
    /// Whether every record arrived exactly once, in order, unchanged, and nothing else did.
    pub fn is_exact(&self) -> bool {
        self.lost == 0
            && self.duplicates == 0
            && self.out_of_order == 0
            && self.wrong.is_empty()
            && self.unexpected.is_empty()
    }
}

/// Checks NDJSON `output` (several sources may be chained) against `expected`.
pub fn verify(expected: &[Expected], output: impl BufRead) -> Result<Report, VerifyError> {
    let mut index: HashMap<(String, u64), (usize, u32)> = HashMap::with_capacity(expected.len());
    for (i, e) in expected.iter().enumerate() {
        index.insert((e.file.display().to_string(), e.offset), (i, 0));
    }
    let mut last: HashMap<(String, Option<String>), u64> = HashMap::new();
    let mut report = Report {
        expected: expected.len(),
        ..Report::default()
    };
    for line in output.lines() {
        let line = line.map_err(|source| VerifyError::Read { source })?;
        if line.is_empty() {
            continue;
        }
        report.delivered += 1;
        let Ok(value) = serde_json::from_str::<serde_json::Value>(&line) else {
            report.unexpected.push(line);
            continue;
        };
        let file = value["file"].as_str().unwrap_or_default().to_string();
        let offset = value["offset"].as_u64().unwrap_or(u64::MAX);
        let stream = value["stream"].as_str().map(str::to_string);
        let Some((i, seen)) = index.get_mut(&(file.clone(), offset)) else {
            report.unexpected.push(line);
            continue;
        };
        *seen += 1;
        if *seen > 1 {
            report.duplicates += 1;
            continue;
        }
        let e = &expected[*i];
        let message = value["message"].as_str().unwrap_or_default();
        if message != e.message || (e.stream.is_some() && stream != e.stream) {
            report.wrong.push(format!(
                "{}@{}: expected {:?} on {:?}, got {:?} on {:?}",
                file,
                offset,
                short(&e.message),
                e.stream,
                short(message),
                stream
            ));
        }
        let key = (file, stream);
        if last.get(&key).is_some_and(|&prev| prev > offset) {
            report.out_of_order += 1;
        }
        last.insert(key, offset);
    }
    for ((file, offset), (_, seen)) in &index {
        if *seen == 0 {
            report.lost += 1;
            if report.missing.len() < 20 {
                report.missing.push((PathBuf::from(file), *offset));
            }
        }
    }
    report.missing.sort();
    Ok(report)
}

/// Delivery counts of a workload's sequence numbers.
#[derive(Debug, Clone)]
pub struct SeqCheck {
    /// Per stream, per sequence number: times delivered (saturating).
    counts: Vec<Vec<u8>>,
    unexpected: u64,
}

/// What a [`SeqCheck`] found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SeqReport {
    /// Records written.
    pub expected: u64,
    /// Records delivered at least once.
    pub delivered: u64,
    /// Records never delivered.
    pub lost: u64,
    /// Deliveries beyond the first.
    pub duplicated: u64,
    /// Tokens naming a stream or number that was never written.
    pub unexpected: u64,
}

impl SeqReport {
    /// Every record exactly once, nothing else.
    pub fn is_exact(&self) -> bool {
        self.lost == 0 && self.duplicated == 0 && self.unexpected == 0
    }
}

const SEQ_TOKEN: &[u8] = b"seq=s";

impl SeqCheck {
    /// A check for streams `s0`, `s1`, … with the given numbers of records.
    pub fn new(records_per_stream: &[u64]) -> Self {
        Self {
            counts: records_per_stream
                .iter()
                .map(|&n| vec![0u8; n as usize])
                .collect(),
            unexpected: 0,
        }
    }

    /// Counts the tokens in `bytes`, which must not cut a token in two (cut at newlines).
    pub fn scan(&mut self, bytes: &[u8]) {
        for at in memchr::memmem::find_iter(bytes, SEQ_TOKEN) {
            let rest = &bytes[at + SEQ_TOKEN.len()..];
            let Some((stream, rest)) = number(rest) else {
                continue;
            };
            let Some(rest) = rest.strip_prefix(b":") else {
                continue;
            };
            let Some((seq, _)) = number(rest) else {
                continue;
            };
            match self
                .counts
                .get_mut(stream as usize)
                .and_then(|c| c.get_mut(seq as usize))
            {
                Some(count) => *count = count.saturating_add(1),
                None => self.unexpected += 1,
            }
        }
    }

    /// Counts the tokens in a file, reading it in large pieces cut at newlines.
    pub fn scan_file(&mut self, path: &Path) -> std::io::Result<()> {
        let mut file = std::fs::File::open(path)?;
        let mut buf = vec![0u8; 8 << 20];
        let mut filled = 0;
        loop {
            let n = file.read(&mut buf[filled..])?;
            filled += n;
            let cut = if n == 0 {
                filled
            } else {
                match memchr::memrchr(b'\n', &buf[..filled]) {
                    Some(nl) => nl + 1,
                    None if filled == buf.len() => filled,
                    None => continue,
                }
            };
            self.scan(&buf[..cut]);
            buf.copy_within(cut..filled, 0);
            filled -= cut;
            if n == 0 {
                return Ok(());
            }
        }
    }

    /// The counts so far.
    pub fn report(&self) -> SeqReport {
        let mut r = SeqReport {
            unexpected: self.unexpected,
            ..SeqReport::default()
        };
        for stream in &self.counts {
            r.expected += stream.len() as u64;
            for &c in stream {
                if c == 0 {
                    r.lost += 1;
                } else {
                    r.delivered += 1;
                    r.duplicated += u64::from(c - 1);
                }
            }
        }
        r
    }
}

/// A decimal number at the start of `bytes`, and the rest.
fn number(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let digits = bytes.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || digits > 19 {
        return None;
    }
    let value = std::str::from_utf8(&bytes[..digits]).ok()?.parse().ok()?;
    Some((value, &bytes[digits..]))
}

fn short(s: &str) -> String {
    if s.len() <= 80 {
        s.to_string()
    } else {
        let cut = (0..=80).rev().find(|&i| s.is_char_boundary(i)).unwrap_or(0);
        format!("{}…({} bytes)", &s[..cut], s.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expected() -> Vec<Expected> {
        (0..3)
            .map(|i| Expected {
                file: PathBuf::from("/f.log"),
                offset: i * 10,
                stream: None,
                message: format!("m{i}"),
            })
            .collect()
    }

    fn line(offset: u64, message: &str) -> String {
        serde_json::json!({"file": "/f.log", "offset": offset, "message": message}).to_string()
    }

    #[test]
    fn an_exact_delivery_is_exact() {
        let out = [line(0, "m0"), line(10, "m1"), line(20, "m2")].join("\n");
        let r = verify(&expected(), out.as_bytes()).unwrap();
        assert!(r.is_exact(), "{r:?}");
        assert_eq!(r.delivered, 3);
    }

    #[test]
    fn finds_a_missing_and_a_duplicated_record() {
        let out = [line(0, "m0"), line(20, "m2"), line(20, "m2")].join("\n");
        let r = verify(&expected(), out.as_bytes()).unwrap();
        assert_eq!(r.lost, 1);
        assert_eq!(r.missing, vec![(PathBuf::from("/f.log"), 10)]);
        assert_eq!(r.duplicates, 1);
        assert!(!r.is_exact());
    }

    #[test]
    fn the_sequence_checker_finds_a_missing_and_a_duplicated_line() {
        let mut check = SeqCheck::new(&[3, 2]);
        check.scan(
            b"seq=s0:0 a\n{\"message\":\"seq=s0:2 lat! b\"}\nseq=s1:0 c\nseq=s1:1 d\nseq=s1:1 d\n",
        );
        check.scan(b"seq=s7:0 from nowhere\nseq=s0:99 out of range\nseq=sx:1 not a token\n");
        let r = check.report();
        assert_eq!(
            r,
            SeqReport {
                expected: 5,
                delivered: 4,
                lost: 1,
                duplicated: 1,
                unexpected: 2,
            }
        );
        assert!(!r.is_exact());
    }

    #[test]
    fn scanning_a_file_in_pieces_counts_every_token_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out");
        let mut text = String::new();
        for i in 0..300_000u64 {
            text.push_str(&format!(
                "seq=s0:{i} some padding to make the file bigger than one read\n"
            ));
        }
        std::fs::write(&path, text).unwrap();
        let mut check = SeqCheck::new(&[300_000]);
        check.scan_file(&path).unwrap();
        assert!(check.report().is_exact(), "{:?}", check.report());
    }

    #[test]
    fn finds_reordered_changed_and_unexpected_records() {
        let out = [
            line(10, "m1"),
            line(0, "m0"),
            line(20, "changed"),
            "not json".to_string(),
            line(5, "x"),
        ]
        .join("\n");
        let r = verify(&expected(), out.as_bytes()).unwrap();
        assert_eq!(r.out_of_order, 1);
        assert_eq!(r.wrong.len(), 1);
        assert_eq!(r.unexpected.len(), 2);
    }
}
