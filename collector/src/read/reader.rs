//! Reader threads: which files to read, how much, and in what order.
//!
//! A reader owns a set of open files and a [`ReadBackend`]. Discovery tells it about files
//! ([`Control`]) and marks files *dirty* when they have new data
//! ([`ReaderHandle::mark_dirty`](crate::read::control::ReaderHandle::mark_dirty)).
//! Each round, the reader takes up to `max_files_per_round` ready files in FIFO order, reads one
//! chunk (the per-file budget) of each in a single backend batch, hands the chunks to the
//! workers, and puts every file whose chunk came back full at the back of the queue — so one
//! busy file cannot starve the others. A file whose read came back short has caught up; it waits
//! for its next discovery event; once it had nothing more for its source's `partial_timeout`
//! (or multi-line `timeout`), its worker gets an idle notice (see [`idle`]), so an unfinished
//! last line (or pending multi-line record) goes out. Each chunk says when its round's reads
//! were started and done and whether its read found the file's end, so workers time a
//! stream's multi-line record on the reader's clock ([`WorkItem::Data`]).
//!
//! Backpressure: a round needs free buffers from the bounded pool and room in the workers'
//! queues; when either is missing the reader waits, and files on disk are the buffer.
//!
//! A file is never closed while it may have unread data: on [`Control::Gone`] (deleted or moved
//! away) it is read to its end first, ahead of live files, and at its end kept open for
//! `gone_linger` and read once more (a writer that goes on after its file was replaced) — a deleted file pins its disk space
//! and a descriptor. The number of such files (`reader.max_open_deleted`) and the unread bytes
//! they hold (`reader.max_deleted_bytes`, so a long sink outage cannot fill the node's disk)
//! are bounded: past either bound the oldest is closed (the oldest is also read first), and
//! its unread bytes are counted in `lost_bytes` and logged with the file's path. A file that shrinks below the read offset was truncated (copytruncate):
//! that is counted in `truncations` and reading restarts at 0.
//!
//! Descriptors follow active files, not every file ever matched (see [`crate::read::budget`]):
//! a file read to its end and idle for `reader.close_idle` is *parked* — its descriptor
//! closed, its identity, offset and partial state kept — and opened again when it is marked
//! dirty; when discovery's new files wait for the open-file budget, the least recently active
//! idle files are parked at once. The reader's timers are the next idle file's deadline and
//! idle notices (one per idle timeout of its source), the trim of an idle spell, and a short
//! retry while a parked file waits for a slot: each fires once per idle spell, and a reader
//! with nothing read since sleeps until discovery wakes it.
//!
//! A compressed rotation (a `.gz` or `.zst` discovery hands over with its format) is read
//! through a decoder instead of the backend, in uncompressed bytes, to its end, then closed
//! (see [`decoded`]).
//!
//! The reader also completes each file's fingerprint (see [`crate::file`]): a file that
//! was shorter than [`FINGERPRINT_BYTES`] when discovery opened it gets a longer fingerprint
//! as it grows.
//!
//! Owns the order and size of reads; it may not touch what the bytes mean (workers cut them)
//! or which files exist (discovery decides).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam::channel::{Receiver, select};

use crate::deliver::ack::AckTracker;
use crate::ebpf::DirtyFlags;
use crate::file::{FINGERPRINT_BYTES, FileId, Fingerprint};
use crate::liveness::Heart;
use crate::metrics::{BackendLabel, Metrics};
use crate::queue::QueueSender;
use crate::read::backend::{BackendKind, ReadBackend, ReadOp};
use crate::read::budget::FileBudget;
use crate::read::buffer::{AlignedBuf, BufferError, BufferPool};
use crate::read::control::{Control, ReaderInbox};
use crate::read::file::OpenFile;
use crate::source::FileCtx;
use crate::work::item::WorkItem;

/// How long a gone file stays open once a read found its end, before one more read and its
/// close: its writer may still be writing — a program that goes on with its file after it
/// was replaced by a rename, the runtime's last lines before it reopens a rotated log.
pub const GONE_LINGER: Duration = Duration::from_secs(1);

