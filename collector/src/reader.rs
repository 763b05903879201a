//! Reader threads: which files to read, how much, and in what order.
//!
//! A reader owns a set of open files and a [`ReadBackend`]. Discovery tells it about files
//! ([`Control`]) and marks files *dirty* when they have new data ([`ReaderHandle::mark_dirty`]).
//! Each round, the reader takes up to `max_files_per_round` ready files in FIFO order, reads one
//! chunk (the per-file budget) of each in a single backend batch, hands the chunks to the
//! workers, and puts every file whose chunk came back full at the back of the queue — so one
//! busy file cannot starve the others. A file whose read came back short has caught up; it waits
//! for its next discovery event. There is no timer: an idle reader sleeps until discovery wakes
//! it.
//!
//! Backpressure: a round needs free buffers from the bounded pool and room in the workers'
//! queues; when either is missing the reader waits, and files on disk are the buffer.
//!
//! A file is never closed while it may have unread data: on [`Control::Gone`] (deleted or moved
//! away) it is read to its end first. A file that shrinks below the read offset was truncated
//! (copytruncate): that is counted and reading restarts at 0.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fs::File;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use crossbeam::channel::{Receiver, Sender, TrySendError, select};
use prometheus_client::metrics::counter::Counter;

use crate::buffer::{BufferError, BufferPool};
use crate::metrics::{BackendLabel, Metrics};
use crate::read::{ReadBackend, ReadOp};
use crate::source::{FileCtx, SourceId};
use crate::worker::WorkItem;

/// At most this many files are read in one round (one io_uring submission).
pub const MAX_FILES_PER_ROUND: usize = 256;

/// Capacity of a reader's control queue: discovery blocks past this many unhandled file
/// events, which only happens when tens of thousands of files appear at once.
pub const CONTROL_QUEUE: usize = 65_536;

/// What discovery tells a reader.
#[derive(Debug)]
pub enum Control {
    /// A new file to read, opened by discovery, starting at `offset`.
    Open {
        /// The file.
        ctx: Arc<FileCtx>,
        /// The open file.
        file: File,
        /// Where to start reading.
        offset: u64,
    },
    /// A file was renamed within the watched directories.
    Renamed {
        /// The file.
        id: SourceId,
        /// Its new path.
        path: PathBuf,
    },
    /// A file was deleted or moved away: read it to its end, then close it.
    Gone {
        /// The file.
        id: SourceId,
    },
}

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

/// Files with new data, each at most once, in the order they became dirty.
#[derive(Debug, Default)]
struct DirtySet {
    inner: Mutex<(Vec<SourceId>, HashSet<SourceId>)>,
}

/// The discovery side of a reader: send it files, mark them dirty.
#[derive(Debug, Clone)]
pub struct ReaderHandle {
    control: Sender<Control>,
    dirty: Arc<DirtySet>,
    wake: Sender<()>,
}

/// The reader side: what [`Reader::new`] takes.
#[derive(Debug)]
pub struct ReaderInbox {
    control: Receiver<Control>,
    dirty: Arc<DirtySet>,
    wake: Receiver<()>,
}

/// A connected handle and inbox.
pub fn channel() -> (ReaderHandle, ReaderInbox) {
    let (control_tx, control_rx) = crossbeam::channel::bounded(CONTROL_QUEUE);
    let (wake_tx, wake_rx) = crossbeam::channel::bounded(1);
    let dirty = Arc::new(DirtySet::default());
    (
        ReaderHandle {
            control: control_tx,
            dirty: Arc::clone(&dirty),
            wake: wake_tx,
        },
        ReaderInbox {
            control: control_rx,
            dirty,
            wake: wake_rx,
        },
    )
}

impl ReaderHandle {
    /// Sends a control message; returns `false` when the reader has stopped.
    pub fn send(&self, control: Control) -> bool {
        self.control.send(control).is_ok()
    }

    /// Marks files as having new data and wakes the reader.
    pub fn mark_dirty(&self, ids: impl IntoIterator<Item = SourceId>) {
        {
            let mut guard = self.dirty.inner.lock().unwrap_or_else(|e| e.into_inner());
            let (order, set) = &mut *guard;
            for id in ids {
                if set.insert(id) {
                    order.push(id);
                }
            }
        }
        self.wake();
    }

