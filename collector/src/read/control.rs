//! The link from discovery to one reader: control messages (a file opened, renamed, gone,
//! room wanted) on a bounded queue, dirty marks coalesced into one wake-up, and the open-file
//! budget all readers share.
//!
//! Discovery holds a [`ReaderHandle`], the reader its [`ReaderInbox`]. A burst of writes to
//! many files is one wake-up: the marks go into a set, and a one-slot channel says "look".
//! The reader also shares which files it has parked, so that discovery wakes it at once for
//! a write to one, and says so when it parks one (an eventfd in discovery's poll set):
//! discovery may be holding write events back for the linger, deaf to a parked file's
//! writes until it looks again.
//!
//! Owns the link; it may not decide what a reader does with a message.

use std::collections::HashSet;
use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crossbeam::channel::{Receiver, Sender, TrySendError};

use crate::compressed::Codec;
use crate::file::FileId;
use crate::read::budget::FileBudget;
use crate::source::FileCtx;

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
        /// Bytes covered by the fingerprint discovery took.
        fingerprint_len: u32,
        /// For a compressed rotation, its format: it is read through a decoder, at offsets in
        /// uncompressed bytes, to its end, then closed.
        codec: Option<Codec>,
    },
    /// A file was renamed within the watched directories.
    Renamed {
        /// The file.
        id: FileId,
        /// Its new path.
        path: PathBuf,
    },
    /// A file was deleted or moved away: read it to its end, then close it.
    Gone {
        /// The file.
        id: FileId,
    },
    /// New files wait for descriptors (the budget is spent, or the process is out of them):
    /// close idle files (parked, opened again on their next write) until at most `open` files
    /// are open in all, or none is idle.
    MakeRoom {
        /// Files open at most, in all readers.
        open: usize,
    },
}

/// Files with new data, each at most once, in the order they became dirty.
#[derive(Debug, Default)]
struct DirtySet {
    inner: Mutex<(Vec<FileId>, HashSet<FileId>)>,
}

/// The reader's parked files (descriptor closed while idle), which discovery asks about:
/// a write to one is sent at once, not held for the linger, because the file must be opened
/// again before it is deleted.
#[derive(Debug, Default)]
struct ParkedSet {
    ids: Mutex<HashSet<FileId>>,
    /// `ids.len()`, read without the lock: most of the time no file is parked.
    len: AtomicUsize,
    /// Signalled when a file is parked (see the module documentation); `None` when the
    /// kernel refused an eventfd, and then discovery hears of a park at its next wake-up.
    signal: Option<OwnedFd>,
}

/// The discovery side of a reader: send it files, mark them dirty.
#[derive(Debug, Clone)]
pub struct ReaderHandle {
    control: Sender<Control>,
    dirty: Arc<DirtySet>,
    parked: Arc<ParkedSet>,
    wake: Sender<()>,
    budget: Arc<FileBudget>,
}

/// The reader side: what [`Reader::new`](crate::read::reader::Reader::new) takes.
#[derive(Debug)]
pub struct ReaderInbox {
    control: Receiver<Control>,
    dirty: Arc<DirtySet>,
    parked: Arc<ParkedSet>,
    wake: Receiver<()>,
    budget: Arc<FileBudget>,
}

impl ReaderInbox {
    /// The open-file budget the readers share.
    pub fn budget(&self) -> &Arc<FileBudget> {
        &self.budget
    }

    /// The queue of control messages (for a `select!`).
    pub fn control(&self) -> &Receiver<Control> {
        &self.control
    }

    /// The wake-up channel: it holds one message when files were marked dirty since the
    /// reader last looked (for a `select!`).
    pub fn wake(&self) -> &Receiver<()> {
        &self.wake
    }

    /// Takes the files marked dirty, in the order they were marked, and clears the set.
    pub fn take_dirty(&self) -> Vec<FileId> {
        let mut guard = self.dirty.inner.lock().unwrap_or_else(|e| e.into_inner());
        let (order, set) = &mut *guard;
        set.clear();
        std::mem::take(order)
    }

    /// Whether file `id` is marked dirty and not yet taken.
    pub fn is_dirty(&self, id: FileId) -> bool {
        let guard = self.dirty.inner.lock().unwrap_or_else(|e| e.into_inner());
        guard.1.contains(&id)
    }

