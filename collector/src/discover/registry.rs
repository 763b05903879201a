//! The files discovery has handed to readers: by path, by identity, which reader has each,
//! and the dirty marks waiting to be sent.
//!
//! A file is known by its identity (device, inode) for as long as a reader has it. Its paths
//! change with renames (rotation keeps the file, its reader state and its offset) and may be
//! more than one (a symlink to it). A file that lost its last path in a batch of events is
//! *maybe gone* until the batch ends — its `MOVED_TO` half may still come — and then gone:
//! its reader reads it to its end and closes it.
//!
//! Owns the hand-out to readers ([`Control`] messages and dirty marks) and the tracker's
//! record of which files are open; it may not decide which files to open or where reading
//! starts (that is [`crate::discover::open`] and discovery's loop).

use std::collections::{HashMap, HashSet, VecDeque};
use std::fs::File;
use std::os::fd::BorrowedFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::compressed::Codec;
use crate::container::FileMeta;
use crate::deliver::ack::AckTracker;
use crate::ebpf::monotonic_ns;
use crate::file::{FileId, FileIdentity, Fingerprint};
use crate::read::budget::FileBudget;
use crate::read::control::{Control, ReaderHandle};
use crate::source::{FileCtx, Source};

/// How many closed files are remembered against late kernel reports (about 100 KiB): the
/// files a busy node closes in many minutes. The comparison that uses them is exact where
/// the file system keeps birth times, so age does not make them wrong, only their number
/// costs memory.
const REMEMBERED_CLOSED: usize = 1024;

/// Why a file could not be handed on.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// Every reader has stopped.
    #[error("all readers have stopped")]
    ReadersGone,
}

struct Tracked {
    /// The paths the file is known under (usually one; a symlink adds its target).
    paths: Vec<PathBuf>,
    /// When discovery opened it (monotonic ns).
    opened_ns: u64,
    identity: FileIdentity,
    reader: usize,
}

/// A file read and closed, remembered against late kernel reports about it.
#[derive(Debug, Clone, Copy)]
struct Gone {
    /// Its place in [`Closed::order`].
    seq: u64,
    /// When discovery had opened it (monotonic ns).
    opened_ns: u64,
    /// Its birth time, and the fingerprint of its first bytes as far as its reader had
    /// read them.
    born: Option<u64>,
    fingerprint: Fingerprint,
}

/// A file opened by discovery, to hand to a reader.
#[derive(Debug)]
pub struct NewFile {
    /// The path it was found at.
    pub path: PathBuf,
    /// For a symlink: its canonical target, a second path of the same file.
    pub target: Option<PathBuf>,
    /// Whether the path still names the file (`false`: opened through its writer's
    /// descriptor after it was unlinked; it is read to its current end and closed).
    pub linked: bool,
    /// Its identity.
    pub identity: FileIdentity,
    /// The fingerprint of its first bytes.
    pub fingerprint: Fingerprint,
    /// Its birth time, where the file system keeps one.
    pub born: Option<u64>,
    /// Where reading starts.
    pub offset: u64,
    /// Its source.
    pub source: Arc<Source>,
    /// The open file.
    pub file: File,
    /// For a compressed rotation, its format (read decoded; offsets in uncompressed bytes).
    pub codec: Option<Codec>,
}

/// The files handed to readers.
pub struct Registry {
    readers: Vec<ReaderHandle>,
    tracker: Arc<AckTracker>,
    by_path: HashMap<PathBuf, FileId>,
    tracked: HashMap<FileId, Tracked>,
    identities: HashMap<FileIdentity, FileId>,
    maybe_gone: Vec<FileId>,
    dirty: Vec<Vec<FileId>>,
    /// How long marks are held back after the first of a round.
    linger: Duration,
    /// When the marks held back are sent.
    due: Option<Instant>,
    /// A mark waiting is for a parked file: send the marks without lingering.
    urgent: bool,
    next_id: u64,
    /// The files read and closed last, kept only when the kernel reports openings (see
    /// [`Registry::read_before`] and [`Registry::gone_file`]).
    closed: Option<Closed>,
}

/// The last [`REMEMBERED_CLOSED`] files read and closed, by identity.
#[derive(Debug, Default)]
struct Closed {
    files: HashMap<FileIdentity, Gone>,
    /// Identities in the order they were closed, each with its [`Gone::seq`] (an identity
    /// closed again has a newer entry; its older one is skipped when it comes out).
    order: VecDeque<(FileIdentity, u64)>,
    next_seq: u64,
}

