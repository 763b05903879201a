//! Prometheus metrics: one registry, families labelled only by configured names (source,
//! sink, queue, event kind), so label cardinality is bounded by the configuration.
//!
//! Hot loops count in locals and publish once per chunk or batch; the handles here are cheap
//! clones (an `Arc` around an atomic) that stages keep for the files and sinks they own.
//!
//! Owns the registry and the label sets; it may not count anything itself.

pub mod process;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crossbeam::channel::Sender;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::queue::QueueSender;

/// Label of per-source metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabel {
    /// Source name from the configuration.
    pub source: String,
}

/// Label of lost bytes: the source, and why they could not be read.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LostLabel {
    /// Source name from the configuration.
    pub source: String,
    /// [`Metrics::LOST_DELETED_LIMIT`], [`Metrics::LOST_UNREADABLE`],
    /// [`Metrics::LOST_DAMAGED_ARCHIVE`] or [`Metrics::LOST_PARKED`].
    pub reason: &'static str,
}

/// Label of `multiline: {mode: auto}` streams: the source, and the record-start shape learnt
/// (`none` when the first lines had none).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ShapeLabel {
    /// Source name from the configuration.
    pub source: String,
    /// The shape's name.
    pub shape: &'static str,
}

/// Label of per-sink metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SinkLabel {
    /// Sink name from the configuration.
    pub sink: String,
}

/// Label of HTTP responses: the sink and the status (`200`, `429`, `5xx`, `error` for no
/// response).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabel {
    /// Sink name from the configuration.
    pub sink: String,
    /// The response's status, grouped.
    pub status: String,
}

/// Label of queue metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueueLabel {
    /// `read:<worker>` or `sink:<name>`.
    pub queue: String,
}

/// Label of discovery events.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    /// Event kind.
    pub kind: &'static str,
}

/// Label of configuration reloads: `applied`, `rejected` or `unchanged`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReloadLabel {
    /// What came of the reload.
    pub result: &'static str,
}

/// Label naming a container (see [`crate::container::of_path`]).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ContainerLabel {
    /// `<namespace>/<pod>/<container>`, or a container id.
    pub container: String,
}

/// Label of the active read backend.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BackendLabel {
    /// `io_uring` or `pread`.
    pub backend: &'static str,
}