    fn wake(&self) {
        // A full wake channel already holds a wake-up; the reader will look at everything.
        match self.wake.try_send(()) {
            Ok(()) | Err(TrySendError::Full(())) | Err(TrySendError::Disconnected(())) => {}
        }
    }
}

struct OpenFile {
    ctx: Arc<FileCtx>,
    file: File,
    offset: u64,
    worker: usize,
    queued: bool,
    gone: bool,
    read_bytes: Counter,
    read_errors: Counter,
    file_truncations: Counter,
    errors_logged: u32,
}

/// A reader thread's state.
pub struct Reader {
    index: usize,
    backend: Box<dyn ReadBackend>,
    inbox: ReaderInbox,
    pool: Arc<BufferPool>,
    workers: Vec<Sender<Vec<WorkItem>>>,
    shutdown: Receiver<()>,
    metrics: Arc<Metrics>,
    files: HashMap<SourceId, OpenFile>,
    ready: VecDeque<SourceId>,
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

impl Reader {
    /// A reader that reads with `backend` and feeds `workers`; it stops when `shutdown`
    /// becomes ready (a message or a disconnection).
    pub fn new(
        index: usize,
        backend: Box<dyn ReadBackend>,
        inbox: ReaderInbox,
        pool: Arc<BufferPool>,
        workers: Vec<Sender<Vec<WorkItem>>>,
        shutdown: Receiver<()>,
        metrics: Arc<Metrics>,
    ) -> Self {
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
            files: HashMap::new(),
            ready: VecDeque::new(),
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
        let open = self.files.len() as i64;
        self.metrics.files_open.dec_by(open);
        result
    }

    fn round(&mut self) -> Result<(), Stop> {
        if !self.shutdown.is_empty() || self.shutdown_disconnected() {
            return Err(Stop::Shutdown);
        }
        while let Ok(control) = self.inbox.control.try_recv() {
            self.control(control);
        }
        self.take_dirty();
        if self.ready.is_empty() {
            self.send_out()?;
            select! {
                recv(self.inbox.control) -> msg => match msg {
                    Ok(control) => self.control(control),
                    // Discovery has stopped: nothing new will come, but shutdown decides.
                    Err(_) => { let _ = self.shutdown.recv(); return Err(Stop::Shutdown) }
                },
                recv(self.inbox.wake) -> _ => {}
                recv(self.shutdown) -> _ => return Err(Stop::Shutdown),
            }
            return Ok(());
        }
        let ops = self.prepare()?;
        let submitted: Vec<SourceId> = ops.iter().map(|op| op.id).collect();
        let done = self.backend.read_batch(ops);
        if done.len() != submitted.len() {
            // A read task was lost (see the io_uring backend); read those files again.
            let returned: HashSet<SourceId> = done.iter().map(|op| op.id).collect();
            for id in submitted.into_iter().filter(|id| !returned.contains(id)) {
                self.enqueue(id);
            }
        }
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
            Control::Open { ctx, file, offset } => {
                let id = ctx.id;
                if let Err(e) = self.backend.register(id, &file) {
                    tracing::error!(file = %ctx.path.display(), error = %e, "cannot read file; it is skipped until it is discovered again");
                    self.metrics
                        .read_errors
                        .get_or_create(&Metrics::source(&ctx.source.name))
                        .inc();
                    return;
                }
                let worker = (id.0 % self.workers.len() as u64) as usize;
                let label = Metrics::source(&ctx.source.name);
                self.out[worker].push(WorkItem::Open {
                    ctx: Arc::clone(&ctx),
                    offset,
                });
                tracing::debug!(file = %ctx.path.display(), id = %id, offset, "reading file");
                self.files.insert(
                    id,
                    OpenFile {
                        read_bytes: self.metrics.read_bytes.get_or_create_owned(&label),
                        read_errors: self.metrics.read_errors.get_or_create_owned(&label),
                        file_truncations: self.metrics.file_truncations.get_or_create_owned(&label),
                        ctx,
                        file,
                        offset,
                        worker,
                        queued: false,
                        gone: false,
                        errors_logged: 0,
                    },
                );
                self.metrics.files_open.inc();
                self.enqueue(id);
            }
            Control::Renamed { id, path } => {
                if let Some(f) = self.files.get_mut(&id) {
                    let ctx = Arc::new(FileCtx {
                        path,
                        ..(*f.ctx).clone()
                    });
                    f.ctx = Arc::clone(&ctx);
                    self.out[f.worker].push(WorkItem::Renamed { ctx });
                    self.enqueue(id);
                }
            }
            Control::Gone { id } => {
                if let Some(f) = self.files.get_mut(&id) {
                    f.gone = true;
                    self.enqueue(id);
                }
            }
        }
    }