/// At most this many files are read in one round (one io_uring submission).
pub const MAX_FILES_PER_ROUND: usize = 256;

/// Why a reader stopped.
#[derive(Debug, thiserror::Error)]
pub enum ReaderError {
    /// A read buffer could not be allocated.
    #[error("reader {reader}: {source}")]
    Buffer {
        /// The reader.
        reader: usize,
        /// The allocation failure.
        #[source]
        source: BufferError,
    },
    /// A worker's queue is closed: the worker has stopped.
    #[error("reader {reader}: worker {worker} stopped")]
    WorkerGone {
        /// The reader.
        reader: usize,
        /// The worker.
        worker: usize,
    },
}

/// What every reader shares with the rest of the pipeline.
#[derive(Debug, Clone)]
pub struct ReaderShared {
    /// Read buffers.
    pub pool: Arc<BufferPool>,
    /// The workers' queues.
    pub workers: Vec<QueueSender<Vec<WorkItem>>>,
    /// Disconnected when the reader must stop.
    pub shutdown: Receiver<()>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Where fingerprints go.
    pub tracker: Arc<AckTracker>,
    /// Most deleted files held open until drained (see the module documentation).
    pub max_open_deleted: usize,
    /// Most unread bytes held in deleted files (see the module documentation).
    pub max_deleted_bytes: u64,
    /// The eBPF write hook's per-file flags and byte counts.
    pub dirty_flags: Option<Arc<DirtyFlags>>,
    /// Whether the write hook wakes readers (`reader.wake: write_hook`): then a reader that
    /// has caught up with a file clears its flag, so that the next write wakes it again.
    /// Otherwise inotify wakes readers, and re-arming would only add a wake-up per catch-up.
    pub rearm: bool,
    /// A file read to its end and idle this long is parked (see the module documentation).
    pub close_idle: Duration,
    /// A gone file found at its end stays open this long, then is read once more and closed
    /// (see [`GONE_LINGER`]).
    pub gone_linger: Duration,
    /// This reader's progress, for `/livez`.
    pub heart: Arc<Heart>,
    /// Test-only: after its first read the reader hangs as a wedged one would
    /// (`RINGTAIL_TEST_STALL_READER` in the environment), so that `/livez` can be tested.
    pub stall_for_test: bool,
}

/// How often a parked file that waits for a slot in the budget is tried again.
const BLOCKED_RETRY: Duration = Duration::from_millis(100);

/// A reader thread's state.
pub struct Reader {
    index: usize,
    backend: Box<dyn ReadBackend>,
    inbox: ReaderInbox,
    /// This reader's progress, for `/livez`.
    heart: Arc<Heart>,
    /// See [`ReaderShared::stall_for_test`].
    stall_for_test: bool,
    pool: Arc<BufferPool>,
    workers: Vec<QueueSender<Vec<WorkItem>>>,
    shutdown: Receiver<()>,
    metrics: Arc<Metrics>,
    tracker: Arc<AckTracker>,
    max_deleted_bytes: u64,
    max_open_deleted: usize,
    dirty_flags: Option<Arc<DirtyFlags>>,
    rearm: bool,
    budget: Arc<FileBudget>,
    close_idle: Duration,
    gone_linger: Duration,
    /// Gone files found at their end, with when they are read once more.
    lingering: VecDeque<(Instant, FileId)>,
    /// When files that had data are looked at for an idle notice (see [`idle`]).
    notices: BinaryHeap<Reverse<(Instant, FileId)>>,
    /// How late a notice may go out: the smallest slack of the files it had notices for.
    notice_slack: Duration,
    /// When the pool's free buffers are trimmed if the reader stays idle until then (see
    /// [`memory`]).
    trim_at: Option<Instant>,
    /// Whether it read since it last trimmed.
    read_since_trim: bool,
    /// When the current round's reads were started and done (see [`WorkItem::Data`]).
    read_at: (Instant, Instant),
    /// Files found at their end, least recently first, with when (an entry is checked
    /// against the file's `idle_since` when it comes up).
    idle: VecDeque<(Instant, FileId)>,
    /// Parked files with new data that wait for a slot in the budget.
    blocked: HashSet<FileId>,
    files: HashMap<FileId, OpenFile>,
    ready: VecDeque<FileId>,
    /// Gone files ready to read, oldest first; read before `ready`.
    ready_gone: VecDeque<FileId>,
    /// Files that are gone, oldest first (closed ones are skipped when met).
    gone: VecDeque<FileId>,
    out: Vec<Vec<WorkItem>>,
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader")
            .field("index", &self.index)
            .field("backend", &self.backend.name())
            .field("files", &self.files.len())
            .finish_non_exhaustive()
    }
}

