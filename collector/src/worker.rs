//! Worker threads: framing → decoding → multiline → NDJSON, per file, in order.
//!
//! Each file is owned by one worker (chosen by its id), so its framing, partial-line and
//! multiline state live in one place and its records leave in file order. A worker receives
//! [`WorkItem`] batches from the readers, appends encoded records to one output buffer per
//! *route* (the set of sinks a source goes to), and hands a buffer to the route's sinks when it
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
use crossbeam::channel::{Receiver, RecvTimeoutError, Sender};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;

use crate::ack::AckTracker;
use crate::batch::{AckHandle, Batch, FileProgress};
use crate::decode::{DecodeStats, Decoder, Entry};
use crate::encode::{EncodeStats, FileFields, encode};
use crate::framing::{FrameStats, Framer, Line};
use crate::metrics::Metrics;
use crate::multiline::{Multiline, MultilineStats};
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
    /// One queue per sink, with the sink's name.
    pub sinks: Vec<(String, Sender<Batch>)>,
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
    framer: Framer,
    decoder: Decoder,
    multiline: Option<Multiline>,
    route: usize,
    /// Whether `timers` holds an entry for this file.
    timed: bool,
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
}

#[derive(Default)]
struct Stats {
    frame: FrameStats,
    decode: DecodeStats,
    multiline: MultilineStats,
    encode: EncodeStats,
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
        }
    }

    fn publish(&self, s: &Stats) {
        let add = |c: &Counter, n: u64| {
            if n > 0 {
                c.inc_by(n);
            }
        };
        add(&self.records, s.encode.records);
        add(
            &self.lines_truncated,
            s.frame.truncated_lines + s.decode.truncated,
        );
        add(
            &self.truncated_bytes,
            s.frame.discarded_bytes + s.decode.truncated_bytes,
        );
        add(&self.malformed, s.decode.malformed);
        add(&self.invalid_utf8, s.encode.invalid_utf8);
        add(&self.multiline, s.multiline.joined);
    }
}

#[derive(Default)]
struct Output {
    buf: Vec<u8>,
    records: u64,
    progress: Vec<FileProgress>,
    slots: HashMap<SourceId, usize>,
}

impl Output {
    fn set_progress(&mut self, id: SourceId, offset: u64) {
        match self.slots.get(&id) {
            Some(&i) => self.progress[i].offset = offset,
            None => {
                self.slots.insert(id, self.progress.len());
                self.progress.push(FileProgress { id, offset });
            }
        }
    }

    fn is_empty(&self) -> bool {
        self.buf.is_empty() && self.progress.is_empty()
    }
}

impl FileState {
    fn new(ctx: Arc<FileCtx>, offset: u64, route: usize, metrics: &Metrics) -> Self {
        let source = &ctx.source;
        Self {
            fields: FileFields::new(&ctx.path, &source.name, &source.tags),
            framer: Framer::new(source.max_line_bytes, offset),
            decoder: Decoder::new(source.format, source.max_line_bytes),
            multiline: source.multiline.clone().map(Multiline::new),
            route,
            timed: false,
            counters: SourceCounters::new(metrics, &source.name),
            ctx,
        }
    }

    /// Runs one chunk through framing, decoding, multiline and encoding.
    fn process(&mut self, chunk: &[u8], now: Instant, out: &mut Vec<u8>, stats: &mut Stats) {
        let Self {
            framer,
            decoder,
            multiline,
            fields,
            ..
        } = self;
        let Stats {
            frame,
            decode,
            multiline: ml,
            encode: enc,
        } = stats;
        match multiline {
            Some(m) => framer.push(chunk, frame, &mut |line| {
                decoder.push(line, decode, &mut |entry| {
                    m.push(entry, now, ml, &mut |record| {
                        encode(out, &record, fields, enc)
                    })
                })
            }),
            None => framer.push(chunk, frame, &mut |line| {
                decoder.push(line, decode, &mut |entry| encode(out, &entry, fields, enc))
            }),
        }
    }

