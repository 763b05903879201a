//! ringtail's workload generator and delivery verifier, shared by the end-to-end tests and the
//! throughput harness.
//!
//! - [`workload`]: seeded, reproducible log records (single lines and Java stack traces) with a
//!   sequence number in every record, written as raw, CRI or docker json-file lines; the writer
//!   knows each record's byte offset and exact expected message.
//! - [`verify`]: reads a collector's NDJSON output and reports what was lost, duplicated, out of
//!   order, or changed.

pub mod verify;
pub mod workload;
