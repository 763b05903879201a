//! Worker threads: framing → decoding → multiline → processors → encoding, per file, in order.
//!
//! Each file is owned by one worker (chosen by its id), so its framing, partial-line and
//! multiline state live in one place and its records leave in file order. A worker receives
//! [`WorkItem`] batches from the readers, appends encoded records to one output per *route*
//! (the set of sinks a source goes to) — one buffer per encoding the route's sinks use, each
//! record encoded once per encoding — and hands the buffers to the route's sinks when one
//! reaches the batch size — or as soon as its input queue is empty, so a trickle of lines is not
//! held back. Sends block when a sink's queue is full: that is how backpressure reaches the
//! readers. Lines are never copied on the way in except where a record spans chunks or joins
//! several lines.
//!
//! Every batch carries each contributing file's *complete offset*: the start of the oldest
//! record still pending in the file's state (an unfinished line, a partial CRI/docker line, a
//! pending multi-line record), or the end of what was read when nothing is pending.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use crossbeam::channel::{Receiver, RecvTimeoutError};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;

use crate::ack::AckTracker;
use crate::batch::{AckHandle, Batch, FileProgress, RecordIndex, RecordRef};
use crate::config::Encoding;
use crate::decode::Entry;
use crate::encode::{EncodeStats, FileFields, encode_text, encode_with};
use crate::metrics::{Metrics, QueueSender};
use crate::process::{self, Fields, Outcome, ProcessStats};
use crate::records::{CutStats, Records};
use crate::source::{FileCtx, SourceId};

/// What a reader tells a worker about a file.
#[derive(Debug)]
pub enum WorkItem {
    /// A file is open; its bytes from `offset` on will follow.
    Open {
        /// The file.
        ctx: Arc<FileCtx>,
        /// Where reading starts.
        offset: u64,
    },
    /// The next bytes of a file.
    Data {
        /// The file.
        id: SourceId,
        /// File offset of `bytes[0]`.
        offset: u64,
        /// The bytes, in a pooled page-aligned buffer.
        bytes: Bytes,
    },
    /// The file shrank below the read offset (copytruncate): pending state is flushed and
    /// reading restarts at offset 0.
    Truncated {
        /// The file.
        id: SourceId,
    },
    /// The file has a new path.
    Renamed {
        /// The file, with its new path.
        ctx: Arc<FileCtx>,
    },
    /// The file is gone and was read to its end: everything pending is emitted and the file's
    /// state dropped.
    Close {
        /// The file.
        id: SourceId,
    },
}

/// The sinks a group of sources is delivered to.
#[derive(Debug, Clone)]
pub struct Route {
    /// One queue per sink (named `sink:<name>`), with the position of the sink's encoding in
    /// `encodings`.
    pub sinks: Vec<(QueueSender<Batch>, usize)>,
    /// The encodings the sinks use, each once (each record is encoded once per entry), and
    /// whether a sink using it takes records one by one, so its batches carry a
    /// [`RecordIndex`].
    pub encodings: Vec<(Encoding, bool)>,
}

/// Why a worker stopped early.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// A sink's thread has exited, so its queue is closed and records cannot be delivered.
    #[error("sink `{sink}` stopped; worker {worker} cannot deliver records")]
    SinkGone {
        /// The sink.
        sink: String,
        /// The worker.
        worker: usize,
    },
}

/// Everything a worker thread needs.
pub struct Worker {
    index: usize,
    input: Receiver<Vec<WorkItem>>,
    routes: Arc<Vec<Route>>,
    /// Route of each source, by source index.
    source_routes: Arc<Vec<usize>>,
    tracker: Arc<AckTracker>,
    metrics: Arc<Metrics>,
    batch_bytes: usize,
    files: HashMap<SourceId, FileState>,
    outputs: Vec<Output>,
    /// Lower bounds of multiline deadlines, at most one entry per file (see `FileState::timed`).
    timers: BinaryHeap<Reverse<(Instant, SourceId)>>,
    queue_depth: Gauge,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("index", &self.index)
            .field("files", &self.files.len())
            .finish_non_exhaustive()
    }
}

struct FileState {
    ctx: Arc<FileCtx>,
    fields: FileFields,
    records: Records,
    route: usize,
    /// Whether `timers` holds an entry for this file.
    timed: bool,
    /// The complete offset last put in a batch; progress is reported only when it moves.
    reported: Option<u64>,
    /// Number of the next progress report (see [`FileProgress::seq`]).
    next_seq: u64,
    counters: SourceCounters,
}

