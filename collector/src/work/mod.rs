//! Worker threads: framing → decoding → multiline → processors → encoding, per file, in order.
//!
//! - [`item`]: what readers send (the reader → worker contract).
//! - [`route`]: the sets of sinks sources go to.
//! - [`output`]: the batch being built for one route, and where records are processed and
//!   encoded into it.
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
//!
//! Owns each file's cutting state and the batches being built; it may not touch files (the
//! readers read), nor what sinks do with a batch.

pub mod item;
pub mod output;
pub mod route;
pub mod spare;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use crossbeam::channel::{Receiver, RecvTimeoutError};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

use crate::cut::Records;
use crate::cut::multiline::shape::Shape;
use crate::deliver::ack::{AckHandle, AckTracker};
use crate::deliver::batch::Batch;
use crate::encode::FileFields;
use crate::file::FileId;
use crate::liveness::Heart;
use crate::metrics::{Metrics, ShapeLabel};
use crate::source::FileCtx;
use item::WorkItem;
use output::{Cut, Output, Stats};
use route::Route;

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
    /// Boxed: a file's state is kept for as long as it is followed, and 100,000 followed
    /// files should not cost a table of 100,000 full states when it grows.
    files: HashMap<FileId, Box<FileState>>,
    outputs: Vec<Output>,
    /// When the spare output buffers are dropped if the worker stays idle until then (see
    /// [`spare`]).
    trim_at: Option<Instant>,
    /// Whether it had work since it last trimmed (an idle worker sets no trim timer).
    worked_since_trim: bool,
    queue_depth: Gauge,
    /// This worker's progress, for `/livez`.
    heart: Arc<Heart>,
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
    /// `mode: auto` streams by shape, made on first use (most sources never learn one).
    auto_streams: Family<ShapeLabel, Counter>,
    unjoined: Counter,
    source: String,
    partial_flushed: Counter,
    processing_failed: Counter,
    dropped: Counter,
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
            auto_streams: metrics.multiline_auto_streams.clone(),
            unjoined: metrics.multiline_unjoined_lines.get_or_create_owned(&label),
            source: source.to_string(),
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
        add(&self.unjoined, cut.multiline.unjoined);
        let learnt = Shape::ALL
            .into_iter()
            .map(|shape| (shape.name(), cut.multiline.shapes[shape.index()]))
            .chain([("none", cut.multiline.unshaped)]);
        for (shape, n) in learnt.filter(|(_, n)| *n > 0) {
            self.auto_streams
                .get_or_create(&ShapeLabel {
                    source: self.source.clone(),
                    shape,
                })
                .inc_by(n);
        }
        add(&self.partial_flushed, cut.partial_flushed);
        add(&self.processing_failed, s.process.failed);
        add(&self.dropped, s.process.dropped);
    }
}

impl FileState {
    fn new(ctx: Arc<FileCtx>, offset: u64, route: usize, metrics: &Metrics) -> Self {
        let source = &ctx.source;
        Self {
            fields: FileFields::of(&ctx),
            records: Records::new(&source.cut, offset),
            route,
            reported: None,
            next_seq: 0,
            counters: SourceCounters::new(metrics, &source.name),
            ctx,
        }
    }