impl Closed {
    fn insert(&mut self, identity: FileIdentity, mut gone: Gone) {
        gone.seq = self.next_seq;
        self.next_seq += 1;
        self.files.insert(identity, gone);
        self.order.push_back((identity, gone.seq));
        while self.order.len() > REMEMBERED_CLOSED {
            if let Some((oldest, seq)) = self.order.pop_front()
                && self.files.get(&oldest).is_some_and(|g| g.seq == seq)
            {
                self.files.remove(&oldest);
            }
        }
    }
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("files", &self.tracked.len())
            .finish_non_exhaustive()
    }
}

impl Registry {
    /// An empty registry handing files to `readers` (file `n` to reader `n % readers`) and
    /// registering them with `tracker`. `kernel_reports`: the kernel reports openings, so
    /// closed files are remembered against late reports.
    pub fn new(readers: Vec<ReaderHandle>, tracker: Arc<AckTracker>, kernel_reports: bool) -> Self {
        Self {
            dirty: readers.iter().map(|_| Vec::new()).collect(),
            linger: Duration::ZERO,
            due: None,
            urgent: false,
            readers,
            tracker,
            by_path: HashMap::new(),
            tracked: HashMap::new(),
            identities: HashMap::new(),
            maybe_gone: Vec::new(),
            next_id: 1,
            closed: kernel_reports.then(Closed::default),
        }
    }

    /// Number of files handed out and not gone.
    pub fn len(&self) -> usize {
        self.tracked.len()
    }

    /// Whether no file is handed out.
    pub fn is_empty(&self) -> bool {
        self.tracked.is_empty()
    }

    /// The open-file budget the readers share.
    pub fn budget(&self) -> &Arc<FileBudget> {
        self.readers[0].budget()
    }

    /// Asks every reader to close idle files until at most `open` are open: new files wait
    /// for room.
    pub fn make_room(&self, open: usize) {
        for reader in &self.readers {
            reader.send(Control::MakeRoom { open });
        }
    }

    /// The known paths whose directory is one of `dirs`.
    pub fn paths_in(&self, dirs: &HashSet<PathBuf>) -> Vec<PathBuf> {
        self.by_path
            .keys()
            .filter(|p| p.parent().is_some_and(|d| dirs.contains(d)))
            .cloned()
            .collect()
    }

    /// Whether `path` still leads to file `id` (a `stat`: by identity, not by name).
    pub fn still_names(&self, id: FileId, path: &Path) -> bool {
        self.tracked.get(&id).is_some_and(|t| {
            std::fs::metadata(path).is_ok_and(|m| FileIdentity::of(&m) == t.identity)
        })
    }

    /// The identities of the files handed out.
    pub fn identities(&self) -> HashSet<(u64, u64)> {
        self.identities.keys().map(|i| (i.dev, i.ino)).collect()
    }

    /// The file known at `path`.
    pub fn at(&self, path: &Path) -> Option<FileId> {
        self.by_path.get(path).copied()
    }

    /// The file with `identity`.
    pub fn with_identity(&self, identity: &FileIdentity) -> Option<FileId> {
        self.identities.get(identity).copied()
    }

    /// The known paths at or below `dir`, with their files.
    pub fn under(&self, dir: &Path) -> Vec<(PathBuf, FileId)> {
        self.by_path
            .iter()
            .filter(|(p, _)| p.starts_with(dir))
            .map(|(p, id)| (p.clone(), *id))
            .collect()
    }

    /// Whether a kernel report that the file `identity` was opened at `time_ns` is about a
    /// file already read and closed: one discovery had opened after that time. A later
    /// report may be a new file on a recycled inode; [`gone_file`](Self::gone_file) tells.
    pub fn read_before(&self, identity: &FileIdentity, time_ns: u64) -> bool {
        self.recently(identity)
            .is_some_and(|gone| time_ns <= gone.opened_ns)
    }

    /// The birth time and first-bytes fingerprint of the file `identity`, if it is one of the
    /// files read and closed last: a file found now with that identity is the same file when
    /// they match (see [`open::is_same_file`](super::open::is_same_file)).
    pub fn gone_file(&self, identity: &FileIdentity) -> Option<(Option<u64>, Fingerprint)> {
        self.recently(identity)
            .map(|gone| (gone.born, gone.fingerprint))
    }

    /// The file `identity`, if it is one of the files read and closed last.
    fn recently(&self, identity: &FileIdentity) -> Option<&Gone> {
        self.closed.as_ref().and_then(|c| c.files.get(identity))
    }

