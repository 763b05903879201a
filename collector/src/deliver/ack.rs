//! Acknowledgements: when a batch counts as delivered, and the acknowledged offset of every
//! file that checkpoints are made from.
//!
//! A batch sent to several sinks shares one [`AckHandle`]; the last sink's acknowledgement
//! hands the batch's [`FileProgress`] reports to the [`AckTracker`].
//!
//! Discovery registers each file it opens ([`AckTracker::open`]) with its identity, fingerprint
//! and start offset — after asking ([`AckTracker::resume`]) whether a checkpoint loaded at
//! start-up matches it. Workers number the progress they put in batches per file
//! ([`FileProgress::seq`]); sinks acknowledge batches, possibly out of order (a Kafka sink gets
//! delivery reports per partition), and a file's offset advances only through an unbroken run
//! of acknowledged numbers, so it never passes a batch that is still in flight. The tracker is
//! what the checkpointer snapshots ([`AckTracker::snapshot`]).
//!
//! A file that was closed after being read to its end (deleted, or moved out of the watched
//! directories) leaves the table once its last batch is acknowledged: it cannot be read
//! again, and keeping its inode would only risk matching a recycled one. Checkpoints loaded at
//! start-up that no file claims are carried over, marked with the time they were last seen,
//! until `forget_after` has passed.
//!
//! Owns the acknowledged offsets; it may not touch files or batches' contents.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use std::time::SystemTime;

use crossbeam::channel::{Receiver, Sender};

use crate::deliver::checkpoint::{Entry, Saved, unix_now};
use crate::file::{FileId, FileIdentity, Fingerprint};
use crate::metrics::Metrics;

/// How far one file is complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileProgress {
    /// The file.
    pub id: FileId,
    /// Every record starting before this byte offset has been handed on.
    pub offset: u64,
    /// Number of this progress report among the file's reports (0, 1, 2, …): the tracker
    /// applies them in this order whatever order the acknowledgements come in.
    pub seq: u64,
    /// The file was read to its end and closed; this is its last report.
    pub closed: bool,
}

/// The shared acknowledgement state of one batch sent to several sinks.
#[derive(Debug, Clone)]
pub struct AckHandle(Arc<AckState>);

#[derive(Debug)]
struct AckState {
    remaining: AtomicUsize,
    progress: Vec<FileProgress>,
    tracker: Arc<AckTracker>,
}

impl AckHandle {
    /// A handle that completes after `sinks` acknowledgements.
    pub fn new(sinks: usize, progress: Vec<FileProgress>, tracker: Arc<AckTracker>) -> Self {
        Self(Arc::new(AckState {
            remaining: AtomicUsize::new(sinks),
            progress,
            tracker,
        }))
    }

    /// One sink has made the batch durable. The last acknowledgement advances the files.
    pub fn ack(&self) {
        // AcqRel: the last sink must see every earlier sink's writes before publishing.
        if self.0.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.tracker.complete(&self.0.progress);
        }
    }

    /// The progress this batch carries.
    pub fn progress(&self) -> &[FileProgress] {
        &self.0.progress
    }
}

/// What the checkpoints say about a file that was just found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resume {
    /// No checkpoint for this identity.
    New,
    /// The checkpoint matches: resume at `offset`.
    At {
        /// Every record before this offset was delivered.
        offset: u64,
    },
    /// Same inode, other first bytes: the inode was recycled for a new file (or the file was
    /// rewritten); it is read as a new file.
    Recycled {
        /// The path the checkpoint was for.
        previous: PathBuf,
    },
    /// A compressed rotation whose bytes this run reads already from the file it was
    /// compressed from (still there when the start-up scan found both): not read.
    Reading {
        /// The file being read.
        path: PathBuf,
    },
    /// Same file, but shorter than the checkpoint: truncated while ringtail was not running;
    /// read again from 0.
    Truncated {
        /// The checkpoint's offset.
        offset: u64,
        /// The file's size now.
        size: u64,
    },
}