#[derive(Clone)]
struct SourceCounters {
    records: Counter,
    lines_truncated: Counter,
    truncated_bytes: Counter,
    malformed: Counter,
    invalid_utf8: Counter,
    multiline: Counter,
    partial_flushed: Counter,
    processing_failed: Counter,
    dropped: Counter,
}

#[derive(Default)]
struct Stats {
    cut: CutStats,
    encode: EncodeStats,
    process: ProcessStats,
}

impl SourceCounters {
    fn new(metrics: &Metrics, source: &str) -> Self {
        let label = Metrics::source(source);
        Self {
            records: metrics.records.get_or_create_owned(&label),
            lines_truncated: metrics.lines_truncated.get_or_create_owned(&label),
            truncated_bytes: metrics.truncated_bytes.get_or_create_owned(&label),
            malformed: metrics.malformed_lines.get_or_create_owned(&label),
            invalid_utf8: metrics.invalid_utf8.get_or_create_owned(&label),
            multiline: metrics.multiline_records.get_or_create_owned(&label),
            partial_flushed: metrics.partial_lines_flushed.get_or_create_owned(&label),
            processing_failed: metrics.processing_failed.get_or_create_owned(&label),
            dropped: metrics.records_dropped.get_or_create_owned(&label),
        }
    }

    fn publish(&self, s: &Stats) {
        let add = |c: &Counter, n: u64| {
            if n > 0 {
                c.inc_by(n);
            }
        };
        add(&self.records, s.encode.records);
        let cut = &s.cut;
        add(
            &self.lines_truncated,
            cut.frame.truncated_lines + cut.decode.truncated,
        );
        add(
            &self.truncated_bytes,
            cut.frame.discarded_bytes + cut.decode.truncated_bytes,
        );
        add(&self.malformed, cut.decode.malformed);
        add(&self.invalid_utf8, s.encode.invalid_utf8);
        add(&self.multiline, cut.multiline.joined);
        add(&self.partial_flushed, cut.partial_flushed);
        add(&self.processing_failed, s.process.failed);
        add(&self.dropped, s.process.dropped);
    }
}

/// A route's batch being built.
struct Output {
    /// One per encoding of the route, in the order of [`Route::encodings`].
    parts: Vec<Part>,
    records: u64,
    progress: Vec<FileProgress>,
    slots: HashMap<SourceId, usize>,
}

/// The records of a batch in one encoding.
struct Part {
    encoding: Encoding,
    buf: Vec<u8>,
    /// The records one by one, when a sink wants them.
    index: Option<RecordIndex>,
    /// Position of each file context in `index.files`, by address (a renamed file has a new
    /// context, and keeps the old one for the records encoded before).
    file_slots: HashMap<usize, u32>,
    /// The slot of the file being encoded now.
    current: Option<u32>,
    /// Sizes of the largest recent batch (bytes, records), with which the next batch's
    /// buffers start: a batch ends after the chunk that crosses `batch_bytes`, so it is
    /// usually larger than that, and growing a buffer on the way copies the whole batch.
    high_water: (usize, usize),
}

impl Output {
    fn new(route: &Route) -> Self {
        Self {
            parts: route
                .encodings
                .iter()
                .map(|&(encoding, index)| Part {
                    encoding,
                    buf: Vec::new(),
                    index: index.then(RecordIndex::default),
                    file_slots: HashMap::new(),
                    current: None,
                    high_water: (0, 0),
                })
                .collect(),
            records: 0,
            progress: Vec::new(),
            slots: HashMap::new(),
        }
    }

    /// Bytes in the largest buffer.
    fn len(&self) -> usize {
        self.parts.iter().map(|p| p.buf.len()).max().unwrap_or(0)
    }
}

impl Part {
    /// Makes `ctx` the file being encoded, adding it to the record index if there is one.
    fn select(&mut self, ctx: &Arc<FileCtx>) {
        let Some(index) = self.index.as_mut() else {
            return;
        };
        let slot = *self
            .file_slots
            .entry(Arc::as_ptr(ctx) as usize)
            .or_insert_with(|| {
                index.files.push(Arc::clone(ctx));
                (index.files.len() - 1) as u32
            });
        self.current = Some(slot);
    }