    /// Hands `new` to its reader, registered with the tracker first, with the container
    /// metadata `meta` gives then. A file opened through its writer's descriptor after it was
    /// unlinked is gone at once: it is read to its current end and closed.
    pub fn hand_out(
        &mut self,
        new: NewFile,
        meta: impl FnOnce() -> Arc<FileMeta>,
    ) -> Result<FileId, RegistryError> {
        let id = FileId(self.next_id);
        self.next_id += 1;
        let reader = (id.0 % self.readers.len() as u64) as usize;
        let mut paths = Vec::new();
        if new.linked {
            paths.push(new.path.clone());
            self.claim(&new.path, id)?;
        }
        if let Some(target) = new.target {
            self.claim(&target, id)?;
            paths.push(target);
        }
        self.identities.insert(new.identity, id);
        self.tracked.insert(
            id,
            Tracked {
                paths,
                opened_ns: monotonic_ns(),
                identity: new.identity,
                reader,
            },
        );
        self.tracker.open(
            id,
            crate::deliver::ack::Registration {
                identity: new.identity,
                born: new.born,
                fingerprint: new.fingerprint,
                path: &new.path,
                source: &new.source.name,
                offset: new.offset,
            },
        );
        let ctx = Arc::new(FileCtx {
            id,
            // A compressed rotation's records name the file it was compressed from.
            path: match new.codec {
                Some(codec) => codec.original(&new.path),
                None => new.path,
            },
            identity: new.identity,
            source: new.source,
            meta: meta(),
        });
        if !self.readers[reader].send(Control::Open {
            ctx: Arc::clone(&ctx),
            file: new.file,
            offset: new.offset,
            fingerprint_len: new.fingerprint.len,
            codec: new.codec,
        }) {
            return Err(RegistryError::ReadersGone);
        }
        if !new.linked {
            tracing::debug!(file = %ctx.path.display(), "opened through its writer's descriptor after it was unlinked");
            self.gone(id)?;
        }
        Ok(id)
    }

    /// A known file seen at `path`: a rename keeps it; a second name for a file still present
    /// under its first name (a symlink or hard link) is ignored so the file is read once.
    pub fn relink(&mut self, id: FileId, path: &Path) -> Result<(), RegistryError> {
        let Some(tracked) = self.tracked.get_mut(&id) else {
            return Ok(());
        };
        if tracked.paths.iter().any(|p| p == path) {
            self.mark_dirty(id);
            return Ok(());
        }
        if !tracked.paths.is_empty() {
            return Ok(());
        }
        tracked.paths.push(path.to_path_buf());
        let reader = tracked.reader;
        self.claim(path, id)?;
        self.tracker.renamed(id, path);
        self.readers[reader].send(Control::Renamed {
            id,
            path: path.to_path_buf(),
        });
        self.mark_dirty(id);
        Ok(())
    }

    /// `path` names file `id` from now on. A file it named before has lost it: replaced by a
    /// rename (`mv new.log app.log`, `sed -i`, rotators that write a new file and rename it
    /// into place), and once it has no path left it is gone like a deleted file — read to its
    /// end (its writer may still be writing to it) and closed.
    fn claim(&mut self, path: &Path, id: FileId) -> Result<(), RegistryError> {
        let Some(previous) = self.by_path.insert(path.to_path_buf(), id) else {
            return Ok(());
        };
        if previous == id {
            return Ok(());
        }
        let Some(tracked) = self.tracked.get_mut(&previous) else {
            return Ok(());
        };
        tracked.paths.retain(|p| p != path);
        if tracked.paths.is_empty() {
            tracing::debug!(file = %path.display(), "replaced by another file: the old one is read to its end and closed");
            self.gone(previous)?;
        }
        Ok(())
    }

    /// `path` no longer names file `id`.
    pub fn unlink(&mut self, path: &Path, id: FileId) {
        self.by_path.remove(path);
        if let Some(t) = self.tracked.get_mut(&id) {
            t.paths.retain(|p| p != path);
        }
    }

    /// `path` was deleted: its file is gone when that was its last path.
    pub fn deleted(&mut self, path: &Path) -> Result<(), RegistryError> {
        if let Some(id) = self.at(path) {
            self.unlink(path, id);
            if self.tracked.get(&id).is_some_and(|t| t.paths.is_empty()) {
                self.gone(id)?;
            }
        }
        Ok(())
    }