/// Why a round could not run to completion.
enum Stop {
    Shutdown,
    Failed(ReaderError),
}

impl From<ReaderError> for Stop {
    fn from(e: ReaderError) -> Self {
        Stop::Failed(e)
    }
}

/// A reader thread's body: sets up the `backend` (io_uring falls back to `pread` when the
/// kernel refuses it, and says so), then reads until shutdown.
pub fn run(
    index: usize,
    backend: BackendKind,
    inbox: ReaderInbox,
    shared: ReaderShared,
) -> Result<(), ReaderError> {
    let (backend, fell_back) = crate::read::create(backend, MAX_FILES_PER_ROUND as u32 * 2);
    match fell_back {
        Some(reason) => {
            tracing::warn!(reader = index, %reason, "io_uring unavailable; reading with pread")
        }
        None => tracing::info!(reader = index, backend = backend.name(), "reader started"),
    }
    Reader::new(index, backend, inbox, shared).run()
}

impl Reader {
    /// A reader that reads with `backend` and feeds the workers; it stops when every sender of
    /// `shared.shutdown` has been dropped.
    pub fn new(
        index: usize,
        backend: Box<dyn ReadBackend>,
        inbox: ReaderInbox,
        shared: ReaderShared,
    ) -> Self {
        let ReaderShared {
            pool,
            workers,
            shutdown,
            metrics,
            tracker,
            max_open_deleted,
            max_deleted_bytes,
            dirty_flags,
            rearm,
            close_idle,
            gone_linger,
            heart,
            stall_for_test,
        } = shared;
        let budget = Arc::clone(inbox.budget());
        metrics
            .reader_backend
            .get_or_create(&BackendLabel {
                backend: backend.name(),
            })
            .inc();
        let out = workers.iter().map(|_| Vec::new()).collect();
        Self {
            index,
            backend,
            inbox,
            pool,
            workers,
            shutdown,
            metrics,
            tracker,
            max_open_deleted,
            max_deleted_bytes,
            dirty_flags,
            rearm,
            budget,
            close_idle,
            gone_linger,
            lingering: VecDeque::new(),
            notices: BinaryHeap::new(),
            notice_slack: Duration::MAX,
            trim_at: None,
            read_since_trim: false,
            read_at: (Instant::now(), Instant::now()),
            heart,
            stall_for_test,
            idle: VecDeque::new(),
            blocked: HashSet::new(),
            files: HashMap::new(),
            ready: VecDeque::new(),
            ready_gone: VecDeque::new(),
            gone: VecDeque::new(),
            out,
        }
    }

    /// Runs until shutdown. Closing the worker queues (by dropping the senders) on return
    /// tells the workers that no more data comes.
    pub fn run(mut self) -> Result<(), ReaderError> {
        let result = loop {
            match self.round() {
                Ok(()) => {}
                Err(Stop::Shutdown) => break Ok(()),
                Err(Stop::Failed(e)) => break Err(e),
            }
        };
        let parked = self.files.values().filter(|f| f.parked).count() as i64;
        let open = self.files.len() as i64 - parked;
        self.metrics.files_open.dec_by(open);
        self.metrics.files_parked.dec_by(parked);
        let gone = self.files.values().filter(|f| f.gone).count() as i64;
        self.metrics.deleted_files_open.dec_by(gone);
        result
    }