    /// Emits everything pending: the file will not continue where it was.
    fn finish(&mut self, out: &mut Vec<u8>, stats: &mut Stats, restart_at: Option<u64>) {
        let Self {
            framer,
            decoder,
            multiline,
            fields,
            ..
        } = self;
        let Stats {
            decode,
            multiline: ml,
            encode: enc,
            ..
        } = stats;
        let mut emit_entry = |entry: Entry<'_>| match multiline {
            Some(m) => m.push(entry, Instant::now(), ml, &mut |r| {
                encode(out, &r, fields, enc)
            }),
            None => encode(out, &entry, fields, enc),
        };
        let mut on_line = |line: Line<'_>| decoder.push(line, decode, &mut emit_entry);
        match restart_at {
            Some(offset) => framer.restart(offset, &mut on_line),
            None => framer.finish(&mut on_line),
        }
        decoder.finish(&mut emit_entry);
        if let Some(m) = multiline {
            m.flush_all(ml, &mut |r| encode(out, &r, fields, enc));
        }
    }

    fn complete_offset(&self) -> u64 {
        [
            self.framer.pending_start(),
            self.decoder.pending_start(),
            self.multiline.as_ref().and_then(Multiline::pending_start),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or_else(|| self.framer.next_offset())
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
        let outputs = routes.iter().map(|_| Output::default()).collect();
        let queue_depth = metrics.queue(format!("worker:{index}"));
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
                Err(RecvTimeoutError::Timeout) => self.expire(Instant::now())?,
                Err(RecvTimeoutError::Disconnected) => break,
            }
            if self.input.is_empty() {
                self.flush_outputs()?;
            }
        }
        let mut stats = Stats::default();
        let ids: Vec<SourceId> = self.files.keys().copied().collect();
        for id in ids {
            if let Some(file) = self.files.get_mut(&id)
                && let Some(m) = &mut file.multiline
            {
                let out = &mut self.outputs[file.route];
                let fields = &file.fields;
                m.flush_all(&mut stats.multiline, &mut |r| {
                    encode(&mut out.buf, &r, fields, &mut stats.encode)
                });
                out.set_progress(id, file.complete_offset());
                file.counters.publish(&stats);
                stats = Stats::default();
            }
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
                        tracing::error!(file = %id, "data for a file this worker does not know; dropped chunk is re-read after restart");
                        continue;
                    };
                    if offset != file.framer.next_offset() {
                        tracing::error!(
                            file = %file.ctx.path.display(),
                            expected = file.framer.next_offset(),
                            got = offset,
                            "non-contiguous chunk; restarting framing at the chunk"
                        );
                        let mut stats = Stats::default();
                        file.finish(&mut self.outputs[file.route].buf, &mut stats, Some(offset));
                        file.counters.publish(&stats);
                    }
                    let mut stats = Stats::default();
                    let out = &mut self.outputs[file.route];
                    file.process(&bytes, now, &mut out.buf, &mut stats);
                    out.records += stats.encode.records;
                    out.set_progress(id, file.complete_offset());
                    file.counters.publish(&stats);
                    if !file.timed
                        && let Some(deadline) =
                            file.multiline.as_ref().and_then(Multiline::deadline)
                    {
                        file.timed = true;
                        self.timers.push(Reverse((deadline, id)));
                    }
                    if out.buf.len() >= self.batch_bytes {
                        let route = file.route;
                        self.flush_output(route)?;
                    }
                }
                WorkItem::Truncated { id } => {
                    if let Some(file) = self.files.get_mut(&id) {
                        let mut stats = Stats::default();
                        let out = &mut self.outputs[file.route];
                        file.finish(&mut out.buf, &mut stats, Some(0));
                        out.records += stats.encode.records;
                        out.set_progress(id, 0);
                        file.counters.publish(&stats);
                    }
                }
                WorkItem::Renamed { ctx } => {
                    if let Some(file) = self.files.get_mut(&ctx.id) {
                        let source = &ctx.source;
                        file.fields = FileFields::new(&ctx.path, &source.name, &source.tags);
                        file.ctx = ctx;
                    }
                }
                WorkItem::Close { id } => {
                    if let Some(mut file) = self.files.remove(&id) {
                        let mut stats = Stats::default();
                        let out = &mut self.outputs[file.route];
                        file.finish(&mut out.buf, &mut stats, None);
                        out.records += stats.encode.records;
                        out.set_progress(id, file.framer.next_offset());
                        file.counters.publish(&stats);
                    }
                }
            }
        }
        Ok(())
    }

    /// Emits the multi-line records whose timeout has passed.
    fn expire(&mut self, now: Instant) -> Result<(), WorkerError> {
        while let Some(&Reverse((at, id))) = self.timers.peek() {
            if at > now {
                break;
            }
            self.timers.pop();
            let Some(file) = self.files.get_mut(&id) else {
                continue;
            };
            file.timed = false;
            let Some(m) = &mut file.multiline else {
                continue;
            };
            let mut stats = Stats::default();
            let out = &mut self.outputs[file.route];
            let fields = &file.fields;
            m.flush_expired(now, &mut stats.multiline, &mut |r| {
                encode(&mut out.buf, &r, fields, &mut stats.encode)
            });
            out.records += stats.encode.records;
            if let Some(next) = m.deadline() {
                file.timed = true;
                self.timers.push(Reverse((next, id)));
            }
            out.set_progress(id, file.complete_offset());
            file.counters.publish(&stats);
        }
        Ok(())
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
        let data = Bytes::from(std::mem::replace(
            &mut out.buf,
            Vec::with_capacity(self.batch_bytes + 4096),
        ));
        let records = std::mem::take(&mut out.records);
        let progress = std::mem::take(&mut out.progress);
        out.slots.clear();
        let sinks = &self.routes[route].sinks;
        let ack = AckHandle::new(sinks.len(), progress, Arc::clone(&self.tracker));
        for (name, tx) in sinks {
            let batch = Batch {
                data: data.clone(),
                records,
                ack: ack.clone(),
            };
            tx.send(batch).map_err(|_| WorkerError::SinkGone {
                sink: name.clone(),
                worker: self.index,
            })?;
        }
        Ok(())
    }
}
