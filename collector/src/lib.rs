//! ringtail: a node-level log collector.
//!
//! Files are found by discovery, read in page-aligned chunks by reader threads that own an
//! io_uring, cut into records by worker threads (framing → decoding → multiline → NDJSON), and
//! written by sink threads that acknowledge each batch once it is durable. Bounded queues join
//! the stages, so a slow sink slows the readers and nothing is dropped on the way.
//!
//! ```text
//! discovery ──events──▶ reader (io_uring / pread) ──chunks──▶ workers ──batches──▶ sinks
//!                                                                                  │
//!                         ack tracker ◀──────────────── acks (when durable) ───────┘
//! ```
//!
//! Layout:
//! - [`config`]: the YAML configuration, its raw serde layer and its validation.
//! - [`buffer`]: page-aligned read buffers and the bounded pool they come from.
//! - [`read`]: the read backends (io_uring, `pread`) behind one small trait.
//! - [`reader`]: the reader thread: which files to read, how much, in what order.
//! - [`discovery`]: which files exist and when they have new data (inotify, and eBPF's
//!   reports of opens and writes).
//! - [`ebpf`]: ringtail's eBPF programs: loading them, their events and maps.
//! - [`container`]: which container a log file belongs to and what is known about it, and
//!   the per-source container filters.
//! - [`runtime`]: the container runtime's OCI bundles on the host.
//! - [`declare`]: logs a container declares in its environment (`RINGTAIL_LOGS_*`).
//! - [`framing`]: cutting bytes into lines, with bounded memory.
//! - [`fuzzing`]: the invariants the fuzz targets (`fuzz/`) and their regression tests check.
//! - [`decode`]: `raw`, `cri` and `docker` line formats, partial lines joined.
//! - [`multiline`]: joining stack traces and other multi-line records.
//! - [`records`]: framing → decoding → multiline for one file.
//! - [`process`]: processors (field extraction, static fields, drop/keep) per source.
//! - [`encode`]: records to NDJSON.
//! - [`worker`]: the worker thread that runs framing → decoding → multiline → encoding.
//! - [`batch`]: what travels from workers to sinks, and how it is acknowledged.
//! - [`ack`]: the acknowledged offset of every file, in order even when acks are not.
//! - [`checkpoint`]: the checkpoint file under `data_dir` and file fingerprints.
//! - [`sink`]: stdout, file, Kafka and blackhole sinks and the thread that drives each.
//! - [`template`]: per-record templates for Kafka topics and keys.
//! - [`metrics`]: Prometheus metrics.
//! - [`api`]: `/metrics` and `/healthz`.
//! - [`pipeline`]: starting, wiring and stopping all of the above.
//! - [`source`]: identifiers and per-file context shared by the stages.

pub mod ack;
pub mod api;
pub mod batch;
pub mod buffer;
pub mod checkpoint;
pub mod config;
pub mod container;
pub mod declare;
pub mod decode;
pub mod discovery;
pub mod ebpf;
pub mod encode;
pub mod framing;
pub mod fuzzing;
pub mod metrics;
pub mod multiline;
pub mod pipeline;
pub mod process;
pub mod read;
pub mod reader;
pub mod records;
pub mod runtime;
pub mod sink;
pub mod source;
pub mod template;
pub mod worker;