    fn round(&mut self) -> Result<(), Stop> {
        if self.shutdown_disconnected() {
            return Err(Stop::Shutdown);
        }
        while let Ok(control) = self.inbox.control().try_recv() {
            self.control(control);
        }
        self.take_dirty();
        self.retry_blocked();
        let now = Instant::now();
        self.expire_idle(now);
        self.expire_lingering(now);
        self.send_idle_notices(now);
        if self.ready.is_empty() && self.ready_gone.is_empty() {
            self.send_out()?;
            self.trim_when_idle(now);
            let timer = match self.next_timer(now) {
                Some(wait) => crossbeam::channel::after(wait),
                None => crossbeam::channel::never(),
            };
            self.heart.wait();
            select! {
                recv(self.inbox.control()) -> msg => match msg {
                    Ok(control) => self.control(control),
                    // Discovery has stopped: nothing new will come, but shutdown decides.
                    Err(_) => { let _ = self.shutdown.recv(); return Err(Stop::Shutdown) }
                },
                recv(self.inbox.wake()) -> _ => {}
                recv(timer) -> _ => {}
                recv(self.shutdown) -> _ => return Err(Stop::Shutdown),
            }
            self.heart.work();
            return Ok(());
        }
        self.heart.work();
        self.trim_at = None;
        self.read_since_trim = true;
        let mut ops = self.prepare()?;
        let decoded = self.read_decoded(&mut ops);
        let submitted: Vec<FileId> = ops.iter().map(|op| op.id).collect();
        // Before the reads: what is written from here on may not be in them; after: nothing
        // in them was written later.
        let started = Instant::now();
        let mut done = self.backend.read_batch(ops);
        self.read_at = (started, Instant::now());
        if self.stall_for_test {
            tracing::warn!(
                reader = self.index,
                "RINGTAIL_TEST_STALL_READER: hanging (test only)"
            );
            loop {
                std::thread::sleep(Duration::from_secs(3600));
            }
        }
        if done.len() != submitted.len() {
            // A read task was lost (see the io_uring backend); read those files again.
            let returned: HashSet<FileId> = done.iter().map(|op| op.id).collect();
            for id in submitted.into_iter().filter(|id| !returned.contains(id)) {
                self.enqueue(id);
            }
        }
        done.extend(decoded);
        for op in done {
            self.complete(op);
        }
        self.send_out()
    }

    fn shutdown_disconnected(&self) -> bool {
        matches!(
            self.shutdown.try_recv(),
            Err(crossbeam::channel::TryRecvError::Disconnected)
        )
    }

    fn control(&mut self, control: Control) {
        match control {
            Control::Open {
                ctx,
                file,
                offset,
                fingerprint_len,
                codec,
            } => {
                let id = ctx.id;
                // Discovery reserved the file's slot in the budget; it is given back when the
                // file is closed or parked.
                let decoder = match codec {
                    Some(codec) => match self.decoder(&ctx, file, codec) {
                        Some(decoder) => Some(decoder),
                        None => return,
                    },
                    None => {
                        if let Err(e) = self.backend.register(id, file) {
                            self.budget.release();
                            tracing::error!(file = %ctx.path.display(), error = %e, "cannot read file; it is skipped until it is discovered again");
                            self.metrics
                                .read_errors
                                .get_or_create(&Metrics::source(&ctx.source.name))
                                .inc();
                            return;
                        }
                        None
                    }
                };
                let worker = (id.0 % self.workers.len() as u64) as usize;
                self.out[worker].push(WorkItem::Open {
                    ctx: Arc::clone(&ctx),
                    offset,
                });
                tracing::debug!(file = %ctx.path.display(), id = %id, offset, "reading file");
                let mut file = OpenFile::new(ctx, offset, worker, fingerprint_len, &self.metrics);
                file.decoder = decoder;
                self.files.insert(id, file);
                self.metrics.files_open.inc();
                self.enqueue(id);
            }
            Control::Renamed { id, path } => {
                // A compressed rotation's records keep the path it was compressed from.
                if let Some(f) = self.files.get_mut(&id)
                    && f.decoder.is_none()
                {
                    let ctx = Arc::new(FileCtx {
                        path,
                        ..(*f.ctx).clone()
                    });
                    f.ctx = Arc::clone(&ctx);
                    self.out[f.worker].push(WorkItem::Renamed { ctx });
                    self.enqueue(id);
                }
            }
            Control::MakeRoom { open } => {
                self.make_room(open);
            }
            Control::Gone { id } => {
                if self.files.get(&id).is_some_and(|f| f.parked) {
                    // Read to its end when it was parked; what was written to it since cannot
                    // be reached any more.
                    self.gone_while_parked(id);
                    self.close(id);
                    return;
                }
                // A compressed rotation is read to its end and closed anyway, and holds no
                // deleted file's disk space for long.
                if let Some(f) = self.files.get_mut(&id)
                    && !f.gone
                    && f.decoder.is_none()
                {
                    f.gone = true;
                    if f.queued {
                        // Move it to the gone files' queue.
                        self.ready.retain(|&r| r != id);
                        f.queued = false;
                    }
                    self.metrics.deleted_files_open.inc();
                    self.gone.push_back(id);
                    self.enqueue(id);
                    self.enforce_deleted_limit();
                }
            }
        }
    }