    fn enqueue(&mut self, id: SourceId) {
        if let Some(f) = self.files.get_mut(&id)
            && !f.queued
        {
            f.queued = true;
            self.ready.push_back(id);
        }
    }

    fn take_dirty(&mut self) {
        let ids = {
            let mut guard = self
                .inbox
                .dirty
                .inner
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let (order, set) = &mut *guard;
            set.clear();
            std::mem::take(order)
        };
        for id in ids {
            self.enqueue(id);
        }
    }

    /// Takes ready files and a buffer for each; waits for a buffer only when it has none.
    fn prepare(&mut self) -> Result<Vec<ReadOp>, Stop> {
        let mut ops = Vec::with_capacity(self.ready.len().min(MAX_FILES_PER_ROUND));
        while ops.len() < MAX_FILES_PER_ROUND {
            let Some(id) = self.ready.pop_front() else {
                break;
            };
            let Some(file) = self.files.get_mut(&id) else {
                continue;
            };
            file.queued = false;
            let offset = file.offset;
            let buf = match self.pool.try_get() {
                Ok(Some(buf)) => buf,
                Ok(None) if ops.is_empty() => {
                    // Every buffer is downstream; the workers give them back as they finish.
                    select! {
                        recv(self.pool.returned()) -> buf => match buf {
                            Ok(mut buf) => { buf.set_len(0); buf }
                            Err(_) => return Err(Stop::Shutdown),
                        },
                        recv(self.shutdown) -> _ => return Err(Stop::Shutdown),
                    }
                }
                Ok(None) => {
                    self.ready.push_front(id);
                    if let Some(f) = self.files.get_mut(&id) {
                        f.queued = true;
                    }
                    break;
                }
                Err(source) => {
                    return Err(Stop::Failed(ReaderError::Buffer {
                        reader: self.index,
                        source,
                    }));
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
        let Some(file) = self.files.get_mut(&id) else {
            self.pool.put(buf);
            return;
        };
        match result {
            Ok(0) => {
                self.pool.put(buf);
                self.at_end(id, true);
            }
            Ok(n) => {
                file.read_bytes.inc_by(n as u64);
                let offset = file.offset;
                file.offset += n as u64;
                let worker = file.worker;
                let bytes = self.pool.freeze(buf);
                self.out[worker].push(WorkItem::Data { id, offset, bytes });
                if n == capacity {
                    self.enqueue(id);
                } else {
                    self.at_end(id, false);
                }
            }
            Err(e) => {
                self.pool.put(buf);
                file.read_errors.inc();
                if file.errors_logged < 10 {
                    file.errors_logged += 1;
                    tracing::warn!(file = %file.ctx.path.display(), offset = file.offset, error = %e, "read failed; retried on the file's next event");
                }
                if file.gone {
                    tracing::error!(file = %file.ctx.path.display(), offset = file.offset, "file is gone and cannot be read to its end; its unread bytes are lost");
                    self.close(id);
                }
            }
        }
    }

    /// A read reached the end of the file for now. `empty`: it returned nothing at all.
    fn at_end(&mut self, id: SourceId, empty: bool) {
        let Some(file) = self.files.get_mut(&id) else {
            return;
        };
        if file.gone {
            self.close(id);
            return;
        }
        if !empty {
            return;
        }
        // Woken but nothing to read: the file may have been truncated below our offset.
        match file.file.metadata() {
            Ok(meta) if meta.len() < file.offset => {
                tracing::warn!(
                    file = %file.ctx.path.display(),
                    size = meta.len(),
                    offset = file.offset,
                    "file was truncated; reading it again from the start"
                );
                file.file_truncations.inc();
                file.offset = 0;
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

    fn close(&mut self, id: SourceId) {
        if let Some(file) = self.files.remove(&id) {
            self.backend.unregister(id);
            self.out[file.worker].push(WorkItem::Close { id });
            self.metrics.files_open.dec();
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
            select! {
                send(self.workers[worker], items) -> sent => if sent.is_err() {
                    return Err(Stop::Failed(ReaderError::WorkerGone { reader: self.index, worker }));
                },
                recv(self.shutdown) -> _ => return Err(Stop::Shutdown),
            }
        }
        Ok(())
    }
}
