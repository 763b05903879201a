//! ringtail's benchmark harness and the test-support pieces it shares with the collector's
//! end-to-end tests.
//!
//! - [`workload`]: seeded, reproducible log records (single lines, Java and Python stack
//!   traces, long lines) with a sequence number in every record, as raw, CRI or docker lines;
//!   whole workloads over many files with a rate, rotation or short-lived files.
//! - [`verify`]: checking output — ringtail's NDJSON record by record, or any collector's
//!   output by sequence number (lost, duplicated).
//! - [`case`]: benchmark cases, one TOML file per scenario in `bench/cases/`.
//! - [`collectors`]: how ringtail is started for a case; [`peers`]: the other collectors.
//! - [`measure`]: CPU, memory, and following an output as it grows (completion, latency).
//! - [`harness`]: running cases: warm-up, runs, timing, verification.
//! - [`cri`]: the CRI socket that gives pod labels in the `pod_labels` cases.
//! - [`kafka`]: a broker for the Kafka cases and a consumer that reads back what arrived.
//! - [`report`]: Markdown, JSON and a PNG chart in `bench/results/`.

pub mod case;
pub mod ceiling;
pub mod collectors;
pub mod cri;
pub mod harness;
pub mod kafka;
pub mod measure;
pub mod peers;
pub mod receiver;
pub mod report;
pub mod verify;
pub mod workload;
