//! ringtail: a node-level log collector.
//!
//! Files are found by discovery, read in page-aligned chunks by reader threads that own an
//! io_uring, cut into records by worker threads (framing → decoding → multiline →
//! processors → encoding), and written by sink threads that acknowledge each batch once it
//! is durable. Bounded queues join the stages, so a slow sink slows the readers and nothing is
//! dropped on the way.
//!
//! ```text
//! ebpf ─opens, writes─▶ discover ─Control, dirty─▶ read ─WorkItem─▶ work ─Batch─▶ sink
//!                          │                                                        │
//!                          └─ open(identity, offset) ─▶ deliver ◀── acks (durable) ─┘
//!                                                      (checkpoints)
//! ```
//!
//! Layout, top to bottom — a module imports only from modules below it (the one exception,
//! `source::declare` asking the Kafka sink what a legal topic is, says why where it is):
//! - [`pipeline`]: starts every stage with its settings, keeps the handles, stops them front
//!   to back.
//! - [`config`]: the YAML configuration, turned into each stage's settings.
//! - [`fuzzing`]: the invariants the fuzz targets (`fuzz/`) and their regression tests check.
//! - [`api`]: `/metrics` and `/healthz`.
//! - [`discover`]: which files exist and when they have new data (inotify, eBPF).
//! - [`read`]: reader threads and their backends (io_uring, `pread`).
//! - [`work`]: worker threads: a file's bytes to encoded batches, per route.
//! - [`sink`]: stdout, file, Kafka, OTLP and blackhole sinks, the thread that drives each,
//!   and the HTTP delivery the HTTP sinks share.
//! - [`deliver`]: batches, acknowledgements, checkpoints.
//! - [`encode`]: records to NDJSON, text or OTLP log records.
//! - [`source`]: what a source reads and the context each open file carries.
//! - [`process`]: processors (field extraction, static fields, drop/keep).
//! - [`cut`]: bytes to records for one file: framing, decoding, multiline.
//! - [`container`]: which container a file belongs to; container filters; runtime bundles.
//! - [`ebpf`]: ringtail's eBPF programs: loading them, their events and maps.
//! - Shared vocabulary: [`metrics`], [`readiness`] (what keeps ringtail from doing all of its
//!   job), [`liveness`] (whether its threads make progress), [`queue`] (bounded queues with
//!   their depth), [`file`](mod@file) (what a file is), [`compressed`] (gzip and zstd
//!   rotations read as the bytes they were compressed from), [`escape`] (JSON strings),
//!   [`timestamp`] (RFC 3339 and calendar dates), [`memory`] (the heap's settings, and
//!   giving freed memory back).

pub mod api;
pub mod compressed;
pub mod config;
pub mod container;
pub mod cut;
pub mod deliver;
pub mod discover;
pub mod ebpf;
pub mod encode;
pub mod escape;
pub mod file;
pub mod fuzzing;
pub mod liveness;
pub mod memory;
pub mod metrics;
pub mod pipeline;
pub mod process;
pub mod queue;
pub mod read;
pub mod readiness;
pub mod sink;
pub mod source;
pub mod timestamp;
pub mod work;