/// A file discovery opened, as the tracker records it.
#[derive(Debug, Clone, Copy)]
pub struct Registration<'a> {
    /// Its device and inode.
    pub identity: FileIdentity,
    /// Its birth time, where the file system keeps one (see [`crate::file::birth_time`]).
    pub born: Option<u64>,
    /// The fingerprint of its first bytes.
    pub fingerprint: Fingerprint,
    /// The path it was found at.
    pub path: &'a Path,
    /// The source it is read for.
    pub source: &'a str,
    /// Where reading starts.
    pub offset: u64,
}

#[derive(Debug)]
struct Tracked {
    identity: FileIdentity,
    born: Option<u64>,
    fingerprint: Fingerprint,
    path: PathBuf,
    source: Arc<str>,
    /// Acknowledged offset (the start offset until the first acknowledgement).
    offset: u64,
    /// The next progress number to apply.
    next_seq: u64,
    /// Progress acknowledged ahead of `next_seq`: number → (offset, closed).
    early: BTreeMap<u64, (u64, bool)>,
}

impl Tracked {
    /// The checkpoint of this file now.
    fn entry(&self) -> Entry {
        Entry {
            dev: self.identity.dev,
            ino: self.identity.ino,
            born: self.born,
            fingerprint: self.fingerprint,
            offset: self.offset,
            path: self.path.clone(),
            source: self.source.to_string(),
            gone_since: None,
        }
    }
}

#[derive(Debug, Default)]
struct State {
    files: HashMap<FileId, Tracked>,
    /// Loaded checkpoints not claimed by an open file, by (dev, ino).
    carried: HashMap<(u64, u64), Entry>,
    /// Loaded checkpoints whose inode another file has now: the file they were for is gone,
    /// but a compressed rotation of it may still be found at start-up. Not saved again.
    recycled: Vec<Entry>,
    /// Entries of a sink's journal (see [`AckTracker::journaled`]) whose identity has a
    /// checkpoint that may be for another file: which one is right is decided against the
    /// file found ([`AckTracker::resume`]). Not saved.
    journaled: HashMap<(u64, u64), Entry>,
    /// Loaded checkpoints of files the last run was still reading when it saved them: one
    /// that no file claims by the end of the start-up scan was deleted while ringtail was down.
    live: Vec<(u64, u64)>,
}

/// Acknowledged offsets, per file, and the checkpoints carried over from the last run.
#[derive(Debug)]
pub struct AckTracker {
    state: Mutex<State>,
    metrics: Arc<Metrics>,
    /// Signalled when a file is opened: a new identity should reach the checkpoint file soon,
    /// so that a file renamed while ringtail is down is still found by its identity.
    opened: (Sender<()>, Receiver<()>),
    /// Signalled (coalesced) when an acknowledgement moved an offset: the checkpointer saves
    /// it soon, so a crash re-sends little.
    acked: (Sender<()>, Receiver<()>),
    /// When the last run last saved its checkpoints (`None` on a first run).
    previous_save: Option<SystemTime>,
    /// The last run's discovery watermark (see [`Saved::discovered_until`]); for a file
    /// saved by an older build, when it was saved.
    previous_watermark: Option<SystemTime>,
    /// This run's discovery watermark, ns since the epoch (0: none yet).
    discovered_until: AtomicU64,
}