    /// Hands the buffer and index over for sending, and starts the next ones at the size of
    /// the recent batches (the larger of this one and half the last, so that one huge record
    /// does not keep a huge buffer), at most `cap` bytes.
    fn take(&mut self, batch_bytes: usize, cap: usize) -> (Bytes, Option<Arc<RecordIndex>>) {
        let records_now = self.index.as_ref().map_or(0, |i| i.records.len());
        self.high_water = (
            self.buf.len().max(self.high_water.0 / 2).min(cap),
            records_now.max(self.high_water.1 / 2).min(cap / 16),
        );
        let data = Bytes::from(std::mem::replace(
            &mut self.buf,
            Vec::with_capacity((batch_bytes + 4096).max(self.high_water.0 + 4096)),
        ));
        self.file_slots.clear();
        self.current = None;
        let index_capacity = self.high_water.1 + 64;
        let index = self.index.as_mut().map(|index| {
            Arc::new(std::mem::replace(
                index,
                RecordIndex {
                    records: Vec::with_capacity(index_capacity),
                    files: Vec::new(),
                },
            ))
        });
        (data, index)
    }
}

impl Output {
    /// Sets the file's progress in this batch; a file's first report in a batch takes the
    /// next number from `next_seq`, later ones in the same batch update it.
    fn set_progress(&mut self, id: SourceId, offset: u64, closed: bool, next_seq: &mut u64) {
        match self.slots.get(&id) {
            Some(&i) => {
                self.progress[i].offset = offset;
                self.progress[i].closed |= closed;
            }
            None => {
                self.slots.insert(id, self.progress.len());
                self.progress.push(FileProgress {
                    id,
                    offset,
                    seq: *next_seq,
                    closed,
                });
                *next_seq += 1;
            }
        }
    }

    fn is_empty(&self) -> bool {
        self.parts.iter().all(|p| p.buf.is_empty()) && self.progress.is_empty()
    }
}

impl FileState {
    fn new(ctx: Arc<FileCtx>, offset: u64, route: usize, metrics: &Metrics) -> Self {
        let source = &ctx.source;
        Self {
            fields: FileFields::of(&ctx),
            records: Records::new(source, offset),
            route,
            timed: false,
            reported: None,
            next_seq: 0,
            counters: SourceCounters::new(metrics, &source.name),
            ctx,
        }
    }

    /// Puts the file's complete offset (or `offset`) in the output when it has moved.
    fn report(&mut self, out: &mut Output, offset: Option<u64>) {
        let offset = offset.unwrap_or_else(|| self.records.complete_offset());
        if self.reported != Some(offset) {
            self.reported = Some(offset);
            out.set_progress(self.ctx.id, offset, false, &mut self.next_seq);
        }
    }

    /// The file's last report: everything up to `end` is in this batch or an earlier one.
    fn report_closed(&mut self, out: &mut Output, end: u64) {
        self.reported = Some(end);
        out.set_progress(self.ctx.id, end, true, &mut self.next_seq);
    }
}

/// Encodes every record `$call` emits into `$out` (once per encoding of the route), then
/// publishes the counters.
macro_rules! encoding {
    ($file:expr, $out:expr, |$records:ident, $stats:ident, $emit:ident| $call:expr) => {{
        let file: &mut FileState = $file;
        let out: &mut Output = $out;
        let mut stats = Stats::default();
        for part in &mut out.parts {
            part.select(&file.ctx);
        }
        {
            let Stats {
                cut: $stats,
                encode: enc,
                process: processing,
            } = &mut stats;
            let fields = &file.fields;
            let processors = &*file.ctx.source.processors;
            let parts = &mut out.parts;
            let $emit = &mut |record: Entry<'_>| {
                let mut extracted = Fields::default();
                let (record, extracted) = if processors.is_empty() {
                    (record, None)
                } else {
                    let mut error = record.error;
                    match process::run(processors, &record, &mut extracted, &mut error, processing)
                    {
                        Outcome::Keep => (Entry { error, ..record }, Some(&extracted)),
                        Outcome::Dropped(_) => return,
                    }
                };
                // The first encoding counts the records (JSON, when there is one, also the
                // invalid UTF-8 it finds).
                let mut again = EncodeStats::default();
                for (k, part) in parts.iter_mut().enumerate() {
                    let counts = if k == 0 { &mut *enc } else { &mut again };
                    match part.encoding {
                        Encoding::Json => {
                            encode_with(&mut part.buf, &record, fields, extracted, counts)
                        }
                        Encoding::Text => encode_text(&mut part.buf, &record, counts),
                    }
                    if let (Some(index), Some(file)) = (part.index.as_mut(), part.current) {
                        index.records.push(RecordRef {
                            end: part.buf.len() as u32,
                            file,
                            stream: record.stream,
                        });
                    }
                }
            };
            let $records = &mut file.records;
            $call;
        }
        out.records += stats.encode.records;
        file.counters.publish(&stats);
    }};
}