    /// Past `max_open_deleted` gone files, or `max_deleted_bytes` unread in them, closes the
    /// oldest: what it still held is lost, and said so.
    fn enforce_deleted_limit(&mut self) {
        let open_gone =
            |files: &HashMap<FileId, OpenFile>, id: &FileId| files.get(id).is_some_and(|f| f.gone);
        self.gone.retain(|id| open_gone(&self.files, id));
        let mut unread: Vec<u64> = self
            .gone
            .iter()
            .map(|id| {
                let offset = self.files.get(id).map_or(0, |f| f.offset);
                self.backend
                    .size(*id)
                    .map_or(0, |size| size.saturating_sub(offset))
            })
            .collect();
        let mut held: u64 = unread.iter().sum();
        while self.gone.len() > self.max_open_deleted || held > self.max_deleted_bytes {
            let Some(id) = self.gone.pop_front() else {
                break;
            };
            let lost = if unread.is_empty() {
                0
            } else {
                unread.remove(0)
            };
            held -= lost;
            let Some(file) = self.files.get(&id) else {
                continue;
            };
            file.lost(Metrics::LOST_DELETED_LIMIT, lost);
            let (limit, what) = if self.gone.len() >= self.max_open_deleted {
                (
                    self.max_open_deleted as u64,
                    "reader.max_open_deleted files",
                )
            } else {
                (
                    self.max_deleted_bytes,
                    "reader.max_deleted_bytes unread bytes",
                )
            };
            tracing::error!(
                file = %file.ctx.path.display(),
                offset = file.offset,
                lost_bytes = lost,
                limit,
                "closing a deleted file before it was read to its end: deleted files hold more than {what}; its unread bytes are lost"
            );
            self.close(id);
        }
    }

    /// Queues a file for reading (opening it again if it was parked). Gone files go first:
    /// they hold disk space until drained.
    fn enqueue(&mut self, id: FileId) {
        if self.files.get(&id).is_some_and(|f| f.parked && !f.queued) && !self.unpark(id) {
            return;
        }
        if let Some(f) = self.files.get_mut(&id)
            && !f.queued
        {
            f.queued = true;
            if f.gone {
                self.ready_gone.push_back(id);
            } else {
                self.ready.push_back(id);
            }
        }
    }

    fn take_dirty(&mut self) {
        for id in self.inbox.take_dirty() {
            self.enqueue(id);
        }
    }