impl AckTracker {
    /// An empty tracker.
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self::with_checkpoints(metrics, Vec::new())
    }

    /// A tracker that resumes from `loaded` checkpoints.
    pub fn with_checkpoints(metrics: Arc<Metrics>, loaded: Vec<Entry>) -> Self {
        Self::with_previous_run(
            metrics,
            Saved {
                entries: loaded,
                discovered_until: None,
            },
            None,
        )
    }

    /// A tracker that resumes from the checkpoints `loaded`, which the last run saved at
    /// `saved`.
    pub fn with_previous_run(
        metrics: Arc<Metrics>,
        loaded: Saved,
        saved: Option<SystemTime>,
    ) -> Self {
        let Saved {
            entries: loaded,
            discovered_until,
        } = loaded;
        let previous_watermark = discovered_until
            .map(|ns| std::time::UNIX_EPOCH + Duration::from_nanos(ns))
            .or(saved)
            .filter(|_| saved.is_some());
        let now = unix_now();
        let live = loaded
            .iter()
            .filter(|e| e.gone_since.is_none())
            .map(|e| (e.dev, e.ino))
            .collect();
        let carried = loaded
            .into_iter()
            .map(|mut e| {
                // Not seen by this run yet: the clock for forgetting it starts now, unless it
                // was already running.
                e.gone_since.get_or_insert(now);
                ((e.dev, e.ino), e)
            })
            .collect();
        Self {
            state: Mutex::new(State {
                files: HashMap::new(),
                carried,
                recycled: Vec::new(),
                journaled: HashMap::new(),
                live,
            }),
            metrics,
            opened: crossbeam::channel::bounded(1),
            acked: crossbeam::channel::bounded(1),
            previous_save: saved,
            previous_watermark,
            // Until this run's discovery says more, the last run's watermark stands: a save
            // before then must not claim files this run has not found yet.
            discovered_until: AtomicU64::new(discovered_until.unwrap_or(0)),
        }
    }

    /// When the last run last saved its checkpoints (`None` on a first run).
    pub fn previous_save(&self) -> Option<SystemTime> {
        self.previous_save
    }

    /// Until when the last run had found every file created (`None` on a first run): a file
    /// without a checkpoint created before it was read already (or was history when that
    /// run started); one created after it may not have been read at all.
    pub fn previous_watermark(&self) -> Option<SystemTime> {
        self.previous_watermark
    }

    /// Discovery has found every file created before `at` (ns since the epoch): each is
    /// registered here, or was filtered out on purpose. Saved with the next checkpoints.
    ///
    /// Not signalled to the checkpointer: discovery moves it at every round, and it is saved
    /// with the changes that come with the files. One moved alone after the last save waits
    /// for the next change (or the final save): an older watermark only makes the next run
    /// read more rotated files from their start, never fewer.
    pub fn discovered_until(&self, at: u64) {
        self.discovered_until.fetch_max(at, Ordering::Release);
    }

    /// Tells the checkpointer something it saves changed (coalesced).
    fn changed(&self) {
        let _ = self.acked.0.try_send(());
    }

    /// How long until the earliest checkpoint of a file no longer seen is older than
    /// `forget_after` (and so dropped at the next save); `None` when there is none.
    pub fn next_forgetting(&self, forget_after: Duration) -> Option<Duration> {
        let now = unix_now();
        self.lock()
            .carried
            .values()
            .filter_map(|e| e.gone_since)
            .map(|since| {
                Duration::from_secs((since + forget_after.as_secs() + 1).saturating_sub(now))
            })
            .min()
    }

    /// Receives a signal (coalesced) whenever files were opened since the last one.
    pub fn opened_signal(&self) -> Receiver<()> {
        self.opened.1.clone()
    }

    /// Receives a signal (coalesced) whenever an acknowledgement moved an offset or a file was
    /// renamed or fingerprinted again since the last one: with [`opened_signal`]
    /// (Self::opened_signal), every change to what is saved but the discovery watermark, so
    /// that the checkpointer need not poll.
    pub fn acked_signal(&self) -> Receiver<()> {
        self.acked.1.clone()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A poisoned lock means another thread panicked while holding it; every update leaves
        // the maps consistent, so keep going.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether a loaded checkpoint is waiting to be claimed (start-up scans then look at
    /// files whose names no longer match, e.g. rotated while ringtail was down).
    pub fn has_carried(&self) -> bool {
        !self.lock().carried.is_empty()
    }

    /// The source name of the unclaimed checkpoint for `identity`, if there is one.
    pub fn carried_source(&self, identity: FileIdentity) -> Option<String> {
        self.lock()
            .carried
            .get(&(identity.dev, identity.ino))
            .map(|e| e.source.clone())
    }

    /// Claims the checkpoint of a file just found, born at `born` (where the file system
    /// keeps birth times), whose first bytes are `head` and whose size is `size`. A checkpoint
    /// is claimed once: whatever the answer, it is no longer carried.
    pub fn resume(
        &self,
        identity: FileIdentity,
        born: Option<u64>,
        head: &[u8],
        size: u64,
    ) -> Resume {
        let mut state = self.lock();
        let key = (identity.dev, identity.ino);
        let carried = state.carried.remove(&key);
        let journaled = state.journaled.remove(&key);
        let mut claimed = |entry: Entry| {
            let resume = Self::claim(&entry, born, head, size);
            if matches!(resume, Resume::Recycled { .. }) {
                state.recycled.push(entry);
            }
            resume
        };
        match (carried.map(&mut claimed), journaled.map(&mut claimed)) {
            (None, None) => Resume::New,
            (Some(resume), None) | (None, Some(resume)) => resume,
            // Both are for this file: the journal may be ahead of the checkpoint.
            (Some(Resume::At { offset: a }), Some(Resume::At { offset: b })) => {
                Resume::At { offset: a.max(b) }
            }
            (_, Some(resume @ Resume::At { .. })) | (Some(resume), Some(_)) => resume,
        }
    }

    /// What the checkpoint `entry` says about the file with its identity found now.
    fn claim(entry: &Entry, born: Option<u64>, head: &[u8], size: u64) -> Resume {
        // Same inode, another birth: a new file on a recycled inode, whatever its first bytes
        // (a fixed banner, say) look like.
        if let (Some(then), Some(now)) = (entry.born, born)
            && then != now
        {
            return Resume::Recycled {
                previous: entry.path.clone(),
            };
        }
        if !entry.fingerprint.matches(head) {
            // Shorter than the fingerprint with matching bytes means truncated, not recycled,
            // but both are read from 0; only the log line differs.
            if entry.offset > size && Fingerprint::of(head).len < entry.fingerprint.len {
                return Resume::Truncated {
                    offset: entry.offset,
                    size,
                };
            }
            return Resume::Recycled {
                previous: entry.path.clone(),
            };
        }
        if entry.offset > size {
            return Resume::Truncated {
                offset: entry.offset,
                size,
            };
        }
        Resume::At {
            offset: entry.offset,
        }
    }

    /// Claims the checkpoint of a compressed rotation found at start-up, whose first
    /// *uncompressed* bytes are `head`, in directory `dir`, a rotation of a file named `stem`
    /// (the part of its name a source's glob matches). In turn: its own checkpoint (the last
    /// run read it partly); a file this run reads whose fingerprint matches (the file it was
    /// compressed from is still there: [`Resume::Reading`]); an unclaimed checkpoint of a file
    /// in `dir` whose name begins with `stem` and whose fingerprint matches — the file it was
    /// compressed from, so reading resumes at that file's offset. Sizes are not compared: the
    /// uncompressed size is not known before decoding it all.
    pub fn resume_compressed(
        &self,
        identity: FileIdentity,
        born: Option<u64>,
        head: &[u8],
        dir: &Path,
        stem: &str,
    ) -> Resume {
        let mut state = self.lock();
        if let Some(entry) = state.carried.remove(&(identity.dev, identity.ino)) {
            let recycled = matches!((entry.born, born), (Some(then), Some(now)) if then != now);
            if !recycled && entry.fingerprint.matches(head) {
                return Resume::At {
                    offset: entry.offset,
                };
            }
            state.recycled.push(entry);
        }
        let related = |path: &Path, fingerprint: &Fingerprint| {
            fingerprint.len > 0
                && fingerprint.matches(head)
                && path.parent() == Some(dir)
                && path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(stem))
        };
        if let Some(t) = state
            .files
            .values()
            .find(|t| related(&t.path, &t.fingerprint))
        {
            return Resume::Reading {
                path: t.path.clone(),
            };
        }
        // The longest fingerprint is the surest match.
        let carried = state
            .carried
            .iter()
            .filter(|(_, e)| related(&e.path, &e.fingerprint))
            .max_by_key(|(_, e)| e.fingerprint.len)
            .map(|(key, e)| (*key, e.fingerprint.len));
        let recycled = state
            .recycled
            .iter()
            .enumerate()
            .filter(|(_, e)| related(&e.path, &e.fingerprint))
            .max_by_key(|(_, e)| e.fingerprint.len)
            .map(|(i, e)| (i, e.fingerprint.len));
        let entry = match (carried, recycled) {
            (Some((_, a)), Some((i, b))) if b > a => Some(state.recycled.remove(i)),
            (Some((key, _)), _) => state.carried.remove(&key),
            (None, Some((i, _))) => Some(state.recycled.remove(i)),
            (None, None) => None,
        };
        // A journal's entry for the same file may be ahead of its checkpoint, or the only one.
        let journaled = match &entry {
            Some(e) => state
                .journaled
                .remove(&(e.dev, e.ino))
                .filter(|j| related(&j.path, &j.fingerprint)),
            None => {
                let key = state
                    .journaled
                    .iter()
                    .filter(|(_, j)| related(&j.path, &j.fingerprint))
                    .max_by_key(|(_, j)| j.fingerprint.len)
                    .map(|(key, _)| *key);
                key.and_then(|key| state.journaled.remove(&key))
            }
        };
        match entry.into_iter().chain(journaled).map(|e| e.offset).max() {
            Some(offset) => Resume::At { offset },
            None => Resume::New,
        }
    }

    /// Offsets a sink's journal says its output already holds: every record before
    /// `entry.offset` of the file `entry` describes was written there by the last run, whether
    /// or not a checkpoint was saved after it. Each advances the loaded checkpoint of the same
    /// file, or stands as one where there was none; where the checkpoint of its identity may be
    /// for another file (another birth or fingerprint: the inode was recycled, or the file grew
    /// past the fingerprint between the two), both are kept and the file found decides. Call
    /// before discovery's start-up scan. Returns the entries that say more than the
    /// checkpoints (the rest need not be journaled again).
    pub fn journaled(&self, entries: Vec<Entry>) -> Vec<Entry> {
        let now = unix_now();
        let mut state = self.lock();
        let mut ahead = Vec::new();
        for mut entry in entries {
            let key = (entry.dev, entry.ino);
            match state.carried.get_mut(&key) {
                Some(carried)
                    if carried.born == entry.born && carried.fingerprint == entry.fingerprint =>
                {
                    if entry.offset > carried.offset {
                        carried.offset = entry.offset;
                        ahead.push(entry);
                    }
                }
                Some(_) => {
                    state.journaled.insert(key, entry.clone());
                    ahead.push(entry);
                }
                None => {
                    entry.gone_since.get_or_insert(now);
                    state.carried.insert(key, entry.clone());
                    ahead.push(entry);
                }
            }
        }
        ahead
    }

    /// What the checkpoint of a file still in the table would say now (its acknowledged
    /// offset), for a sink's journal to describe the file its batches come from.
    pub fn describe(&self, id: FileId) -> Option<Entry> {
        self.lock().files.get(&id).map(Tracked::entry)
    }

    /// The start-up scan is over: checkpoints whose inode another file has are not needed
    /// any more.
    pub fn forget_recycled(&self) {
        self.lock().recycled = Vec::new();
    }

    /// The start-up scan is over and what it saw happen meanwhile handled: every checkpoint
    /// of a file the last run was still reading that no file has claimed is a file deleted
    /// (or moved away) while ringtail was down. Each is logged with how far it had been
    /// delivered and counted (`ringtail_files_gone_while_down_total`): what was written to it
    /// after that and not read before is lost, and no collector could have read it.
    pub fn report_gone_while_down(&self) {
        let mut state = self.lock();
        let live = std::mem::take(&mut state.live);
        for key in live {
            let Some(entry) = state.carried.get(&key) else {
                continue;
            };
            tracing::warn!(file = %entry.path.display(), delivered_up_to = entry.offset, source = entry.source, "a file the last run was reading is gone: deleted or moved away while ringtail was not running (or no source matches it any more); lines written to it after this offset that the last run had not read are lost");
            self.metrics
                .files_gone_while_down
                .get_or_create(&crate::metrics::SourceLabel {
                    source: entry.source.clone(),
                })
                .inc();
        }
    }

    /// Discovery opened a file: it is read from `file.offset`.
    pub fn open(&self, id: FileId, file: Registration<'_>) {
        self.lock().files.insert(
            id,
            Tracked {
                identity: file.identity,
                born: file.born,
                fingerprint: file.fingerprint,
                path: file.path.to_path_buf(),
                source: Arc::from(file.source),
                offset: file.offset,
                next_seq: 0,
                early: BTreeMap::new(),
            },
        );
        // Full: a signal is already pending.
        let _ = self.opened.0.try_send(());
    }

    /// The file grew past its fingerprint's length: a longer fingerprint.
    pub fn fingerprint(&self, id: FileId, fingerprint: Fingerprint) {
        if let Some(t) = self.lock().files.get_mut(&id) {
            t.fingerprint = fingerprint;
        }
        self.changed();
    }

    /// The file has a new path.
    pub fn renamed(&self, id: FileId, path: &Path) {
        if let Some(t) = self.lock().files.get_mut(&id) {
            t.path = path.to_path_buf();
        }
        self.changed();
    }

    /// A batch was acknowledged by every sink it went to.
    pub fn complete(&self, progress: &[FileProgress]) {
        self.metrics.acked_batches.inc();
        let mut moved = false;
        let mut state = self.lock();
        for p in progress {
            let Some(t) = state.files.get_mut(&p.id) else {
                continue;
            };
            if p.seq != t.next_seq {
                if p.seq > t.next_seq {
                    t.early.insert(p.seq, (p.offset, p.closed));
                }
                continue;
            }
            let mut closed = p.closed;
            moved = true;
            t.offset = p.offset;
            t.next_seq += 1;
            while let Some((offset, c)) = t.early.remove(&t.next_seq) {
                t.offset = offset;
                t.next_seq += 1;
                closed |= c;
            }
            if closed {
                state.files.remove(&p.id);
            }
        }
        drop(state);
        if moved {
            self.changed();
        }
    }

    /// The acknowledged offset of a file still in the table.
    pub fn offset(&self, id: FileId) -> Option<u64> {
        self.lock().files.get(&id).map(|t| t.offset)
    }

    /// Every file in the table: the path it was last seen at and its acknowledged offset.
    pub fn tracked(&self) -> Vec<(PathBuf, u64)> {
        self.lock()
            .files
            .values()
            .map(|t| (t.path.clone(), t.offset))
            .collect()
    }

    /// Number of files in the table (open, or closed with batches still unacknowledged).
    pub fn files(&self) -> usize {
        self.lock().files.len()
    }

    /// What to write to the checkpoint file now: [`snapshot`](Self::snapshot) and the
    /// discovery watermark.
    pub fn saved(&self, forget_after: Duration) -> Saved {
        // Read before the table: every file registered before the watermark was published
        // is in the table read after it.
        let watermark = self.discovered_until.load(Ordering::Acquire);
        let entries = self.snapshot(forget_after);
        Saved {
            entries,
            discovered_until: (watermark > 0).then_some(watermark),
        }
    }

    /// The checkpoints to write now: every tracked file at its acknowledged offset, and the
    /// carried-over ones not yet older than `forget_after` (older ones are dropped here).
    pub fn snapshot(&self, forget_after: Duration) -> Vec<Entry> {
        let now = unix_now();
        let mut state = self.lock();
        let before = state.carried.len();
        state.carried.retain(|_, e| {
            let keep = e
                .gone_since
                .is_none_or(|since| now.saturating_sub(since) <= forget_after.as_secs());
            if !keep {
                tracing::info!(path = %e.path.display(), offset = e.offset, "forgetting the checkpoint of a file not seen for longer than checkpoints.forget_after");
            }
            keep
        });
        let forgotten = before - state.carried.len();
        if forgotten > 0 {
            self.metrics.checkpoints_forgotten.inc_by(forgotten as u64);
        }
        let mut entries: Vec<Entry> = state.files.values().map(Tracked::entry).collect();
        entries.extend(state.carried.values().cloned());
        // A stable order, so an unchanged table is an unchanged file.
        entries.sort_by_key(|e| (e.dev, e.ino));
        entries
    }
}

#[cfg(test)]
mod tests;