    /// `path` was moved away: its file is gone at the end of this batch of events, unless it
    /// is seen again by then (its new name inside the watched directories).
    pub fn moved_away(&mut self, path: &Path, id: FileId) {
        self.unlink(path, id);
        self.maybe_gone.push(id);
    }

    /// The end of a batch of events: files moved away and not seen again are gone.
    pub fn settle_moves(&mut self) -> Result<(), RegistryError> {
        for id in std::mem::take(&mut self.maybe_gone) {
            let relinked = self.tracked.get(&id).is_some_and(|t| !t.paths.is_empty());
            if !relinked {
                self.gone(id)?;
            }
        }
        Ok(())
    }

    /// File `id` is gone: its reader reads it to its end and closes it.
    pub fn gone(&mut self, id: FileId) -> Result<(), RegistryError> {
        let Some(tracked) = self.tracked.remove(&id) else {
            return Ok(());
        };
        for p in &tracked.paths {
            if self.by_path.get(p) == Some(&id) {
                self.by_path.remove(p);
            }
        }
        self.identities.remove(&tracked.identity);
        if let Some(closed) = &mut self.closed {
            // The tracker's fingerprint: its reader lengthens it as it reads, where the one
            // taken at opening is often empty (the kernel reports a file as it is created).
            let (born, fingerprint) = self
                .tracker
                .describe(id)
                .map_or((None, Fingerprint::of(b"")), |e| (e.born, e.fingerprint));
            closed.insert(
                tracked.identity,
                Gone {
                    seq: 0,
                    opened_ns: tracked.opened_ns,
                    born,
                    fingerprint,
                },
            );
        }
        // A write marked before the deletion reaches the reader first: a parked file must
        // be opened again for it, or its loss counted.
        if self.dirty[tracked.reader].contains(&id) {
            self.flush_dirty_now();
        }
        if !self.readers[tracked.reader].send(Control::Gone { id }) {
            return Err(RegistryError::ReadersGone);
        }
        Ok(())
    }

    /// File `id` has new data (sent with the next [`flush_dirty`](Self::flush_dirty)).
    pub fn mark_dirty(&mut self, id: FileId) {
        if let Some(t) = self.tracked.get(&id) {
            self.dirty[t.reader].push(id);
            // A parked file has no descriptor: if it is deleted before its reader opens it
            // again, what was written since it was parked cannot be read.
            self.urgent |= self.readers[t.reader].is_parked(id);
        }
    }

    /// Every file may have new data (events were lost).
    pub fn mark_all_dirty(&mut self) {
        for (id, t) in &self.tracked {
            self.dirty[t.reader].push(*id);
        }
    }

    /// Sends the dirty marks to the readers: one wake-up per reader.
    ///
    /// With a linger, the first marks of a round start it and are sent once it is over
    /// (discovery polls until [`flush_due`](Self::flush_due)): writes to many files arrive at
    /// the readers as one round. New files, renames and deletions are not delayed — they go
    /// on the control queue at once (a short-lived file must be opened before it is gone) —
    /// and neither is a write to a parked file, which has to be opened again.
    pub fn flush_dirty(&mut self) {
        if self.dirty.iter().all(Vec::is_empty) {
            return;
        }
        if !self.linger.is_zero() && !self.urgent {
            let now = Instant::now();
            match self.due {
                None => {
                    self.due = Some(now + self.linger);
                    return;
                }
                Some(due) if now < due => return,
                Some(_) => {}
            }
        }
        self.flush_dirty_now();
    }

    /// Sends the marks now, whatever the linger.
    pub fn flush_dirty_now(&mut self) {
        self.due = None;
        self.urgent = false;
        for (reader, ids) in self.dirty.iter_mut().enumerate() {
            if !ids.is_empty() {
                self.readers[reader].mark_dirty(ids.drain(..));
            }
        }
    }

    /// Whether marks are held back for a linger.
    pub fn lingers(&self) -> bool {
        !self.linger.is_zero()
    }

    /// When marks held back by the linger are due, if any are.
    pub fn flush_due(&self) -> Option<Instant> {
        self.due
    }

    /// Whether writes to known files need not be heard of before the marks held for the
    /// linger are sent: some are held, and [`writes_may_wait`](Self::writes_may_wait).
    pub fn holding_writes(&self) -> bool {
        self.due.is_some() && self.writes_may_wait()
    }

    /// Whether a write to a known file may wait for the next hand-off of marks: they
    /// linger, none waiting is urgent, and no file is parked (a write to a parked file must
    /// reach its reader at once).
    pub fn writes_may_wait(&self) -> bool {
        !self.linger.is_zero() && !self.urgent && !self.readers.iter().any(ReaderHandle::any_parked)
    }