    /// Records whether file `id` is parked (for [`ReaderHandle::is_parked`]).
    pub fn set_parked(&self, id: FileId, parked: bool) {
        let mut ids = self.parked.ids.lock().unwrap_or_else(|e| e.into_inner());
        let changed = if parked {
            ids.insert(id)
        } else {
            ids.remove(&id)
        };
        if changed {
            self.parked.len.store(ids.len(), Ordering::Release);
        }
        drop(ids);
        if changed
            && parked
            && let Some(signal) = &self.parked.signal
        {
            // A full counter (2^64 - 2 parks unread) already wakes discovery.
            let _ = rustix::io::write(signal, &1u64.to_ne_bytes());
        }
    }
}

#[cfg(test)]
impl ReaderInbox {
    /// The next control message, waiting at most `timeout` (tests of discovery).
    pub(crate) fn next_control(&self, timeout: std::time::Duration) -> Option<Control> {
        self.control.recv_timeout(timeout).ok()
    }

    /// The files marked dirty so far, in order (tests of discovery).
    pub(crate) fn dirty_ids(&self) -> Vec<FileId> {
        let guard = self.dirty.inner.lock().unwrap_or_else(|e| e.into_inner());
        guard.0.clone()
    }
}

/// A connected handle and inbox, with no bound on open files.
pub fn channel() -> (ReaderHandle, ReaderInbox) {
    channel_sharing(&Arc::new(FileBudget::unlimited()))
}

/// A connected handle and inbox sharing `budget` with the other readers.
pub fn channel_sharing(budget: &Arc<FileBudget>) -> (ReaderHandle, ReaderInbox) {
    // Unbounded, held to CONTROL_QUEUE by `ReaderHandle::send`: a bounded crossbeam channel
    // allocates and touches every slot up front (4.5 MiB resident per reader for a queue
    // that is nearly always empty); this one's memory follows what it holds.
    let (control_tx, control_rx) = crossbeam::channel::unbounded();
    let (wake_tx, wake_rx) = crossbeam::channel::bounded(1);
    let dirty = Arc::new(DirtySet::default());
    let signal = rustix::event::eventfd(
        0,
        rustix::event::EventfdFlags::CLOEXEC | rustix::event::EventfdFlags::NONBLOCK,
    );
    let parked = Arc::new(ParkedSet {
        signal: signal
            .inspect_err(|e| {
                tracing::warn!(error = %e, "no eventfd for a reader's parked files: a write to a file parked while discovery holds write events back reaches the reader up to a linger late");
            })
            .ok(),
        ..ParkedSet::default()
    });
    (
        ReaderHandle {
            control: control_tx,
            dirty: Arc::clone(&dirty),
            parked: Arc::clone(&parked),
            wake: wake_tx,
            budget: Arc::clone(budget),
        },
        ReaderInbox {
            control: control_rx,
            dirty,
            parked,
            wake: wake_rx,
            budget: Arc::clone(budget),
        },
    )
}

impl ReaderHandle {
    /// The open-file budget the readers share.
    pub fn budget(&self) -> &Arc<FileBudget> {
        &self.budget
    }

    /// Sends a control message, waiting while [`CONTROL_QUEUE`] messages wait already;
    /// returns `false` when the reader has stopped.
    pub fn send(&self, control: Control) -> bool {
        while self.control.len() >= CONTROL_QUEUE {
            // Rare (tens of thousands of files at once): wake the reader and look again
            // shortly. The wake channel is the reader's too, so it tells when it is gone.
            if let Err(TrySendError::Disconnected(())) = self.wake.try_send(()) {
                return false;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        self.control.send(control).is_ok()
    }

    /// The descriptor that becomes readable when the reader parks a file (for `poll`).
    pub fn park_signal(&self) -> Option<BorrowedFd<'_>> {
        self.parked.signal.as_ref().map(AsFd::as_fd)
    }

    /// Clears the park signal; returns whether it was set.
    pub fn take_park_signal(&self) -> bool {
        let mut count = [0u8; 8];
        self.parked
            .signal
            .as_ref()
            .is_some_and(|signal| rustix::io::read(signal, &mut count[..]).is_ok_and(|n| n == 8))
    }

    /// Whether any of this reader's files is parked.
    pub fn any_parked(&self) -> bool {
        self.parked.len.load(Ordering::Acquire) > 0
    }

    /// Whether the reader has parked file `id` (closed its descriptor while it was idle).
    pub fn is_parked(&self, id: FileId) -> bool {
        if self.parked.len.load(Ordering::Acquire) == 0 {
            return false;
        }
        let ids = self.parked.ids.lock().unwrap_or_else(|e| e.into_inner());
        ids.contains(&id)
    }

    /// Marks files as having new data and wakes the reader.
    pub fn mark_dirty(&self, ids: impl IntoIterator<Item = FileId>) {
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