    /// Takes ready files and a buffer for each; waits for a buffer only when it has none.
    fn prepare(&mut self) -> Result<Vec<ReadOp>, Stop> {
        let waiting = self.ready.len() + self.ready_gone.len();
        let mut ops = Vec::with_capacity(waiting.min(MAX_FILES_PER_ROUND));
        while ops.len() < MAX_FILES_PER_ROUND {
            let Some(id) = self
                .ready_gone
                .pop_front()
                .or_else(|| self.ready.pop_front())
            else {
                break;
            };
            let Some(file) = self.files.get_mut(&id) else {
                continue;
            };
            file.queued = false;
            let offset = file.offset;
            let buf = match self.try_buffer()? {
                Some(buf) => buf,
                None if ops.is_empty() => {
                    // Every buffer is downstream; the workers give them back as they finish.
                    self.heart.wait();
                    let buf = self.wait_for_buffer()?;
                    self.heart.work();
                    buf
                }
                None => {
                    if let Some(f) = self.files.get_mut(&id) {
                        f.queued = true;
                        if f.gone {
                            self.ready_gone.push_front(id);
                        } else {
                            self.ready.push_front(id);
                        }
                    }
                    break;
                }
            };
            ops.push(ReadOp::new(id, offset, buf));
        }
        Ok(ops)
    }

    fn complete(&mut self, op: ReadOp) {
        let ReadOp {
            id, buf, result, ..
        } = op;
        let capacity = buf.capacity();
        let Some((offset, after_hole)) = self.files.get(&id).map(|f| (f.offset, f.after_hole))
        else {
            self.pool.put(buf);
            return;
        };
        match result {
            Ok(0) => {
                self.pool.put(buf);
                self.at_end(id, true);
            }
            Ok(n) if self.is_decoded(id) => {
                // A decoded rotation is complete: its end is its close, which emits all.
                self.deliver(id, buf, n, false);
                if n == capacity {
                    self.enqueue(id);
                } else {
                    self.at_end(id, false);
                }
            }
            Ok(n) => {
                let Some(buf) = self.without_holes(id, offset, after_hole, buf) else {
                    return;
                };
                self.deliver(id, buf, n, n < capacity);
                if n == capacity {
                    self.enqueue(id);
                } else {
                    self.at_end(id, false);
                }
            }
            Err(e) if self.is_decoded(id) => {
                self.pool.put(buf);
                self.decode_failed(id, &e);
            }
            Err(e) => {
                self.pool.put(buf);
                let Some(file) = self.files.get_mut(&id) else {
                    return;
                };
                file.read_errors.inc();
                if file.errors_logged < 10 {
                    file.errors_logged += 1;
                    tracing::warn!(file = %file.ctx.path.display(), offset = file.offset, error = %e, "read failed; retried on the file's next event");
                }
                if file.gone {
                    let unread = self
                        .backend
                        .size(id)
                        .map_or(0, |size| size.saturating_sub(file.offset));
                    file.lost(Metrics::LOST_UNREADABLE, unread);
                    tracing::error!(file = %file.ctx.path.display(), offset = file.offset, lost_bytes = unread, "file is gone and cannot be read to its end; its unread bytes are lost");
                    self.close(id);
                }
            }
        }
    }

    /// Hands `n` bytes read from file `id` at its offset to its worker; `at_end`: the read
    /// found the file's end.
    fn deliver(&mut self, id: FileId, buf: AlignedBuf, n: usize, at_end: bool) {
        let Some(file) = self.files.get_mut(&id) else {
            self.pool.put(buf);
            return;
        };
        file.after_hole = false;
        file.read_bytes.inc_by(n as u64);
        if let Some(container) = &file.container {
            container.read.inc_by(n as u64);
        }
        let offset = file.offset;
        file.offset += n as u64;
        if let Some(due) = file.data_sent(Instant::now()) {
            self.notices.push(Reverse((due, id)));
            self.notice_slack = self.notice_slack.min(file.notice_slack());
        }
        let worker = file.worker;
        // A compressed rotation's fingerprint, taken by discovery, covers all it can.
        if (file.fingerprint_len as usize) < FINGERPRINT_BYTES
            && file.offset > u64::from(file.fingerprint_len)
            && file.decoder.is_none()
        {
            let fingerprint = if offset == 0 {
                Fingerprint::of(buf.filled())
            } else {
                let mut head = [0u8; FINGERPRINT_BYTES];
                match self.backend.read_head(id, &mut head) {
                    Ok(len) => Fingerprint::of(&head[..len]),
                    // Keep the shorter fingerprint; it is still a valid one.
                    Err(_) => Fingerprint {
                        len: file.fingerprint_len,
                        crc: 0,
                    },
                }
            };
            if fingerprint.len > file.fingerprint_len {
                file.fingerprint_len = fingerprint.len;
                self.tracker.fingerprint(id, fingerprint);
            }
        }
        let bytes = self.pool.freeze(buf);
        self.out[worker].push(WorkItem::Data {
            id,
            offset,
            bytes,
            read_started: self.read_at.0,
            read_done: self.read_at.1,
            at_end,
        });
    }