    /// The descriptors that become readable when a reader parks a file (for `poll`).
    pub fn park_signals(&self) -> impl Iterator<Item = BorrowedFd<'_>> {
        self.readers.iter().filter_map(ReaderHandle::park_signal)
    }

    /// Clears the readers' park signals; returns whether any was set.
    pub fn take_park_signals(&self) -> bool {
        self.readers
            .iter()
            .fold(false, |any, reader| reader.take_park_signal() | any)
    }

    /// Whether the next [`flush_dirty`](Self::flush_dirty) sends the marks.
    pub fn flush_is_due(&self) -> bool {
        !self.dirty.iter().all(Vec::is_empty)
            && (self.linger.is_zero()
                || self.urgent
                || self.due.is_some_and(|due| Instant::now() >= due))
    }

    /// Marks every known file whose directory is one of `dirs` dirty.
    pub fn mark_dirty_in(&mut self, dirs: &HashSet<PathBuf>) {
        let ids: Vec<FileId> = self
            .by_path
            .iter()
            .filter(|(p, _)| p.parent().is_some_and(|d| dirs.contains(d)))
            .map(|(_, id)| *id)
            .collect();
        for id in ids {
            self.mark_dirty(id);
        }
    }

    /// How long marks are held back after the first of a round
    /// ([`ReaderSettings::linger`](crate::read::ReaderSettings::linger)).
    pub fn set_linger(&mut self, linger: Duration) {
        self.linger = linger;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests fail loudly on broken invariants")]

    use super::*;
    use crate::cut::decode::Format;
    use crate::metrics::Metrics;
    use crate::read::control;

    #[test]
    fn a_closed_file_is_remembered_with_when_it_was_opened_and_what_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.log");
        std::fs::write(&path, "line\n").unwrap();
        let identity = FileIdentity::of(&std::fs::metadata(&path).unwrap());
        let (handle, _inbox) = control::channel();
        let tracker = Arc::new(AckTracker::new(Arc::new(Metrics::new())));
        let mut registry = Registry::new(vec![handle], tracker, true);

        let written_before = monotonic_ns();
        std::thread::sleep(Duration::from_millis(1));
        let new = NewFile {
            path: path.clone(),
            target: None,
            linked: true,
            identity,
            fingerprint: Fingerprint::of(b"line\n"),
            born: Some(7),
            offset: 0,
            source: Arc::new(Source::new(0, "test", Format::Raw)),
            file: File::open(&path).unwrap(),
            codec: None,
        };
        let id = registry.hand_out(new, Arc::default).unwrap();
        assert_eq!(registry.gone_file(&identity), None, "not gone yet");
        std::thread::sleep(Duration::from_millis(1));
        let after_opening = monotonic_ns();
        registry.gone(id).unwrap();

        assert!(registry.read_before(&identity, written_before));
        assert!(
            !registry.read_before(&identity, after_opening),
            "a later report may be a new file on the recycled inode"
        );
        assert_eq!(
            registry.gone_file(&identity),
            Some((Some(7), Fingerprint::of(b"line\n")))
        );
        let other = FileIdentity {
            ino: identity.ino + 1,
            ..identity
        };
        assert!(!registry.read_before(&other, written_before));
        assert_eq!(registry.gone_file(&other), None);
    }

    #[test]
    fn the_last_closed_files_are_remembered_however_long_ago() {
        let gone = |n: u64| Gone {
            seq: 0,
            opened_ns: n,
            born: Some(n),
            fingerprint: Fingerprint::of(b""),
        };
        let id = |ino: u64| FileIdentity { dev: 1, ino };
        let mut closed = Closed::default();
        for n in 0..REMEMBERED_CLOSED as u64 {
            closed.insert(id(n), gone(n));
        }
        assert!(closed.files.contains_key(&id(0)));
        // Closed again: its newer entry stays when the older comes out of the order.
        closed.insert(id(0), gone(7));
        closed.insert(id(REMEMBERED_CLOSED as u64), gone(0));
        assert_eq!(closed.files.get(&id(0)).map(|g| g.opened_ns), Some(7));
        assert!(
            !closed.files.contains_key(&id(1)),
            "the oldest is forgotten"
        );
        assert!(closed.files.contains_key(&id(2)));
        assert!(closed.files.len() <= REMEMBERED_CLOSED);
        assert_eq!(closed.order.len(), REMEMBERED_CLOSED);
    }
}