    /// Runs `cut` on the file's cutting state; its records go into `out`, its counters are
    /// published.
    fn cut(&mut self, out: &mut Output, cut: Cut<'_>) {
        let mut stats = Stats::default();
        out.cut(&mut self.records, cut, &self.ctx, &self.fields, &mut stats);
        let learnt = &stats.cut.multiline;
        if learnt.unshaped > 0 || learnt.shapes.iter().any(|&n| n > 0) {
            let shapes: Vec<&str> = Shape::ALL
                .into_iter()
                .filter(|shape| learnt.shapes[shape.index()] > 0)
                .map(Shape::name)
                .chain((learnt.unshaped > 0).then_some("none"))
                .collect();
            tracing::debug!(file = %self.ctx.path.display(), ?shapes, "multiline mode auto: record-start shape learnt");
        }
        self.counters.publish(&stats);
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
        let outputs = routes
            .iter()
            .map(|route| Output::new(route, batch_bytes))
            .collect();
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
            trim_at: None,
            worked_since_trim: false,
            queue_depth,
            heart: Heart::detached(&format!("worker-{index}")),
        }
    }

    /// Reports this worker's progress to `heart` (see [`crate::liveness`]).
    pub fn with_heart(mut self, heart: Arc<Heart>) -> Self {
        self.heart = heart;
        self
    }

    /// Runs until the readers close the input queue, then emits every pending multi-line
    /// record and delivers the last batches.
    pub fn run(mut self) -> Result<(), WorkerError> {
        loop {
            self.heart.wait();
            let received = match self.trim_at {
                Some(deadline) => self.input.recv_deadline(deadline),
                None => self
                    .input
                    .recv()
                    .map_err(|_| RecvTimeoutError::Disconnected),
            };
            self.heart.work();
            self.queue_depth.set(self.input.len() as i64);
            match received {
                Ok(items) => {
                    self.trim_at = None;
                    self.worked_since_trim = true;
                    self.handle(items)?;
                }
                Err(RecvTimeoutError::Timeout) => {
                    self.trim_when_idle(Instant::now());
                }
                Err(RecvTimeoutError::Disconnected) => break,
            }
            if self.input.is_empty() {
                self.flush_outputs()?;
                if self.trim_at.is_none() && self.worked_since_trim {
                    self.trim_at = Some(Instant::now() + spare::TRIM_AFTER);
                }
            }
        }
        for file in self.files.values_mut() {
            let out = &mut self.outputs[file.route];
            file.cut(out, Cut::FlushMultiline);
            file.report(out, None);
        }
        self.flush_outputs()
    }

    fn handle(&mut self, items: Vec<WorkItem>) -> Result<(), WorkerError> {
        for item in items {
            match item {
                WorkItem::Open { ctx, offset } => {
                    let route = self
                        .source_routes
                        .get(ctx.source.index)
                        .copied()
                        .unwrap_or(0);
                    let id = ctx.id;
                    self.files.insert(
                        id,
                        Box::new(FileState::new(ctx, offset, route, &self.metrics)),
                    );
                }
                WorkItem::Data {
                    id,
                    offset,
                    bytes,
                    read_started,
                    read_done,
                    at_end,
                } => {
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
                        file.cut(out, Cut::Finish(Some(offset)));
                    }
                    file.cut(out, Cut::Push(&bytes, read_done));
                    if at_end {
                        file.cut(out, Cut::FlushExpired(read_started));
                    }
                    file.report(out, None);
                    if out.len() >= self.batch_bytes {
                        self.flush_output(route)?;
                    }
                }
                WorkItem::Truncated { id } => {
                    if let Some(file) = self.files.get_mut(&id) {
                        let out = &mut self.outputs[file.route];
                        file.cut(out, Cut::Finish(Some(0)));
                        file.report(out, Some(0));
                    }
                }
                WorkItem::Hole { id, to } => {
                    if let Some(file) = self.files.get_mut(&id) {
                        let out = &mut self.outputs[file.route];
                        file.cut(out, Cut::Finish(Some(to)));
                        file.report(out, None);
                    }
                }
                WorkItem::Idle {
                    id,
                    at,
                    unfinished_line,
                    multiline,
                } => {
                    if let Some(file) = self.files.get_mut(&id)
                        && file.records.next_offset() == at
                    {
                        let out = &mut self.outputs[file.route];
                        // The line first: emitted as it is, it may join the pending record.
                        if unfinished_line {
                            file.cut(out, Cut::FlushUnfinished);
                        }
                        if multiline {
                            file.cut(out, Cut::FlushMultiline);
                        }
                        file.report(out, None);
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
                        file.cut(out, Cut::Finish(None));
                        let end = file.records.next_offset();
                        file.report_closed(out, end);
                    }
                }
            }
        }
        Ok(())
    }

    /// Idle since [`spare::TRIM_AFTER`] by `now`: drops the spare output buffers and gives
    /// their memory back. One timer per idle spell.
    fn trim_when_idle(&mut self, now: Instant) {
        if self.trim_at.is_some_and(|at| at <= now) {
            self.trim_at = None;
            self.worked_since_trim = false;
            let trimmed: usize = self.outputs.iter().map(Output::trim).sum();
            crate::memory::give_back_freed();
            tracing::debug!(
                worker = self.index,
                trimmed,
                "idle: spare output buffers dropped"
            );
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
        let ready = out.take(self.batch_bytes);
        let sinks = &self.routes[route].sinks;
        let ack = AckHandle::new(sinks.len(), ready.progress, Arc::clone(&self.tracker));
        for (sink, part) in sinks {
            let (data, index) = &ready.parts[*part];
            let batch = Batch {
                data: data.clone(),
                records: ready.records,
                ack: ack.clone(),
                index: index.clone(),
            };
            // A full sink queue is backpressure, not a stall.
            self.heart.wait();
            sink.send(batch).map_err(|_| WorkerError::SinkGone {
                sink: sink.name.clone(),
                worker: self.index,
            })?;
            self.heart.work();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crossbeam::channel::{Sender, bounded};

    use super::*;
    use crate::cut::decode::Format;
    use crate::cut::multiline::{MultilineRules, preset};
    use crate::deliver::ack::FileProgress;
    use crate::encode::Encoding;
    use crate::file::{FileIdentity, Fingerprint};
    use crate::source::Source;
    use bytes::Bytes;

    struct Rig {
        input: Option<Sender<Vec<WorkItem>>>,
        output: Receiver<Batch>,
        tracker: Arc<AckTracker>,
        thread: Option<std::thread::JoinHandle<Result<(), WorkerError>>>,
        ctx: Arc<FileCtx>,
    }

    fn rig(multiline: bool) -> Rig {
        rig_of(Format::Raw, multiline)
    }

    /// A worker for file 7 of `format`, with the `java` multi-line preset (100 ms timeout) if
    /// `multiline`.
    fn rig_of(format: Format, multiline: bool) -> Rig {
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
        let mut source = Source::new(0, "src", format);
        source.cut.multiline = multiline.then(|| {
            Arc::new(MultilineRules {
                mode: preset("java").unwrap(),
                end: None,
                max_lines: 100,
                max_bytes: 1 << 20,
                timeout: Duration::from_millis(100),
            })
        });
        source.cut.max_line_bytes = 1024;
        let source = Arc::new(source);
        let ctx = Arc::new(FileCtx {
            id: FileId(7),
            path: "/logs/a.log".into(),
            identity: FileIdentity { dev: 1, ino: 2 },
            source,
            meta: Default::default(),
        });
        tracker.open(
            ctx.id,
            crate::deliver::ack::Registration {
                identity: ctx.identity,
                born: None,
                fingerprint: Fingerprint::of(b""),
                path: &ctx.path,
                source: "src",
                offset: 0,
            },
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
        /// The worker is told of the rig's file, to be read from its start.
        fn open(&self) -> WorkItem {
            WorkItem::Open {
                ctx: Arc::clone(&self.ctx),
                offset: 0,
            }
        }

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
        read(offset, bytes, Instant::now(), false)
    }

    /// A chunk of file 7 read by a read started at `read_at` and done 10 ms later, which
    /// found the file's end if `at_end`.
    fn read(offset: u64, bytes: &'static [u8], read_at: Instant, at_end: bool) -> WorkItem {
        WorkItem::Data {
            id: FileId(7),
            offset,
            bytes: Bytes::from_static(bytes),
            read_started: read_at,
            read_done: read_at + Duration::from_millis(10),
            at_end,
        }
    }

    /// The reader's idle notice for file 7 at `at`.
    fn idle(at: u64, unfinished_line: bool, multiline: bool) -> WorkItem {
        WorkItem::Idle {
            id: FileId(7),
            at,
            unfinished_line,
            multiline,
        }
    }

    #[test]
    fn progress_stops_at_the_oldest_pending_record_until_its_file_is_idle() {
        let rig = rig(true);
        rig.send(vec![
            rig.open(),
            data(0, b"a\nb\n\tat x\n"),
            // Stale: the worker has data past it.
            idle(2, true, true),
        ]);
        let first = rig.batch();
        assert_eq!(messages(&first), vec!["a"]);
        assert_eq!(
            first.ack.progress(),
            &[FileProgress {
                id: FileId(7),
                offset: 2,
                seq: 0,
                closed: false,
            }],
            "`b` is pending"
        );
        // A notice for an unfinished line alone leaves the record pending.
        rig.send(vec![idle(10, true, false), idle(10, false, true)]);
        let second = rig.batch();
        assert_eq!(
            messages(&second),
            vec!["b\n\tat x"],
            "emitted on the reader's notice that the file is idle"
        );
        assert_eq!(
            second.ack.progress(),
            &[FileProgress {
                id: FileId(7),
                offset: 10,
                seq: 1,
                closed: false,
            }]
        );
        first.ack.ack();
        assert_eq!(rig.tracker.offset(FileId(7)), Some(2));
        second.ack.ack();
        assert_eq!(rig.tracker.offset(FileId(7)), Some(10));
        assert!(rig.stop().is_empty());
    }

    #[test]
    fn an_idle_notice_emits_the_unfinished_line_only_at_the_offset_it_names() {
        let rig = rig(false);
        rig.send(vec![
            rig.open(),
            data(0, b"x\nhal"),
            // Sent before the reader read more: the worker has data past it, so it is stale.
            idle(2, true, false),
        ]);
        let first = rig.batch();
        assert_eq!(messages(&first), vec!["x"]);
        assert_eq!(first.ack.progress()[0].offset, 2, "`hal` is pending");
        rig.send(vec![data(5, b"f"), idle(6, true, false)]);
        let second = rig.batch();
        assert_eq!(messages(&second), vec!["half"]);
        assert_eq!(second.ack.progress()[0].offset, 6);
        assert!(!second.ack.progress()[0].closed);
        rig.stop();
    }

    /// One stream's pending record goes out once a read that found the file's end was started
    /// the multi-line timeout after its last line, while the other stream goes on — not on a
    /// read from a backlog (its stream's rest may be on disk), whatever the time.
    #[test]
    fn a_streams_record_expires_on_a_read_to_the_end_while_the_other_stream_goes_on() {
        let rig = rig_of(Format::Cri, true);
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        const ERR: &[u8] = b"2026-01-01T00:00:00Z stderr F boom\n";
        const OUT1: &[u8] = b"2026-01-01T00:00:01Z stdout F line 1\n";
        const OUT2: &[u8] = b"2026-01-01T00:00:02Z stdout F line 2\n";
        let (at1, at2) = (ERR.len() as u64, (ERR.len() + OUT1.len()) as u64);
        let end = at2 + OUT2.len() as u64;
        rig.send(vec![
            rig.open(),
            read(0, ERR, t0, true),
            // 200 ms later, from a backlog: stderr's record waits.
            read(at1, OUT1, t0 + ms(200), false),
            // 250 ms later, to the end: stdout's first record ends, and stderr's expires.
            read(at2, OUT2, t0 + ms(250), true),
        ]);
        let batch = rig.batch();
        assert_eq!(messages(&batch), vec!["line 1", "boom"]);
        assert_eq!(
            batch.ack.progress()[0].offset,
            at2,
            "stdout's `line 2` is pending"
        );
        rig.send(vec![idle(end, false, true)]);
        let batch = rig.batch();
        assert_eq!(messages(&batch), vec!["line 2"]);
        assert_eq!(batch.ack.progress()[0].offset, end);
        rig.stop();
    }

    #[test]
    fn an_unfinished_line_joins_the_pending_record_before_both_are_emitted() {
        let rig = rig(true);
        rig.send(vec![
            rig.open(),
            data(0, b"a\n\tat b\n\tat c"),
            idle(13, true, true),
        ]);
        let batch = rig.batch();
        assert_eq!(messages(&batch), vec!["a\n\tat b\n\tat c"]);
        assert_eq!(batch.ack.progress()[0].offset, 13);
        rig.stop();
    }

    #[test]
    fn close_emits_the_unfinished_last_line() {
        let rig = rig(false);
        rig.send(vec![rig.open(), data(0, b"x\ny")]);
        let first = rig.batch();
        assert_eq!(messages(&first), vec!["x"]);
        assert_eq!(first.ack.progress()[0].offset, 2);
        rig.send(vec![WorkItem::Close { id: FileId(7) }]);
        let second = rig.batch();
        assert_eq!(messages(&second), vec!["y"]);
        assert_eq!(second.ack.progress()[0].offset, 3);
        assert!(second.ack.progress()[0].closed, "the file's last report");
        rig.stop();
    }

    #[test]
    fn shutdown_emits_pending_multiline_records_but_not_partial_lines() {
        let rig = rig(true);
        rig.send(vec![rig.open(), data(0, b"a\n\tat b\nunfinished")]);
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
        rig.send(vec![rig.open(), data(0, b"one\n")]);
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