    /// A read reached the end of the file for now. `empty`: it returned nothing at all.
    fn at_end(&mut self, id: FileId, empty: bool) {
        let Some(file) = self.files.get_mut(&id) else {
            return;
        };
        if file.decoder.is_some() {
            self.decoded_end(id);
            return;
        }
        if file.gone {
            if !self.linger(id) {
                self.close(id);
            }
            return;
        }
        // Caught up: publish what the kernel counted written. When the write hook wakes
        // readers, also let it wake us for this file again: a write between the read that
        // found the end and the clear found the flag still set and sent nothing, so a set flag
        // means one more read.
        if let Some(flags) = &self.dirty_flags {
            let identity = file.ctx.identity;
            file.publish_written(flags);
            if self.rearm && flags.clear(identity.dev, identity.ino) {
                self.enqueue(id);
                return;
            }
        }
        // Idle since the last read that found data: a wake-up with nothing to read (a rescan,
        // an event about another write) does not make a file younger.
        let now = Instant::now();
        if !empty || file.idle_since.is_none() {
            file.idle_since = Some(now);
        }
        if !file.in_idle {
            file.in_idle = true;
            self.idle.push_back((now, id));
        }
        if !empty {
            return;
        }
        // Woken but nothing to read: the file may have been truncated below our offset.
        let Some(file) = self.files.get_mut(&id) else {
            return;
        };
        match self.backend.size(id) {
            Ok(size) if size < file.offset => {
                tracing::warn!(
                    file = %file.ctx.path.display(),
                    size,
                    offset = file.offset,
                    "file was truncated; reading it again from the start"
                );
                file.truncations.inc();
                file.offset = 0;
                file.after_hole = false;
                // New content: its fingerprint is taken again from the first read.
                file.fingerprint_len = 0;
                let worker = file.worker;
                self.out[worker].push(WorkItem::Truncated { id });
                self.enqueue(id);
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(file = %file.ctx.path.display(), error = %e, "cannot stat file");
            }
        }
    }

    fn close(&mut self, id: FileId) {
        if let Some(mut file) = self.files.remove(&id) {
            if file.gone {
                self.metrics.deleted_files_open.dec();
            }
            if let Some(flags) = &self.dirty_flags {
                file.publish_written(flags);
                flags.forget(file.ctx.identity.dev, file.ctx.identity.ino);
            }
            if file.parked {
                self.metrics.files_parked.dec();
                self.inbox.set_parked(id, false);
            } else {
                self.backend.unregister(id);
                self.budget.release();
                self.metrics.files_open.dec();
            }
            self.out[file.worker].push(WorkItem::Close { id });
            tracing::debug!(file = %file.ctx.path.display(), id = %id, offset = file.offset, "file closed after reading it to its end");
        }
    }

    /// Hands this round's items to the workers, waiting for room in their queues.
    fn send_out(&mut self) -> Result<(), Stop> {
        for worker in 0..self.out.len() {
            if self.out[worker].is_empty() {
                continue;
            }
            let items = std::mem::take(&mut self.out[worker]);
            let queue = &self.workers[worker];
            queue.observe();
            // A full worker queue is backpressure, not a stall.
            self.heart.wait();
            select! {
                send(queue.tx, items) -> sent => if sent.is_err() {
                    return Err(Stop::Failed(ReaderError::WorkerGone { reader: self.index, worker }));
                },
                recv(self.shutdown) -> _ => return Err(Stop::Shutdown),
            }
            self.heart.work();
            queue.observe();
        }
        Ok(())
    }
}

mod decoded;
mod holes;
mod idle;
mod memory;
#[cfg(test)]
mod tests;