/// Every metric ringtail exports.
pub struct Metrics {
    registry: Registry,
    /// Bytes read from files.
    pub read_bytes: Family<SourceLabel, Counter>,
    /// Records produced by workers.
    pub records: Family<SourceLabel, Counter>,
    /// Lines longer than `max_line_bytes` that were cut.
    pub lines_truncated: Family<SourceLabel, Counter>,
    /// Bytes dropped from the tails of cut lines.
    pub truncated_bytes: Family<SourceLabel, Counter>,
    /// Lines that did not parse in the source's format (passed on raw with an `error`).
    pub malformed_lines: Family<SourceLabel, Counter>,
    /// Records whose message is not valid UTF-8 (passed on with the exact bytes in base64).
    pub invalid_utf8: Family<SourceLabel, Counter>,
    /// Records made of more than one line by multiline rules.
    pub multiline_records: Family<SourceLabel, Counter>,
    /// `mode: auto`: file streams by the record-start shape learnt.
    pub multiline_auto_streams: Family<ShapeLabel, Counter>,
    /// `mode: auto`: lines passed alone, their stream having no shape (yet).
    pub multiline_unjoined_lines: Family<SourceLabel, Counter>,
    /// Unfinished lines (or partials without their end) emitted after `partial_timeout`.
    pub partial_lines_flushed: Family<SourceLabel, Counter>,
    /// Records a processor could not parse (kept, with `error`).
    pub processing_failed: Family<SourceLabel, Counter>,
    /// Records removed by `drop` / `keep` processors.
    pub records_dropped: Family<SourceLabel, Counter>,
    /// Files found truncated below the read offset (read again from 0).
    pub truncations: Family<SourceLabel, Counter>,
    /// Bytes that could not be read, by source and reason (see [`LostLabel`]).
    pub lost_bytes: Family<LostLabel, Counter>,
    /// Files the last run was reading that were gone at start-up: deleted (or moved out of
    /// the watched directories) while ringtail was not running.
    pub files_gone_while_down: Family<SourceLabel, Counter>,
    /// Parked files (descriptor closed while idle) deleted or moved away after a write that
    /// could not be read: no descriptor reached them any more.
    pub files_gone_while_parked: Family<SourceLabel, Counter>,
    /// Symlinks matching a glob but leading outside the log directories, refused.
    pub symlinks_refused: Family<SourceLabel, Counter>,
    /// Files a glob matched that are ringtail's own outputs (by identity), never read.
    pub own_files_refused: Family<SourceLabel, Counter>,
    /// Bytes of sparse files' holes skipped (zeros that were never written).
    pub sparse_bytes_skipped: Family<SourceLabel, Counter>,
    /// Opens of files (`kind="file"`) and directories (`"directory"`) that failed for lack of
    /// descriptors; they wait and are retried.
    pub descriptors_exhausted: Family<KindLabel, Counter>,
    /// Files and directories waiting for a descriptor now.
    pub waiting_for_descriptors: Gauge,
    /// Directories inotify refused to watch (rescanned instead).
    pub watch_failures: Counter,
    /// Directories not watched by inotify now.
    pub directories_unwatched: Gauge,
    /// Files a source's glob matched but its container filter rejected (the first such
    /// source labels them).
    pub files_filtered: Family<SourceLabel, Counter>,
    /// Sources made from containers' log declarations, now.
    pub declarations_active: Gauge,
    /// Container log declarations that could not be honoured (bad value, unknown format…).
    pub declarations_refused: Counter,
    /// Configuration reloads (SIGHUP or the file changed), by result.
    pub config_reloads: Family<ReloadLabel, Counter>,
    /// Deleted (or moved-away) files held open until they are read to their end.
    pub deleted_files_open: Gauge,
    /// Events from the eBPF programs, by kind.
    pub ebpf_events: Family<KindLabel, Counter>,
    /// eBPF events lost because the ring buffer was full.
    pub ebpf_ringbuf_drops: Counter,
    /// What the write hook could not follow: `procs_full` (a writer whose process id is
    /// beyond `pid_max` as read at start-up), `iov_partial` (a vectored write whose bytes
    /// were counted in part).
    pub ebpf_hook_misses: Family<KindLabel, Counter>,
    /// Bytes written to watched files by their writers, counted in the kernel by the eBPF
    /// write hook (`write`/`pwrite64`), published as readers catch up: compare with
    /// `read_bytes`.
    pub kernel_written_bytes: Family<SourceLabel, Counter>,
    /// Containers running, as seen by the cgroup lifecycle events since start-up.
    pub containers_running: Gauge,
    /// Kafka sinks: records the broker acknowledged.
    pub kafka_delivered: Family<SinkLabel, Counter>,
    /// Kafka sinks: deliveries that failed and were sent again.
    pub kafka_retried: Family<SinkLabel, Counter>,
    /// Kafka sinks: records the broker refused for good.
    pub kafka_refused: Family<SinkLabel, Counter>,
    /// Kafka sinks: refused records written to the dead-letter file.
    pub kafka_dead_lettered: Family<SinkLabel, Counter>,
    /// Kafka sinks: records queued in librdkafka or waiting for the broker's acknowledgement.
    pub kafka_in_flight: Family<SinkLabel, Gauge>,
    /// Kafka sinks: seconds from handing a batch to librdkafka to each record's
    /// acknowledgement.
    pub kafka_delivery_seconds: Family<SinkLabel, Histogram, fn() -> Histogram>,
    /// HTTP sinks: requests by response status.
    pub http_requests: Family<HttpLabel, Counter>,
    /// HTTP sinks: request body bytes sent (after compression), retries included.
    pub http_request_bytes: Family<SinkLabel, Counter>,
    /// HTTP sinks: requests sent again (connection errors, 408, 429, 5xx, items to retry).
    pub http_retries: Family<SinkLabel, Counter>,
    /// HTTP sinks: requests in flight (sent or being retried, not yet settled).
    pub http_in_flight: Family<SinkLabel, Gauge>,
    /// HTTP sinks: seconds per request, from sending to the response.
    pub http_request_seconds: Family<SinkLabel, Histogram, fn() -> Histogram>,
    /// HTTP sinks: records the destination refused for good.
    pub sink_refused: Family<SinkLabel, Counter>,
    /// HTTP sinks: refused records written to the dead-letter file.
    pub sink_dead_lettered: Family<SinkLabel, Counter>,
    /// Bytes read from the log files of each container (files whose path names one).
    pub container_read_bytes: Family<ContainerLabel, Counter>,
    /// Open files per container, for dropping the series of containers long gone.
    container_uses: ContainerUses,
    /// [`MetricsSettings::container_ttl`], in milliseconds.
    container_ttl_ms: AtomicU64,
    /// Bytes written to the log files of each container, counted by the eBPF write hook:
    /// written minus read is what a container's logs are behind, or lost.
    pub container_written_bytes: Family<ContainerLabel, Counter>,
    /// Checkpoint files written.
    pub checkpoint_writes: Counter,
    /// Checkpoint writes that failed (retried at the next interval).
    pub checkpoint_errors: Counter,
    /// Checkpoint files found damaged at start-up and set aside.
    pub checkpoint_corrupt: Counter,
    /// Checkpoints of files not seen for longer than `checkpoints.forget_after`, dropped.
    pub checkpoints_forgotten: Counter,
    /// Files currently open for reading.
    pub files_open: Gauge,
    /// Files followed with their descriptor closed while idle (opened again on their next
    /// write).
    pub files_parked: Gauge,
    /// Read errors (the file is retried on its next event).
    pub read_errors: Family<SourceLabel, Counter>,
    /// Discovery events seen, by kind.
    pub discovery_events: Family<KindLabel, Counter>,
    /// Read backend in use by reader threads.
    pub reader_backend: Family<BackendLabel, Gauge>,
    /// Bytes held by read buffers that are allocated.
    pub buffer_bytes: Gauge,
    /// Batches waiting in each queue.
    pub queue_depth: Family<QueueLabel, Gauge>,
    /// Records written by each sink.
    pub sink_records: Family<SinkLabel, Counter>,
    /// Bytes written by each sink.
    pub sink_bytes: Family<SinkLabel, Counter>,
    /// Write or sync errors of each sink (the data is retried, never dropped).
    pub sink_errors: Family<SinkLabel, Counter>,
    /// Batches acknowledged by every sink they went to.
    pub acked_batches: Counter,
}

