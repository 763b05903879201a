//! Benchmark cases: one TOML file per scenario in `bench/cases/`, like Vector's regression
//! cases. A case describes the workload and which sinks ringtail is measured with; peers always
//! write to a file (their output is what gets verified).
//!
//! ```toml
//! description = "100 CRI files of 200-byte lines"
//! files = 100
//! total = "1GiB"
//! format = "cri"            # raw | cri | docker
//! line = [150, 250]         # shortest and longest single-line record, bytes
//! multiline = 0.2           # fraction of records that are stack traces
//! trace = "java"            # java | python
//! rate = "max"              # or a total rate such as "100MB"
//! step = "10ms"             # with a rate: each file gets its share of a step per write
//! rotate = "1MiB"           # rotate each file every so many bytes (kubelet-style rename)
//! keep_rotated = 5
//! short_lived = { bytes = "64KiB", delete_after = "50ms" }
//! sinks = ["blackhole", "file"]
//! requires = "kafka"        # a ringtail feature the case needs; skipped while missing
//! pod_labels = true         # kubelet layout, ringtail also run with pod labels from a CRI socket
//! timeout = "10m"
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::workload::{Churn, Format, Shape, Spec, Trace};

/// Why a case file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CaseError {
    /// The file could not be read.
    #[error("cannot read case {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a valid case.
    #[error("invalid case {path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// Where ringtail sends records in a measurement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SinkKind {
    /// Counted and discarded: the cost of the pipeline alone.
    Blackhole,
    /// A file of the records' messages, one line each (ringtail's `encoding: text`): what
    /// every peer is configured to write, so the collectors are compared on the same output.
    File,
    /// ringtail's NDJSON records with their metadata (file, source, stream, time, offset):
    /// 1.5–1.7 times the input for 200-byte lines. ringtail only.
    FileJson,
    /// Kafka (zstd, acks=all): ringtail's JSON records with their metadata. ringtail only.
    Kafka,
    /// Kafka with `encoding: text`: each message alone, as the broker's ceiling
    /// ([`crate::ceiling`]) sends it. ringtail only.
    KafkaText,
    /// OTLP/HTTP to the harness's receiver (protobuf, uncompressed). ringtail only.
    Otlp,
    /// Elasticsearch `_bulk` to the harness's receiver (uncompressed). ringtail only.
    Elasticsearch,
}

