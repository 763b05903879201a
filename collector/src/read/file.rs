//! One open file's read state: where reading is, which worker gets its bytes, whether it is
//! queued or gone, how far its fingerprint reaches, its decoder if it is a compressed
//! rotation, and its counters.
//!
//! Owns the per-file bookkeeping of a reader; it may not read (the reader's round does) or
//! decide the order of reads.

use std::sync::Arc;
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

use crate::compressed::Decoder;
use crate::ebpf::DirtyFlags;
use crate::metrics::{ContainerCounters, LostLabel, Metrics};
use crate::source::FileCtx;

/// A file a reader has open.
pub struct OpenFile {
    /// The file.
    pub ctx: Arc<FileCtx>,
    /// The next byte to read.
    pub offset: u64,
    /// The worker its bytes go to.
    pub worker: usize,
    /// Whether it waits in a ready queue.
    pub queued: bool,
    /// Whether it was deleted or moved away: read it to its end, then close it.
    pub gone: bool,
    /// Whether its descriptor is closed while it is idle (see [`crate::read::budget`]): its
    /// next write opens it again.
    pub parked: bool,
    /// A write woke the reader while it was parked, and its path named it no more: if it was
    /// deleted rather than renamed, that write is lost.
    pub reopen_missed: bool,
    /// When a read last found its end, while no read is queued.
    pub idle_since: Option<Instant>,
    /// Whether it is in the reader's queue of idle files.
    pub in_idle: bool,
    /// A gone file found at its end: until when it stays open for its writer's last writes.
    pub linger_until: Option<Instant>,
    /// When data of it was last handed to its worker.
    pub last_data: Option<Instant>,
    /// Whether it is in the reader's queue of idle notices (see
    /// [`WorkItem::Idle`](crate::work::item::WorkItem::Idle)).
    pub notice_due: bool,
    /// Whether its worker was told of the pause since `last_data` reaching
    /// `partial_timeout`.
    pub told_line: bool,
    /// Whether its worker was told of the pause since `last_data` reaching the multi-line
    /// `timeout`.
    pub told_multiline: bool,
    /// Bytes the file's fingerprint covers; grown up to
    /// [`FINGERPRINT_BYTES`](crate::file::FINGERPRINT_BYTES).
    pub fingerprint_len: u32,
    /// Bytes read.
    pub read_bytes: Counter,
    /// Failed reads.
    pub read_errors: Counter,
    /// Truncations seen.
    pub truncations: Counter,
    /// Bytes lost (never read before the file had to be closed), by reason.
    lost_bytes: Family<LostLabel, Counter>,
    /// For a compressed rotation: its decoder, which reads it in place of the backend.
    pub decoder: Option<Decoder>,
    /// Bytes of holes skipped (a sparse file's zeros that were never written).
    pub sparse_skipped: Counter,
    /// Whether a skipped hole of this file was logged (once per file).
    pub sparse_logged: bool,
    /// The last thing read of this file was a hole: zeros at the start of the data after it
    /// are the rest of the hole's block, not written bytes.
    pub after_hole: bool,
    /// Bytes the kernel counted written to this file, and how many were published.
    kernel_written: Counter,
    kernel_written_seen: u64,
    /// Read and kernel-written bytes of the container the file belongs to, if its path
    /// names one.
    pub container: Option<ContainerCounters>,
    /// Read errors logged so far (at most ten are).
    pub errors_logged: u32,
}

impl OpenFile {
    /// A file read from `offset` for `worker`, with counters labelled by its source (and
    /// container).
    pub fn new(
        ctx: Arc<FileCtx>,
        offset: u64,
        worker: usize,
        fingerprint_len: u32,
        metrics: &Metrics,
    ) -> Self {
        let label = Metrics::source(&ctx.source.name);
        Self {
            read_bytes: metrics.read_bytes.get_or_create_owned(&label),
            read_errors: metrics.read_errors.get_or_create_owned(&label),
            truncations: metrics.truncations.get_or_create_owned(&label),
            lost_bytes: metrics.lost_bytes.clone(),
            decoder: None,
            sparse_skipped: metrics.sparse_bytes_skipped.get_or_create_owned(&label),
            sparse_logged: false,
            after_hole: false,
            kernel_written: metrics.kernel_written_bytes.get_or_create_owned(&label),
            kernel_written_seen: 0,
            container: ctx
                .meta
                .container
                .as_ref()
                .map(|container| metrics.container_counters(&container.label())),
            ctx,
            offset,
            worker,
            queued: false,
            gone: false,
            parked: false,
            reopen_missed: false,
            idle_since: None,
            in_idle: false,
            linger_until: None,
            last_data: None,
            notice_due: false,
            told_line: false,
            told_multiline: false,
            fingerprint_len,
            errors_logged: 0,
        }
    }

    /// Notes that data of it went to its worker at `now`: a new pause starts. Returns when to
    /// look at it for an idle notice, if it is not in the reader's queue of them yet.
    pub fn data_sent(&mut self, now: Instant) -> Option<Instant> {
        self.last_data = Some(now);
        self.told_line = false;
        self.told_multiline = false;
        (!std::mem::replace(&mut self.notice_due, true)).then(|| {
            let (line, multiline) = self.ctx.source.cut.idle_timeouts();
            now + multiline.map_or(line, |m| m.min(line))
        })
    }

    /// How late its idle notice may go out: a quarter of its shortest idle timeout (at least a
    /// millisecond, so a notice put off is never due again at once).
    pub fn notice_slack(&self) -> Duration {
        let (line, multiline) = self.ctx.source.cut.idle_timeouts();
        (multiline.map_or(line, |m| m.min(line)) / 4).max(Duration::from_millis(1))
    }

    /// The next idle timeout its worker has not been told of in the current pause, if any.
    pub fn untold_timeout(&self) -> Option<Duration> {
        let (line, multiline) = self.ctx.source.cut.idle_timeouts();
        let line = (!self.told_line).then_some(line);
        let multiline = multiline.filter(|_| !self.told_multiline);
        line.into_iter().chain(multiline).min()
    }

    /// Counts `bytes` of this file lost for `reason` (one of the `Metrics::LOST_*`).
    pub fn lost(&self, reason: &'static str, bytes: u64) {
        self.lost_bytes
            .get_or_create(&Metrics::lost(&self.ctx.source.name, reason))
            .inc_by(bytes);
    }

    /// Bytes the kernel counted written to the file since they were last published.
    pub fn unpublished_written(&self, flags: &DirtyFlags) -> u64 {
        let identity = self.ctx.identity;
        flags
            .bytes_written(identity.dev, identity.ino)
            .map_or(0, |total| total.saturating_sub(self.kernel_written_seen))
    }

    /// Adds what the kernel counted written to the file since the last look to its metrics.
    pub fn publish_written(&mut self, flags: &DirtyFlags) {
        let identity = self.ctx.identity;
        if let Some(total) = flags.bytes_written(identity.dev, identity.ino)
            && total > self.kernel_written_seen
        {
            self.kernel_written.inc_by(total - self.kernel_written_seen);
            if let Some(container) = &self.container {
                container.written.inc_by(total - self.kernel_written_seen);
            }
            self.kernel_written_seen = total;
        }
    }
}