impl std::fmt::Debug for Metrics {
    // The registry's contents are what `render` is for.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// A container's series are dropped once no file of it has been open for this long.
pub const DEFAULT_CONTAINER_TTL: Duration = Duration::from_secs(3600);

/// The `metrics` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsSettings {
    /// How long the series of a container whose files are all closed are kept.
    pub container_ttl: Duration,
}

impl Default for MetricsSettings {
    fn default() -> Self {
        Self {
            container_ttl: DEFAULT_CONTAINER_TTL,
        }
    }
}

/// How many files of a container are open, and since when none is.
#[derive(Debug, Default)]
struct ContainerUse {
    open: usize,
    idle_since: Option<Instant>,
}

type ContainerUses = Arc<Mutex<HashMap<String, ContainerUse>>>;

fn lock_uses(uses: &ContainerUses) -> MutexGuard<'_, HashMap<String, ContainerUse>> {
    // Every update leaves the map consistent; a panic elsewhere does not spoil it.
    uses.lock().unwrap_or_else(|e| e.into_inner())
}

/// An open file's share of its container's series (`ringtail_container_*_bytes_total`): the
/// counters, and a lease that, when the last file of the container closes, starts the clock
/// after which the series are dropped ([`MetricsSettings::container_ttl`]).
#[derive(Debug)]
pub struct ContainerCounters {
    /// Bytes read from the container's log files.
    pub read: Counter,
    /// Bytes the kernel counted written to them.
    pub written: Counter,
    label: String,
    uses: ContainerUses,
}

