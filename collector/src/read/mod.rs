//! Reading: reader threads, the backends they read with, and their settings
//! ([`ReaderSettings`], the `reader` section).
//!
//! - [`reader`]: the reader thread — which files to read, how much, in what order.
//! - [`control`]: discovery's link to a reader (control messages, dirty marks).
//! - [`file`](mod@file): one open file's read state and counters.
//! - [`budget`]: how many files are open at once; reopening files closed while idle.
//! - [`buffer`]: page-aligned read buffers and the bounded pool they come from.
//! - [`backend`]: the seam between a reader and the system calls.
//! - [`uring`], [`pread`]: the backends.
//!
//! The [`ReadBackend`] trait ([`backend`]) is deliberately small: register an open file, unregister it, and
//! read a batch of chunks (one per file) at given offsets into page-aligned buffers. The
//! io_uring backend ([`uring`]) submits the whole batch with one system call; the `pread`
//! backend ([`pread`]) is the fallback for kernels or sandboxes that refuse io_uring (Docker's
//! default seccomp profile does), with identical results.
//!
//! Reading owns file descriptors and the bytes read; it may not interpret them (workers cut
//! them) or decide which files exist (discovery does).

pub mod backend;
pub mod budget;
pub mod buffer;
pub mod control;
pub mod file;
pub mod pread;
pub mod reader;
pub mod uring;

use std::time::Duration;

use backend::{BackendKind, ReadBackend, ReadError};

use crate::source::ReadFrom;

/// Per-file, per-round read budget. At 1 GB/s this is ~2,000 rounds a second (syscall and
/// queue costs well under 1%), and 100 busy files each get a turn within ~50 ms.
pub const DEFAULT_CHUNK_BYTES: usize = 512 * 1024;
/// Read buffers in flight between readers and workers; fits a 512 MiB DaemonSet limit.
pub const DEFAULT_BUFFER_MEMORY: usize = 64 * 1024 * 1024;
/// Deleted files held open until drained: each pins its disk space and a descriptor, and a
/// node rarely has more than a few hundred containers exiting at once.
pub const DEFAULT_MAX_OPEN_DELETED: usize = 1024;
/// Unread bytes held in deleted files at most: a long outage must not fill the node's disk
/// with files nobody else can see (kubelet keeps 5 × 10 MiB per container, so this is many
/// containers' worth of rotated logs).
pub const DEFAULT_MAX_DELETED_BYTES: u64 = 2 << 30;
/// A file idle this long is closed: long enough that a file written every few minutes keeps
/// its descriptor, short enough that a node's many finished logs do not hold theirs.
pub const DEFAULT_CLOSE_IDLE: Duration = Duration::from_secs(300);
/// Default [`ReaderSettings::linger`]: at most four rounds of reads a second however many
/// files are written, for at most 250 ms more latency — less than the peers' (Fluent Bit
/// flushes every second, the OpenTelemetry Collector polls every 200 ms and batches for 200
/// more). Each round wakes discovery, the reader, the workers, the sinks and their syncs, so
/// at everyday rates the round count is the node's cost: measured by the bench's `node-cost`
/// cases (20 CRI files written every 10 ms, text to a file), 3.3 % of a core at 1 MB/s with
/// 25 ms, 1.2 % with 100 ms, 0.8 % with 250 ms; 4.9, 2.6 and 2.2 % at 10 MB/s.
pub const DEFAULT_LINGER: Duration = Duration::from_millis(250);
/// The longest [`ReaderSettings::linger`] accepted.
pub const MAX_LINGER: Duration = Duration::from_secs(1);

/// How files are read (`reader`).
#[derive(Debug, Clone)]
pub struct ReaderSettings {
    /// The read backend.
    pub backend: BackendKind,
    /// Reader threads.
    pub threads: usize,
    /// Bytes per read, and per file per round.
    pub chunk_bytes: usize,
    /// Upper bound on read buffers in flight.
    pub buffer_memory: usize,
    /// Default start position for files present at start-up (a source may set its own).
    pub read_from: ReadFrom,
    /// Most deleted files held open until drained.
    pub max_open_deleted: usize,
    /// Most unread bytes held in deleted files.
    pub max_deleted_bytes: u64,
    /// Most files open at once (`None`: derived from the open-file limit, see
    /// [`budget::default_max_open_files`]).
    pub max_open_files: Option<usize>,
    /// A file read to its end and idle this long is closed (and opened again on its next
    /// write).
    pub close_idle: Duration,
    /// What wakes a reader when a file has new data.
    pub wake: WakeSource,
    /// How long discovery gathers write events after the first one before it wakes the
    /// readers: writes that arrive together are read together (one round of reads, one
    /// batch through the workers and the sink instead of one per write).
    pub linger: Duration,
}

/// What tells a reader that a file it has caught up with has new data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WakeSource {
    /// inotify's modify events on the watched directories (every write path, including
    /// io_uring and `splice`; one event per write, coalesced while unread).
    Inotify,
    /// The eBPF write hook: one event per file per idle→dirty transition, re-armed by the
    /// reader when it catches up; inotify's modify events are not asked for. Sees `write`,
    /// `pwrite64` and the vectored writes of the processes it follows, not `mmap`, io_uring
    /// or `splice` writes. Needs eBPF; with `discovery: auto` falling back to inotify, inotify
    /// wakes readers.
    WriteHook,
}

/// Creates the configured backend, falling back to `pread` when io_uring cannot be set up.
/// Returns the backend and, when it fell back, the reason.
pub fn create(kind: BackendKind, queue_depth: u32) -> (Box<dyn ReadBackend>, Option<ReadError>) {
    match kind {
        BackendKind::Pread => (Box::new(pread::PreadBackend::default()), None),
        BackendKind::IoUring => match uring::UringBackend::new(queue_depth) {
            Ok(backend) => (Box::new(backend), None),
            Err(e) => (Box::new(pread::PreadBackend::default()), Some(e)),
        },
    }
}
