//! Checking a collector's NDJSON output against what was written.
//!
//! Output records are matched to expected ones by `(file, offset)`; each match must carry the
//! expected message (and stream, when known). The report counts records lost, delivered more
//! than once, out of order within their file and stream, with a wrong message, or not expected
//! at all — every count must be zero for a lossless, exact run.

use std::collections::HashMap;
use std::io::BufRead;
use std::path::PathBuf;

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