impl Drop for ContainerCounters {
    fn drop(&mut self) {
        let mut uses = lock_uses(&self.uses);
        if let Some(u) = uses.get_mut(&self.label) {
            u.open = u.open.saturating_sub(1);
            if u.open == 0 {
                u.idle_since = Some(Instant::now());
            }
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Self {
        // ringtail's own series under `ringtail_`; the process's under the names every client
        // library uses (`process_*`, no prefix).
        let mut root = Registry::default();
        root.register_collector(Box::new(process::ProcessCollector));
        let registry = root.sub_registry_with_prefix("ringtail");
        registry.register(
            "build",
            "The build, by version",
            prometheus_client::metrics::info::Info::new(vec![(
                "version",
                env!("CARGO_PKG_VERSION"),
            )]),
        );
        let m = Self {
            registry: Registry::default(),
            read_bytes: Family::default(),
            records: Family::default(),
            lines_truncated: Family::default(),
            truncated_bytes: Family::default(),
            malformed_lines: Family::default(),
            invalid_utf8: Family::default(),
            multiline_records: Family::default(),
            multiline_auto_streams: Family::default(),
            multiline_unjoined_lines: Family::default(),
            partial_lines_flushed: Family::default(),
            processing_failed: Family::default(),
            records_dropped: Family::default(),
            truncations: Family::default(),
            lost_bytes: Family::default(),
            files_gone_while_parked: Family::default(),
            files_gone_while_down: Family::default(),
            symlinks_refused: Family::default(),
            own_files_refused: Family::default(),
            sparse_bytes_skipped: Family::default(),
            descriptors_exhausted: Family::default(),
            waiting_for_descriptors: Gauge::default(),
            watch_failures: Counter::default(),
            directories_unwatched: Gauge::default(),
            files_filtered: Family::default(),
            declarations_active: Gauge::default(),
            declarations_refused: Counter::default(),
            config_reloads: Family::default(),
            deleted_files_open: Gauge::default(),
            ebpf_events: Family::default(),
            ebpf_ringbuf_drops: Counter::default(),
            ebpf_hook_misses: Family::default(),
            containers_running: Gauge::default(),
            kafka_delivered: Family::default(),
            kafka_retried: Family::default(),
            kafka_refused: Family::default(),
            kafka_dead_lettered: Family::default(),
            kafka_in_flight: Family::default(),
            kafka_delivery_seconds: Family::new_with_constructor(|| {
                // 1 ms to ~65 s.
                Histogram::new(exponential_buckets(0.001, 2.0, 17))
            }),
            http_requests: Family::default(),
            http_request_bytes: Family::default(),
            http_retries: Family::default(),
            http_in_flight: Family::default(),
            http_request_seconds: Family::new_with_constructor(|| {
                // 1 ms to ~65 s.
                Histogram::new(exponential_buckets(0.001, 2.0, 17))
            }),
            sink_refused: Family::default(),
            sink_dead_lettered: Family::default(),
            container_read_bytes: Family::default(),
            container_uses: ContainerUses::default(),
            container_ttl_ms: AtomicU64::new(DEFAULT_CONTAINER_TTL.as_millis() as u64),
            container_written_bytes: Family::default(),
            kernel_written_bytes: Family::default(),
            checkpoint_writes: Counter::default(),
            checkpoint_errors: Counter::default(),
            checkpoint_corrupt: Counter::default(),
            checkpoints_forgotten: Counter::default(),
            files_open: Gauge::default(),
            files_parked: Gauge::default(),
            read_errors: Family::default(),
            discovery_events: Family::default(),
            reader_backend: Family::default(),
            buffer_bytes: Gauge::default(),
            queue_depth: Family::default(),
            sink_records: Family::default(),
            sink_bytes: Family::default(),
            sink_errors: Family::default(),
            acked_batches: Counter::default(),
        };
        registry.register("read_bytes", "Bytes read from files", m.read_bytes.clone());
        registry.register("records", "Records produced from files", m.records.clone());
        registry.register(
            "lines_truncated",
            "Lines longer than max_line_bytes that were cut",
            m.lines_truncated.clone(),
        );
        registry.register(
            "truncated_bytes",
            "Bytes dropped from the tails of cut lines",
            m.truncated_bytes.clone(),
        );
        registry.register(
            "malformed_lines",
            "Lines not in the source's format, passed on raw with an error field",
            m.malformed_lines.clone(),
        );
        registry.register(
            "invalid_utf8_records",
            "Records whose message is not valid UTF-8 (exact bytes kept in message_base64)",
            m.invalid_utf8.clone(),
        );
        registry.register(
            "multiline_records",
            "Records joined from more than one line",
            m.multiline_records.clone(),
        );
        registry.register(
            "multiline_auto_streams",
            "Streams of files whose record-start shape multiline mode auto learnt, by shape (none: no shape in their first 100 lines; their lines pass alone)",
            m.multiline_auto_streams.clone(),
        );
        registry.register(
            "multiline_unjoined_lines",
            "Lines multiline mode auto passed alone because their stream had no record-start shape (yet)",
            m.multiline_unjoined_lines.clone(),
        );
        registry.register(
            "partial_lines_flushed",
            "Unfinished lines emitted as they were after waiting partial_timeout",
            m.partial_lines_flushed.clone(),
        );
        registry.register(
            "processing_failed",
            "Records a processor could not parse (kept, with an error field)",
            m.processing_failed.clone(),
        );
        registry.register(
            "records_dropped",
            "Records removed by drop/keep processors (configuration, not loss)",
            m.records_dropped.clone(),
        );
        registry.register(
            "truncations",
            "Files found shorter than the read offset and read again from the start",
            m.truncations.clone(),
        );
        registry.register(
            "lost_bytes",
            "Bytes that could not be read: deleted files closed by reader.max_open_deleted or reader.max_deleted_bytes (reason deleted_limit), deleted files that failed to read (unreadable), compressed rotations that did not decode (damaged_archive, in compressed bytes), parked files deleted after a write they were not opened again for (parked, where the eBPF write hook counted the bytes)",
            m.lost_bytes.clone(),
        );
        registry.register(
            "files_gone_while_parked",
            "Files closed while idle (reader.close_idle) that were deleted or moved out of the watched directories after a write, before they could be opened again: what was written since they were closed is lost",
            m.files_gone_while_parked.clone(),
        );
        registry.register(
            "files_gone_while_down",
            "Files the last run was reading that were gone at start-up (deleted or moved out of the watched directories while ringtail was not running): what was written to them after their checkpoint and not read before is lost",
            m.files_gone_while_down.clone(),
        );
        registry.register(
            "symlinks_refused",
            "Symlinks matching a glob but leading outside the log directories, refused",
            m.symlinks_refused.clone(),
        );
        registry.register(
            "sparse_bytes_skipped",
            "Bytes of sparse files' holes skipped: zeros that were never written, not read as lines",
            m.sparse_bytes_skipped.clone(),
        );
        registry.register(
            "descriptors_exhausted",
            "Opens of files and directories that failed for lack of descriptors (EMFILE, ENFILE, ENOMEM); they wait and are retried",
            m.descriptors_exhausted.clone(),
        );
        registry.register(
            "watch_failures",
            "Directories inotify refused to watch (fs.inotify.max_user_watches); they are rescanned instead",
            m.watch_failures.clone(),
        );
        registry.register(
            "directories_unwatched",
            "Directories of log files not watched by inotify now, found by rescans",
            m.directories_unwatched.clone(),
        );
        registry.register(
            "waiting_for_descriptors",
            "Files and directories waiting for a descriptor to be opened",
            m.waiting_for_descriptors.clone(),
        );
        registry.register(
            "own_files_refused",
            "Files a glob matched that are ringtail's own outputs (sink files, rotations, dead letters), never read",
            m.own_files_refused.clone(),
        );
        registry.register(
            "files_filtered",
            "Files a glob matched but the source's container filter rejected",
            m.files_filtered.clone(),
        );
        registry.register(
            "declarations_active",
            "Sources made from containers' RINGTAIL_LOGS_* declarations",
            m.declarations_active.clone(),
        );
        registry.register(
            "declarations_refused",
            "Container log declarations that could not be honoured",
            m.declarations_refused.clone(),
        );
        registry.register(
            "config_reloads",
            "Configuration reloads (SIGHUP or the file changed), by result",
            m.config_reloads.clone(),
        );
        registry.register(
            "deleted_files_open",
            "Deleted or moved-away files held open until read to their end",
            m.deleted_files_open.clone(),
        );
        registry.register(
            "ebpf_events",
            "Events from the eBPF programs, by kind",
            m.ebpf_events.clone(),
        );
        registry.register(
            "ebpf_ringbuf_drops",
            "eBPF events lost because the ring buffer was full",
            m.ebpf_ringbuf_drops.clone(),
        );
        registry.register(
            "ebpf_hook_misses",
            "What the eBPF write hook could not follow, by kind (procs_full, iov_partial)",
            m.ebpf_hook_misses.clone(),
        );
        registry.register(
            "kernel_written_bytes",
            "Bytes written to watched files, counted by the eBPF write hook (compare with read_bytes)",
            m.kernel_written_bytes.clone(),
        );
        registry.register(
            "container_read_bytes",
            "Bytes read from each container's log files",
            m.container_read_bytes.clone(),
        );
        registry.register(
            "container_written_bytes",
            "Bytes written to each container's log files, counted by the eBPF write hook (compare with container_read_bytes)",
            m.container_written_bytes.clone(),
        );
        registry.register(
            "kafka_delivered",
            "Records acknowledged by Kafka, per sink",
            m.kafka_delivered.clone(),
        );
        registry.register(
            "kafka_retried",
            "Kafka deliveries that failed and were sent again, per sink",
            m.kafka_retried.clone(),
        );
        registry.register(
            "kafka_refused",
            "Records Kafka refused for good (message too large, unknown topic, authorization), per sink",
            m.kafka_refused.clone(),
        );
        registry.register(
            "kafka_dead_lettered",
            "Refused records written to the dead-letter file, per sink",
            m.kafka_dead_lettered.clone(),
        );
        registry.register(
            "kafka_in_flight",
            "Records queued in librdkafka or awaiting acknowledgement, per sink",
            m.kafka_in_flight.clone(),
        );
        registry.register(
            "kafka_delivery_seconds",
            "Seconds from a batch handed to librdkafka to the acknowledgement of its last record",
            m.kafka_delivery_seconds.clone(),
        );
        registry.register(
            "http_requests",
            "HTTP sink requests by response status (`error`: no response), per sink",
            m.http_requests.clone(),
        );
        registry.register(
            "http_request_bytes",
            "HTTP sink request body bytes sent, after compression, retries included",
            m.http_request_bytes.clone(),
        );
        registry.register(
            "http_retries",
            "HTTP sink requests sent again (connection errors, 408, 429, 5xx, items to retry)",
            m.http_retries.clone(),
        );
        registry.register(
            "http_in_flight",
            "HTTP sink requests sent or being retried, not yet settled",
            m.http_in_flight.clone(),
        );
        registry.register(
            "http_request_seconds",
            "Seconds per HTTP sink request, from sending to the response",
            m.http_request_seconds.clone(),
        );
        registry.register(
            "sink_refused",
            "Records an HTTP destination refused for good (400, mapping errors, partial success), per sink",
            m.sink_refused.clone(),
        );
        registry.register(
            "sink_dead_lettered",
            "Refused records an HTTP sink wrote to its dead-letter file",
            m.sink_dead_lettered.clone(),
        );
        registry.register(
            "containers_running",
            "Containers running, from cgroup lifecycle events since start-up",
            m.containers_running.clone(),
        );
        registry.register(
            "checkpoint_writes",
            "Checkpoint files written",
            m.checkpoint_writes.clone(),
        );
        registry.register(
            "checkpoint_errors",
            "Checkpoint writes that failed (retried at the next interval)",
            m.checkpoint_errors.clone(),
        );
        registry.register(
            "checkpoint_corrupt",
            "Damaged checkpoint files found at start-up and set aside",
            m.checkpoint_corrupt.clone(),
        );
        registry.register(
            "checkpoints_forgotten",
            "Checkpoints of files unseen for longer than checkpoints.forget_after, dropped",
            m.checkpoints_forgotten.clone(),
        );
        registry.register("files_open", "Files open for reading", m.files_open.clone());
        registry.register(
            "files_parked",
            "Files read to their end and closed while idle; their next write opens them again",
            m.files_parked.clone(),
        );
        registry.register("read_errors", "Read errors", m.read_errors.clone());
        registry.register(
            "discovery_events",
            "File discovery events by kind",
            m.discovery_events.clone(),
        );
        registry.register(
            "reader_backend",
            "Reader threads by read backend",
            m.reader_backend.clone(),
        );
        registry.register(
            "buffer_bytes",
            "Bytes of read buffers allocated",
            m.buffer_bytes.clone(),
        );
        registry.register(
            "queue_depth",
            "Batches waiting in a queue",
            m.queue_depth.clone(),
        );
        registry.register(
            "sink_records",
            "Records written by a sink",
            m.sink_records.clone(),
        );
        registry.register(
            "sink_bytes",
            "Bytes written by a sink",
            m.sink_bytes.clone(),
        );
        registry.register(
            "sink_errors",
            "Sink write or sync errors (data is retried)",
            m.sink_errors.clone(),
        );
        registry.register(
            "acked_batches",
            "Batches acknowledged by all their sinks",
            m.acked_batches.clone(),
        );
        Self {
            registry: root,
            ..m
        }
    }

    /// The series of the container `label` for a file of it being opened.
    pub fn container_counters(&self, label: &str) -> ContainerCounters {
        let key = ContainerLabel {
            container: label.to_string(),
        };
        // Held while the series are looked up, so that a sweep cannot drop them meanwhile.
        let mut uses = lock_uses(&self.container_uses);
        let u = uses.entry(label.to_string()).or_default();
        u.open += 1;
        u.idle_since = None;
        ContainerCounters {
            read: self.container_read_bytes.get_or_create_owned(&key),
            written: self.container_written_bytes.get_or_create_owned(&key),
            label: label.to_string(),
            uses: Arc::clone(&self.container_uses),
        }
    }

    /// Applies the `metrics` settings.
    pub fn configure(&self, settings: &MetricsSettings) {
        self.container_ttl_ms
            .store(settings.container_ttl.as_millis() as u64, Ordering::Relaxed);
    }

    /// Drops the series of containers none of whose files has been open for the TTL, so a
    /// node running 100,000 short jobs a day keeps a bounded registry.
    fn forget_gone_containers(&self) {
        let ttl = Duration::from_millis(self.container_ttl_ms.load(Ordering::Relaxed));
        let mut uses = lock_uses(&self.container_uses);
        uses.retain(|label, u| {
            let keep = u.open > 0 || u.idle_since.is_none_or(|t| t.elapsed() < ttl);
            if !keep {
                let key = ContainerLabel {
                    container: label.clone(),
                };
                self.container_read_bytes.remove(&key);
                self.container_written_bytes.remove(&key);
            }
            keep
        });
    }

    /// Renders every metric in the OpenMetrics text format.
    pub fn render(&self) -> String {
        self.forget_gone_containers();
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// Lost bytes: a deleted file closed by `reader.max_open_deleted` or
    /// `reader.max_deleted_bytes` before it was read to its end.
    pub const LOST_DELETED_LIMIT: &'static str = "deleted_limit";
    /// Lost bytes: a deleted file whose reads failed.
    pub const LOST_UNREADABLE: &'static str = "unreadable";
    /// Lost bytes: compressed bytes of a rotation that did not decode (damaged or cut short).
    pub const LOST_DAMAGED_ARCHIVE: &'static str = "damaged_archive";
    /// Lost bytes: written to a parked file that was deleted before it was opened again.
    pub const LOST_PARKED: &'static str = "parked";

    /// The lost-bytes label of source `name` for `reason`.
    pub fn lost(name: &str, reason: &'static str) -> LostLabel {
        LostLabel {
            source: name.to_string(),
            reason,
        }
    }

    /// The per-source label.
    pub fn source(name: &str) -> SourceLabel {
        SourceLabel {
            source: name.to_string(),
        }
    }

    /// The gauge of a queue's depth.
    pub fn queue(&self, queue: &str) -> Gauge {
        self.queue_depth.get_or_create_owned(&QueueLabel {
            queue: queue.to_string(),
        })
    }

    /// Wraps the sending side of queue `name` with its depth gauge.
    pub fn queue_sender<T>(&self, name: String, tx: Sender<T>) -> QueueSender<T> {
        let depth = self.queue(&name);
        QueueSender { name, tx, depth }
    }

    /// The per-sink label.
    pub fn sink(name: &str) -> SinkLabel {
        SinkLabel {
            sink: name.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_series_of_a_container_gone_for_the_ttl_are_dropped() {
        let metrics = Metrics::new();
        metrics.configure(&MetricsSettings {
            container_ttl: Duration::from_millis(50),
        });
        let first = metrics.container_counters("shop/web-1/nginx");
        let second = metrics.container_counters("shop/web-1/nginx");
        first.read.inc_by(10);
        let other = metrics.container_counters("shop/job-7/main");
        drop(other);
        drop(first);
        std::thread::sleep(Duration::from_millis(80));
        let text = metrics.render();
        assert!(
            text.contains("container=\"shop/web-1/nginx\"") && !text.contains("job-7"),
            "{text}"
        );
        drop(second);
        assert!(metrics.render().contains("web-1"), "within the TTL");
        std::thread::sleep(Duration::from_millis(80));
        assert!(!metrics.render().contains("web-1"));
        // Opened again: counted again.
        let again = metrics.container_counters("shop/web-1/nginx");
        again.read.inc_by(5);
        assert!(
            metrics
                .render()
                .contains("ringtail_container_read_bytes_total{container=\"shop/web-1/nginx\"} 5")
        );
    }
}