impl SinkKind {
    /// Name in reports.
    pub fn name(self) -> &'static str {
        match self {
            SinkKind::Blackhole => "blackhole",
            SinkKind::File => "file",
            SinkKind::FileJson => "file-json",
            SinkKind::Kafka => "kafka",
            SinkKind::KafkaText => "kafka-text",
            SinkKind::Otlp => "otlp",
            SinkKind::Elasticsearch => "elasticsearch",
        }
    }

    /// The harness's receiver protocol, for the HTTP sinks.
    pub fn receiver(self) -> Option<crate::receiver::Protocol> {
        match self {
            SinkKind::Otlp => Some(crate::receiver::Protocol::Otlp),
            SinkKind::Elasticsearch => Some(crate::receiver::Protocol::Bulk),
            _ => None,
        }
    }

    /// Whether it is a Kafka topic (a broker per run, read back to check).
    pub fn is_kafka(self) -> bool {
        matches!(self, SinkKind::Kafka | SinkKind::KafkaText)
    }

    /// Whether the output is a file the harness follows.
    pub fn is_file(self) -> bool {
        matches!(self, SinkKind::File | SinkKind::FileJson)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawShortLived {
    bytes: String,
    delete_after: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCase {
    description: String,
    files: usize,
    total: String,
    format: String,
    #[serde(default = "default_line")]
    line: [usize; 2],
    #[serde(default)]
    multiline: f64,
    #[serde(default)]
    trace: Option<String>,
    #[serde(default)]
    long_lines: f64,
    #[serde(default)]
    rate: Option<String>,
    #[serde(default)]
    rotate: Option<String>,
    #[serde(default)]
    keep_rotated: Option<usize>,
    #[serde(default)]
    short_lived: Option<RawShortLived>,
    #[serde(default = "default_sinks")]
    sinks: Vec<String>,
    #[serde(default)]
    requires: Option<String>,
    #[serde(default)]
    timeout: Option<String>,
    #[serde(default)]
    seed: Option<u64>,
    #[serde(default)]
    pod_labels: bool,
    #[serde(default)]
    step: Option<String>,
}

fn default_line() -> [usize; 2] {
    [200, 200]
}

fn default_sinks() -> Vec<String> {
    vec!["blackhole".to_string(), "file".to_string()]
}

/// A benchmark case.
#[derive(Debug, Clone)]
pub struct Case {
    /// File stem, e.g. `cri-200b-100-files`.
    pub name: String,
    /// What it measures.
    pub description: String,
    /// The workload.
    pub spec: Spec,
    /// Sinks ringtail is measured with.
    pub sinks: Vec<SinkKind>,
    /// Multi-line rules collectors should apply (when the workload has traces).
    pub multiline: Option<Trace>,
    /// A ringtail feature the case needs (e.g. `kafka`).
    pub requires: Option<String>,
    /// Longest wait for a collector to deliver everything.
    pub timeout: Duration,
    /// The files are one pod's, in the kubelet's layout (`var/log/pods/<ns>_<pod>_<uid>/<container>/`),
    /// and the `ringtail-labels` collector runs beside ringtail: the same ringtail given the
    /// pod's labels and annotations by a CRI socket ([`crate::cri`]).
    pub pod_labels: bool,
}

impl Case {
    /// Reads a case file.
    pub fn load(path: &Path) -> Result<Case, CaseError> {
        let text = std::fs::read_to_string(path).map_err(|source| CaseError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        Self::parse(&name, &text).map_err(|message| CaseError::Invalid {
            path: path.to_path_buf(),
            message,
        })
    }

    /// Parses case text.
    pub fn parse(name: &str, text: &str) -> Result<Case, String> {
        let raw: RawCase = toml::from_str(text).map_err(|e| e.to_string())?;
        let size = |field: &str, s: &str| -> Result<u64, String> {
            s.trim()
                .parse::<bytesize::ByteSize>()
                .map(|b| b.as_u64())
                .map_err(|e| format!("{field}: `{s}` is not a size: {e}"))
        };
        let duration = |field: &str, s: &str| {
            humantime::parse_duration(s.trim())
                .map_err(|e| format!("{field}: `{s}` is not a duration: {e}"))
        };
        let format = match raw.format.as_str() {
            "raw" => Format::Raw,
            "cri" => Format::Cri,
            "docker" => Format::Docker,
            other => return Err(format!("format: unknown `{other}` (raw, cri, docker)")),
        };
        let trace = match raw.trace.as_deref() {
            None | Some("java") => Trace::Java,
            Some("python") => Trace::Python,
            Some(other) => return Err(format!("trace: unknown `{other}` (java, python)")),
        };
        if !(0.0..=1.0).contains(&raw.multiline) || !(0.0..=1.0).contains(&raw.long_lines) {
            return Err("multiline and long_lines are fractions from 0 to 1".to_string());
        }
        if raw.line[0] > raw.line[1] || raw.line[0] == 0 {
            return Err("line: [min, max] with 0 < min <= max".to_string());
        }
        if raw.files == 0 {
            return Err("files: at least 1".to_string());
        }
        let rate = match raw.rate.as_deref() {
            None | Some("max") => None,
            Some(r) => Some(size("rate", r.trim_end_matches("/s"))?),
        };
        let step = match raw.step.as_deref() {
            None => None,
            Some(_) if rate.is_none() => return Err("step needs a rate".to_string()),
            Some(s) => Some(duration("step", s)?),
        };
        let churn = match (&raw.rotate, &raw.short_lived) {
            (Some(_), Some(_)) => {
                return Err("rotate and short_lived exclude each other".to_string());
            }
            (Some(bytes), None) => Churn::Rotate {
                bytes: size("rotate", bytes)?,
                keep: raw.keep_rotated.unwrap_or(5),
            },
            (None, Some(s)) => Churn::ShortLived {
                bytes: size("short_lived.bytes", &s.bytes)?,
                delete_after: duration("short_lived.delete_after", &s.delete_after)?,
            },
            (None, None) => Churn::None,
        };
        let sinks = raw
            .sinks
            .iter()
            .map(|s| match s.as_str() {
                "blackhole" => Ok(SinkKind::Blackhole),
                "file" => Ok(SinkKind::File),
                "file-json" => Ok(SinkKind::FileJson),
                "kafka" => Ok(SinkKind::Kafka),
                "kafka-text" => Ok(SinkKind::KafkaText),
                "otlp" => Ok(SinkKind::Otlp),
                "elasticsearch" => Ok(SinkKind::Elasticsearch),
                other => Err(format!(
                    "sinks: unknown `{other}` (blackhole, file, file-json, kafka, kafka-text, otlp, elasticsearch)"
                )),
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Case {
            name: name.to_string(),
            description: raw.description,
            spec: Spec {
                files: raw.files,
                total_bytes: size("total", &raw.total)?,
                format,
                shape: Shape {
                    line_min: raw.line[0],
                    line_max: raw.line[1],
                    multiline_fraction: raw.multiline,
                    trace,
                    long_fraction: raw.long_lines,
                },
                rate,
                step,
                churn,
                sample_every: 997,
                seed: raw.seed.unwrap_or(1),
            },
            sinks,
            multiline: (raw.multiline > 0.0).then_some(trace),
            requires: raw.requires,
            timeout: match raw.timeout.as_deref() {
                Some(t) => duration("timeout", t)?,
                None => Duration::from_secs(600),
            },
            pod_labels: raw.pod_labels,
        })
    }

    /// The case with its total size scaled by `factor` (quick runs), keeping its shape.
    pub fn scaled(&self, factor: f64) -> Case {
        let mut case = self.clone();
        case.spec.total_bytes =
            ((self.spec.total_bytes as f64 * factor) as u64).max(self.spec.files as u64 * 1024);
        case
    }
}

/// Loads every case in `dir`, sorted by name.
pub fn load_all(dir: &Path) -> Result<Vec<Case>, CaseError> {
    let entries = std::fs::read_dir(dir).map_err(|source| CaseError::Read {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    paths.sort();
    paths.iter().map(|p| Case::load(p)).collect()
}

/// The `bench/cases` directory of this workspace.
pub fn default_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("cases")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shipped_case_parses() {
        let cases = load_all(&default_dir()).unwrap();
        let names: Vec<&str> = cases.iter().map(|c| c.name.as_str()).collect();
        for required in [
            "single-file-raw",
            "cri-200b-100-files",
            "multiline-java",
            "rotation-10-per-s",
            "many-files-10k",
            "kafka-zstd",
        ] {
            assert!(
                names.contains(&required),
                "missing case {required}: {names:?}"
            );
        }
    }

    #[test]
    fn a_full_case_parses_and_bad_ones_say_why() {
        let case = Case::parse(
            "x",
            r#"description = "d"
files = 10
total = "10MiB"
format = "cri"
line = [100, 300]
multiline = 0.25
trace = "python"
rate = "50MB/s"
rotate = "1MiB"
keep_rotated = 3
sinks = ["file"]
timeout = "2m"
"#,
        )
        .unwrap();
        assert_eq!(case.spec.total_bytes, 10 << 20);
        assert_eq!(case.spec.rate, Some(50_000_000));
        assert_eq!(
            case.spec.churn,
            Churn::Rotate {
                bytes: 1 << 20,
                keep: 3
            }
        );
        assert_eq!(case.multiline, Some(Trace::Python));
        assert_eq!(case.sinks, vec![SinkKind::File]);
        assert_eq!(case.timeout, Duration::from_secs(120));

        let bad = Case::parse(
            "x",
            "description = \"d\"\nfiles = 1\ntotal = \"1MiB\"\nformat = \"xml\"\n",
        )
        .unwrap_err();
        assert!(bad.contains("format: unknown `xml`"), "{bad}");
        let bad = Case::parse(
            "x",
            "description = \"d\"\nfiles = 1\ntotal = \"1MiB\"\nformat = \"raw\"\ncolour = 1\n",
        )
        .unwrap_err();
        assert!(bad.contains("unknown field `colour`"), "{bad}");
    }
}