impl Worker {
    /// A worker reading from `input` and delivering to `routes`.
    pub fn new(
        index: usize,
        input: Receiver<Vec<WorkItem>>,
        routes: Arc<Vec<Route>>,
        source_routes: Arc<Vec<usize>>,
        tracker: Arc<AckTracker>,
        metrics: Arc<Metrics>,
        batch_bytes: usize,
    ) -> Self {
        let outputs = routes.iter().map(Output::new).collect();
        let queue_depth = metrics.queue(&format!("worker:{index}"));
        Self {
            index,
            input,
            routes,
            source_routes,
            tracker,
            metrics,
            batch_bytes,
            files: HashMap::new(),
            outputs,
            timers: BinaryHeap::new(),
            queue_depth,
        }
    }

    /// Runs until the readers close the input queue, then emits every pending multi-line
    /// record and delivers the last batches.
    pub fn run(mut self) -> Result<(), WorkerError> {
        loop {
            let received = match self.timers.peek() {
                Some(&Reverse((deadline, _))) => self.input.recv_deadline(deadline),
                None => self
                    .input
                    .recv()
                    .map_err(|_| RecvTimeoutError::Disconnected),
            };
            self.queue_depth.set(self.input.len() as i64);
            match received {
                Ok(items) => self.handle(items)?,
                Err(RecvTimeoutError::Timeout) => self.expire(Instant::now()),
                Err(RecvTimeoutError::Disconnected) => break,
            }
            if self.input.is_empty() {
                self.flush_outputs()?;
            }
        }
        for file in self.files.values_mut() {
            let out = &mut self.outputs[file.route];
            encoding!(file, out, |records, stats, emit| records
                .flush_multiline(stats, emit));
            file.report(out, None);
        }
        self.flush_outputs()
    }

    fn handle(&mut self, items: Vec<WorkItem>) -> Result<(), WorkerError> {
        let now = Instant::now();
        for item in items {
            match item {
                WorkItem::Open { ctx, offset } => {
                    let route = self
                        .source_routes
                        .get(ctx.source.index)
                        .copied()
                        .unwrap_or(0);
                    let id = ctx.id;
                    self.files
                        .insert(id, FileState::new(ctx, offset, route, &self.metrics));
                }
                WorkItem::Data { id, offset, bytes } => {
                    let Some(file) = self.files.get_mut(&id) else {
                        tracing::error!(file = %id, "data for a file this worker does not know; the chunk is dropped and read again after a restart");
                        continue;
                    };
                    let route = file.route;
                    let out = &mut self.outputs[route];
                    if offset != file.records.next_offset() {
                        tracing::error!(
                            file = %file.ctx.path.display(),
                            expected = file.records.next_offset(),
                            got = offset,
                            "non-contiguous chunk; restarting framing at the chunk"
                        );
                        encoding!(file, out, |records, stats, emit| records.finish(
                            Some(offset),
                            stats,
                            emit
                        ));
                    }
                    encoding!(file, out, |records, stats, emit| records
                        .push(&bytes, now, stats, emit));
                    file.report(out, None);
                    if !file.timed
                        && let Some(deadline) = file.records.deadline()
                    {
                        file.timed = true;
                        self.timers.push(Reverse((deadline, id)));
                    }
                    if out.len() >= self.batch_bytes {
                        self.flush_output(route)?;
                    }
                }
                WorkItem::Truncated { id } => {
                    if let Some(file) = self.files.get_mut(&id) {
                        let out = &mut self.outputs[file.route];
                        encoding!(file, out, |records, stats, emit| records.finish(
                            Some(0),
                            stats,
                            emit
                        ));
                        file.report(out, Some(0));
                    }
                }
                WorkItem::Renamed { ctx } => {
                    if let Some(file) = self.files.get_mut(&ctx.id) {
                        file.fields = FileFields::of(&ctx);
                        file.ctx = ctx;
                    }
                }
                WorkItem::Close { id } => {
                    if let Some(mut file) = self.files.remove(&id) {
                        let out = &mut self.outputs[file.route];
                        encoding!(&mut file, out, |records, stats, emit| records
                            .finish(None, stats, emit));
                        let end = file.records.next_offset();
                        file.report_closed(out, end);
                    }
                }
            }
        }
        Ok(())
    }

    /// Emits the multi-line records whose timeout has passed.
    fn expire(&mut self, now: Instant) {
        while let Some(&Reverse((at, id))) = self.timers.peek() {
            if at > now {
                break;
            }
            self.timers.pop();
            let Some(file) = self.files.get_mut(&id) else {
                continue;
            };
            file.timed = false;
            let out = &mut self.outputs[file.route];
            encoding!(file, out, |records, stats, emit| records
                .flush_expired(now, stats, emit));
            if let Some(next) = file.records.deadline() {
                file.timed = true;
                self.timers.push(Reverse((next, id)));
            }
            file.report(out, None);
        }
    }

    fn flush_outputs(&mut self) -> Result<(), WorkerError> {
        for route in 0..self.outputs.len() {
            self.flush_output(route)?;
        }
        Ok(())
    }

    fn flush_output(&mut self, route: usize) -> Result<(), WorkerError> {
        let out = &mut self.outputs[route];
        if out.is_empty() {
            return Ok(());
        }
        let cap = 4 * self.batch_bytes;
        let parts: Vec<_> = out
            .parts
            .iter_mut()
            .map(|part| part.take(self.batch_bytes, cap))
            .collect();
        let records = std::mem::take(&mut out.records);
        let progress = std::mem::take(&mut out.progress);
        out.slots.clear();
        let sinks = &self.routes[route].sinks;
        let ack = AckHandle::new(sinks.len(), progress, Arc::clone(&self.tracker));
        for (sink, part) in sinks {
            let (data, index) = &parts[*part];
            let batch = Batch {
                data: data.clone(),
                records,
                ack: ack.clone(),
                index: index.clone(),
            };
            sink.send(batch).map_err(|_| WorkerError::SinkGone {
                sink: sink.name.clone(),
                worker: self.index,
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crossbeam::channel::{Sender, bounded};

    use super::*;
    use crate::config::{Format, SourceConfig};
    use crate::multiline::{MultilineRules, preset};
    use crate::source::FileIdentity;

    struct Rig {
        input: Option<Sender<Vec<WorkItem>>>,
        output: Receiver<Batch>,
        tracker: Arc<AckTracker>,
        thread: Option<std::thread::JoinHandle<Result<(), WorkerError>>>,
        ctx: Arc<FileCtx>,
    }

    fn rig(multiline: bool) -> Rig {
        let metrics = Arc::new(Metrics::new());
        let tracker = Arc::new(AckTracker::new(Arc::clone(&metrics)));
        let (input, rx) = bounded(4);
        let (sink_tx, output) = bounded(16);
        let routes = Arc::new(vec![Route {
            sinks: vec![(metrics.queue_sender("sink:test".to_string(), sink_tx), 0)],
            encodings: vec![(Encoding::Json, true)],
        }]);
        let worker = Worker::new(
            0,
            rx,
            routes,
            Arc::new(vec![0]),
            Arc::clone(&tracker),
            metrics,
            1 << 20,
        );
        let source = Arc::new(SourceConfig {
            multiline: multiline.then(|| {
                Arc::new(MultilineRules {
                    mode: preset("java").unwrap(),
                    end: None,
                    max_lines: 100,
                    max_bytes: 1 << 20,
                    timeout: Duration::from_millis(100),
                })
            }),
            max_line_bytes: 1024,
            ..SourceConfig::new(0, "src", Format::Raw)
        });
        let ctx = Arc::new(FileCtx {
            id: SourceId(7),
            path: "/logs/a.log".into(),
            identity: FileIdentity { dev: 1, ino: 2 },
            source,
            meta: Default::default(),
        });
        tracker.open(
            ctx.id,
            ctx.identity,
            crate::checkpoint::Fingerprint::of(b""),
            &ctx.path,
            "src",
            0,
        );
        Rig {
            input: Some(input),
            output,
            tracker,
            thread: Some(std::thread::spawn(move || worker.run())),
            ctx,
        }
    }

    impl Rig {
        fn send(&self, items: Vec<WorkItem>) {
            self.input.as_ref().unwrap().send(items).unwrap();
        }

        fn batch(&self) -> Batch {
            self.output
                .recv_timeout(Duration::from_secs(5))
                .expect("a batch within 5 s")
        }

        fn stop(mut self) -> Vec<Batch> {
            drop(self.input.take());
            assert!(self.thread.take().unwrap().join().unwrap().is_ok());
            self.output.try_iter().collect()
        }
    }

    /// The batch's messages; its record index must name the same records, each with its
    /// file and stream.
    fn messages(batch: &Batch) -> Vec<String> {
        let index = batch
            .index
            .as_ref()
            .expect("the test route asks for an index");
        let indexed: Vec<&[u8]> = index.iter(&batch.data).map(|(r, _, _)| r).collect();
        let lines: Vec<&[u8]> = batch
            .data
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .collect();
        assert_eq!(indexed, lines, "the index cuts the batch into its records");
        for (record, file, stream) in index.iter(&batch.data) {
            let value: serde_json::Value = serde_json::from_slice(record).unwrap();
            assert_eq!(value["file"].as_str().unwrap(), file.path.to_str().unwrap());
            assert_eq!(value["stream"].as_str(), stream.name());
        }
        std::str::from_utf8(&batch.data)
            .unwrap()
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["message"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect()
    }

    fn data(offset: u64, bytes: &'static [u8]) -> WorkItem {
        WorkItem::Data {
            id: SourceId(7),
            offset,
            bytes: Bytes::from_static(bytes),
        }
    }

    #[test]
    fn progress_stops_at_the_oldest_pending_record_until_it_times_out() {
        let rig = rig(true);
        rig.send(vec![
            WorkItem::Open {
                ctx: Arc::clone(&rig.ctx),
                offset: 0,
            },
            data(0, b"a\nb\n\tat x\n"),
        ]);
        let first = rig.batch();
        assert_eq!(messages(&first), vec!["a"]);
        assert_eq!(
            first.ack.progress(),
            &[FileProgress {
                id: SourceId(7),
                offset: 2,
                seq: 0,
                closed: false,
            }],
            "`b` is pending"
        );
        let second = rig.batch();
        assert_eq!(
            messages(&second),
            vec!["b\n\tat x"],
            "emitted by the 100 ms timeout"
        );
        assert_eq!(
            second.ack.progress(),
            &[FileProgress {
                id: SourceId(7),
                offset: 10,
                seq: 1,
                closed: false,
            }]
        );
        first.ack.ack();
        assert_eq!(rig.tracker.offset(SourceId(7)), Some(2));
        second.ack.ack();
        assert_eq!(rig.tracker.offset(SourceId(7)), Some(10));
        assert!(rig.stop().is_empty());
    }

    #[test]
    fn close_emits_the_unfinished_last_line() {
        let rig = rig(false);
        rig.send(vec![
            WorkItem::Open {
                ctx: Arc::clone(&rig.ctx),
                offset: 0,
            },
            data(0, b"x\ny"),
        ]);
        let first = rig.batch();
        assert_eq!(messages(&first), vec!["x"]);
        assert_eq!(first.ack.progress()[0].offset, 2);
        rig.send(vec![WorkItem::Close { id: SourceId(7) }]);
        let second = rig.batch();
        assert_eq!(messages(&second), vec!["y"]);
        assert_eq!(second.ack.progress()[0].offset, 3);
        assert!(second.ack.progress()[0].closed, "the file's last report");
        rig.stop();
    }

    #[test]
    fn shutdown_emits_pending_multiline_records_but_not_partial_lines() {
        let rig = rig(true);
        rig.send(vec![
            WorkItem::Open {
                ctx: Arc::clone(&rig.ctx),
                offset: 0,
            },
            data(0, b"a\n\tat b\nunfinished"),
        ]);
        let mut batches = vec![rig.batch()];
        batches.extend(rig.stop());
        let all: Vec<String> = batches.iter().flat_map(messages).collect();
        assert_eq!(all, vec!["a\n\tat b"]);
        let last = batches.last().unwrap().ack.progress()[0].offset;
        assert_eq!(
            last, 8,
            "the unfinished line is not acknowledged: it is read again after a restart"
        );
    }

    #[test]
    fn a_renamed_file_labels_later_records_with_its_new_path() {
        let rig = rig(false);
        rig.send(vec![
            WorkItem::Open {
                ctx: Arc::clone(&rig.ctx),
                offset: 0,
            },
            data(0, b"one\n"),
        ]);
        rig.batch();
        let renamed = Arc::new(FileCtx {
            path: "/logs/a.log.1".into(),
            ..(*rig.ctx).clone()
        });
        rig.send(vec![WorkItem::Renamed { ctx: renamed }, data(4, b"two\n")]);
        let batch = rig.batch();
        let value: serde_json::Value =
            serde_json::from_slice(batch.data.strip_suffix(b"\n").unwrap()).unwrap();
        assert_eq!(value["file"], "/logs/a.log.1");
        assert_eq!(value["offset"], 4);
        rig.stop();
    }
}
