//! The file sink: NDJSON appended to a file, optionally as a zstd stream, with size-based
//! rotation (`path` → `path.1` → `path.2` …, oldest deleted past `max_files`).
//!
//! Durability is grouped: written batches wait (at most `sync_interval`) and are then handed,
//! with the file, to a syncer thread that calls `fdatasync` and acknowledges them, while the
//! writer goes on writing — so the write path runs at page-cache speed and acknowledgements
//! trail by about one interval. The number of written-but-unsynced batches is bounded; past it
//! the writer waits for the syncer. A failed `fsync` is fatal (the kernel may have dropped the
//! dirty pages): the pipeline stops and a restart resumes from acknowledged offsets.
//!
//! A zstd output gets one frame per file; the frame is flushed before every sync so that all
//! acknowledged records can be decoded even if ringtail dies before finishing the frame. An
//! existing non-empty zstd output is rotated away at start-up rather than appended to, so a
//! frame left unfinished by a crash is never followed by another.
//!
//! **No duplicates after a crash.** Where the file sink is the only sink of the sources it
//! takes and its output is not compressed, it keeps a journal in `data_dir` (see
//! [`journal`]): before each batch, the length the output will have and the offsets the batch
//! brings its files to. A run that starts after a crash cuts the output back to the last
//! batch the journal holds whole and resumes each file from the journal's offset where that
//! is ahead of the checkpoint — so a SIGKILL, an OOM kill or a panic leaves every record in
//! the output once. The caveat: a reader of the output may see it shrink after a crash (by
//! the batch the crash interrupted). After a power loss it holds for everything that was
//! acknowledged; a batch written but not yet synced may be lost from the output and then is
//! read again.
//!
//! Owns the output files and their syncer thread; it may not touch batches beyond writing and
//! acknowledging them.

pub mod journal;

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam::channel::{Sender, TrySendError, bounded};

use crate::deliver::ack::{AckHandle, AckTracker};
use crate::deliver::batch::Batch;
use crate::file::{FileIdentity, OwnFiles};
use crate::sink::driver::{Sink, SinkError, is_fatal_stream_error, write_resumable};
use journal::{Journal, JournalError};

/// How long a file sink lets written data wait before fsync and acknowledgement.
pub const DEFAULT_SYNC_INTERVAL: Duration = Duration::from_secs(1);
/// zstd level of the file sink: level 3 compresses logs ~8× at several hundred MB/s per core.
pub const DEFAULT_ZSTD_LEVEL: i32 = 3;
/// Rotated files kept by a file sink when `rotate.max_files` is not given.
pub const DEFAULT_ROTATE_MAX_FILES: usize = 5;

/// Compression of a file sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Plain NDJSON.
    None,
    /// A zstd stream at the given level.
    Zstd {
        /// zstd level.
        level: i32,
    },
}

/// Size-based rotation of a file sink.
#[derive(Debug, Clone, Copy)]
pub struct Rotate {
    /// Rotate when the active file reaches this many bytes on disk.
    pub max_bytes: u64,
    /// Rotated files kept.
    pub max_files: usize,
}

/// A file sink's settings.
#[derive(Debug, Clone)]
pub struct FileSinkSettings {
    /// Output path.
    pub path: PathBuf,
    /// Compression.
    pub compression: Compression,
    /// Rotation, if any.
    pub rotate: Option<Rotate>,
    /// fsync-and-acknowledge interval.
    pub sync_interval: Duration,
}

/// Written-but-unsynced batches after which the writer waits for the syncer.
const MAX_UNSYNCED_BATCHES: usize = 4096;

/// A file that counts the bytes written to it (the zstd encoder writes through this).
struct Counted {
    file: Arc<File>,
    /// The file's device and inode, for the journal.
    identity: FileIdentity,
    size: u64,
}

impl Write for Counted {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = (&*self.file).write(buf)?;
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

enum Writer {
    Plain(Counted),
    Zstd(zstd::stream::write::Encoder<'static, Counted>),
}

impl Writer {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        match self {
            Writer::Plain(f) => f.write(data),
            Writer::Zstd(z) => z.write(data),
        }
    }

    /// Pushes everything written so far into the file (a zstd flush block).
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Writer::Plain(_) => Ok(()),
            Writer::Zstd(z) => z.flush(),
        }
    }

    /// Ends the zstd frame; resumable after an error.
    fn finish(&mut self) -> io::Result<()> {
        match self {
            Writer::Plain(_) => Ok(()),
            Writer::Zstd(z) => z.do_finish(),
        }
    }

    fn counted(&self) -> &Counted {
        match self {
            Writer::Plain(f) => f,
            Writer::Zstd(z) => z.get_ref(),
        }
    }
}

struct SyncJob {
    file: Arc<File>,
    /// The journal, made durable after the file and before the acknowledgements.
    journal: Option<Arc<File>>,
    acks: Vec<AckHandle>,
    /// After a rotation: the directory whose entries changed.
    dir: Option<PathBuf>,
}

/// A file sink.
pub struct FileSink {
    name: String,
    config: FileSinkSettings,
    /// Where this sink's files are announced, so discovery never reads them.
    own: Arc<OwnFiles>,
    writer: Option<Writer>,
    /// Bytes of the current batch already written (resume point after an error).
    written: usize,
    unsynced: Vec<AckHandle>,
    first_unsynced: Option<Instant>,
    rotate_due: bool,
    shift_due: bool,
    syncer: Option<Syncer>,
    /// Where the output stands, batch by batch (no duplicates after a crash).
    journal: Option<Journal>,
    /// A journal that could not be written and not be removed yet.
    stale_journal: Option<PathBuf>,
}

/// The syncer thread's queue and handle.
type Syncer = (Sender<SyncJob>, JoinHandle<Result<(), SinkError>>);

impl std::fmt::Debug for FileSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileSink")
            .field("name", &self.name)
            .field("path", &self.config.path)
            .finish_non_exhaustive()
    }
}

impl FileSink {
    /// The output file and its rotations, as named (`path`, `path.1` … `path.<max_files>`).
    fn outputs(config: &FileSinkSettings) -> impl Iterator<Item = PathBuf> + '_ {
        let max_files = config
            .rotate
            .map_or(DEFAULT_ROTATE_MAX_FILES, |r| r.max_files);
        std::iter::once(config.path.clone())
            .chain((1..=max_files).map(|n| PathBuf::from(format!("{}.{n}", config.path.display()))))
    }

    /// Creates the sink and its syncer thread; the file is opened on the first write. The
    /// outputs already there (an earlier run's) are announced in `own` at once. With a
    /// `journal` (its path, and the tracker its offsets go to: see [`journal`]) the outputs
    /// are first cut back to where the last run's journal says they stand.
    pub fn new(
        name: &str,
        config: FileSinkSettings,
        own: Arc<OwnFiles>,
        journal: Option<(PathBuf, Arc<AckTracker>)>,
    ) -> Result<Self, SinkError> {
        let outputs: Vec<PathBuf> = Self::outputs(&config).collect();
        for output in &outputs {
            own.add_path(output);
        }
        let journal = match journal {
            Some(_) if config.compression != Compression::None => {
                tracing::info!(
                    sink = name,
                    "a compressed file output keeps no journal: after a crash it may hold records twice"
                );
                None
            }
            Some((path, tracker)) => Some(
                Journal::open(path, &outputs, tracker)
                    .map_err(|e| journal_error(name, false, e))?,
            ),
            None => None,
        };
        let (tx, rx) = bounded::<SyncJob>(1);
        let sink_name = name.to_string();
        let target = config.path.display().to_string();
        let syncer = std::thread::Builder::new()
            .name(format!("sync-{name}"))
            .spawn(move || {
                for job in rx {
                    sync_job(&sink_name, &target, &job)?;
                    for ack in &job.acks {
                        ack.ack();
                    }
                }
                Ok(())
            })
            .map_err(|source| SinkError::Io {
                sink: name.to_string(),
                action: "start the syncer thread for",
                target: config.path.display().to_string(),
                fatal: true,
                source,
            })?;
        let shift_due = matches!(config.compression, Compression::Zstd { .. })
            && std::fs::metadata(&config.path).is_ok_and(|m| m.len() > 0);
        Ok(Self {
            name: name.to_string(),
            config,
            own,
            writer: None,
            written: 0,
            unsynced: Vec::new(),
            first_unsynced: None,
            rotate_due: false,
            shift_due,
            syncer: Some((tx, syncer)),
            journal,
            stale_journal: None,
        })
    }

    fn error(
        &self,
        action: &'static str,
        target: &Path,
        fatal: bool,
        source: io::Error,
    ) -> SinkError {
        SinkError::Io {
            sink: self.name.clone(),
            action,
            target: target.display().to_string(),
            fatal,
            source,
        }
    }

    fn open(&mut self) -> Result<(), SinkError> {
        let path = &self.config.path;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| self.error("create the directory of", path, false, e))?;
        }
        let file = OpenOptions::new()
            .read(true)
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| self.error("open", path, false, e))?;
        let meta = file
            .metadata()
            .map_err(|e| self.error("read the length of", path, false, e))?;
        let identity = FileIdentity::of(&meta);
        self.own.add(identity);
        let mut size = meta.len();
        if self.config.compression == Compression::None && size > 0 {
            // A run killed in the middle of a write can leave half a record at the end. It was
            // never acknowledged, so it is sent again whole; end the fragment here so that the
            // next record starts on a line of its own.
            let mut last = [0u8; 1];
            use std::os::unix::fs::FileExt;
            if file.read_at(&mut last, size - 1).is_ok_and(|n| n == 1) && last[0] != b'\n' {
                (&file).write_all(b"\n").map_err(|e| {
                    self.error("terminate the partial last record of", path, false, e)
                })?;
                size += 1;
                tracing::warn!(sink = self.name, path = %path.display(), "the output ended in a partial record (an earlier run stopped mid-write); it was ended with a newline and the record is written again whole");
            }
        }
        let counted = Counted {
            file: Arc::new(file),
            identity,
            size,
        };
        self.writer = Some(match self.config.compression {
            Compression::None => Writer::Plain(counted),
            Compression::Zstd { level } => Writer::Zstd(
                zstd::stream::write::Encoder::new(counted, level)
                    .map_err(|e| self.error("start zstd for", path, true, e))?,
            ),
        });
        tracing::info!(sink = self.name, path = %path.display(), "writing to file");
        Ok(())
    }

    /// Rotation and due syncs; runs before a batch is written, so an error here never leaves
    /// a batch half-handled.
    fn maintain(&mut self) -> Result<(), SinkError> {
        self.remove_stale_journal()?;
        if self.rotate_due {
            self.finish_current()?;
            self.rotate_due = false;
            self.shift_due = true;
        }
        if self.shift_due {
            self.shift()?;
            self.shift_due = false;
        }
        if self
            .first_unsynced
            .is_some_and(|t| t.elapsed() >= self.config.sync_interval)
        {
            self.sync(false)?;
        }
        Ok(())
    }

    /// Ends the current file: finish the zstd frame, hand everything to the syncer.
    fn finish_current(&mut self) -> Result<(), SinkError> {
        let Some(writer) = self.writer.as_mut() else {
            return Ok(());
        };
        if let Err(e) = writer.finish() {
            return Err(self.error("finish zstd frame of", &self.config.path, false, e));
        }
        let file = Arc::clone(&writer.counted().file);
        let dir = self.config.path.parent().map(Path::to_path_buf);
        let job = SyncJob {
            file,
            journal: self.journal.as_ref().map(Journal::file),
            acks: std::mem::take(&mut self.unsynced),
            dir,
        };
        if self.send_sync(job, true).is_err() {
            return Err(self.syncer_stopped());
        }
        self.first_unsynced = None;
        self.writer = None;
        Ok(())
    }

    /// `path.(n-1)` → `path.n` …, `path` → `path.1`; the oldest beyond `max_files` is deleted.
    /// Idempotent, so it can be retried after an error.
    fn shift(&mut self) -> Result<(), SinkError> {
        let path = self.config.path.clone();
        let max_files = self
            .config
            .rotate
            .map_or(DEFAULT_ROTATE_MAX_FILES, |r| r.max_files);
        let numbered = |n: usize| PathBuf::from(format!("{}.{n}", path.display()));
        let oldest = numbered(max_files);
        self.own.remove_path(&oldest);
        match std::fs::remove_file(&oldest) {
            Ok(()) => {
                tracing::info!(sink = self.name, path = %oldest.display(), "deleted the oldest rotated file (rotate.max_files)")
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(self.error("delete", &oldest, false, e)),
        }
        for n in (1..max_files).rev() {
            let from = numbered(n);
            match std::fs::rename(&from, numbered(n + 1)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(self.error("rotate", &from, false, e)),
            }
        }
        match std::fs::rename(&path, numbered(1)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(self.error("rotate", &path, false, e)),
        }
        Ok(())
    }

    /// Hands the written batches to the syncer. Without `force`, a busy syncer is left alone
    /// until the backlog reaches its bound.
    fn sync(&mut self, force: bool) -> Result<(), SinkError> {
        if self.unsynced.is_empty() {
            self.first_unsynced = None;
            return Ok(());
        }
        let Some(writer) = self.writer.as_mut() else {
            return Ok(());
        };
        if let Err(e) = writer.flush() {
            return Err(self.error("flush zstd data to", &self.config.path, false, e));
        }
        let file = Arc::clone(&writer.counted().file);
        let force = force || self.unsynced.len() >= MAX_UNSYNCED_BATCHES;
        let job = SyncJob {
            file,
            journal: self.journal.as_ref().map(Journal::file),
            acks: std::mem::take(&mut self.unsynced),
            dir: None,
        };
        match self.send_sync(job, force) {
            Ok(()) => {
                self.first_unsynced = None;
                Ok(())
            }
            Err(Some(job)) => {
                // The syncer is busy with the previous group; keep these for the next one.
                self.unsynced = job.acks;
                Ok(())
            }
            Err(None) => Err(self.syncer_stopped()),
        }
    }

    fn syncer_stopped(&self) -> SinkError {
        self.error(
            "fsync",
            &self.config.path,
            true,
            io::Error::other("the syncer thread stopped"),
        )
    }

    /// Sends a job; `Err(Some(job))` when the syncer is busy and `block` is false,
    /// `Err(None)` when the syncer has stopped.
    fn send_sync(&self, job: SyncJob, block: bool) -> Result<(), Option<SyncJob>> {
        let Some((tx, _)) = &self.syncer else {
            return Err(None);
        };
        if block {
            return tx.send(job).map_err(|_| None);
        }
        match tx.try_send(job) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(job)) => Err(Some(job)),
            Err(TrySendError::Disconnected(_)) => Err(None),
        }
    }
}

impl FileSink {
    /// Journals the batch about to be written. A journal that cannot be written is removed:
    /// from then on a crash may leave duplicates, never a cut record. One that cannot be
    /// removed either holds the sink back until it can be (left there, the next start would
    /// cut the batches written after it, whose offsets may have been saved).
    fn journal_batch(&mut self, batch: &Batch) -> Result<(), SinkError> {
        let (Some(journal), Some(writer)) = (self.journal.as_mut(), self.writer.as_ref()) else {
            return Ok(());
        };
        let out = writer.counted();
        let len = out.size + batch.data.len() as u64;
        let Err(error) = journal.record(out.identity, out.size, len, batch.ack.progress()) else {
            return Ok(());
        };
        tracing::warn!(sink = self.name, error = %error, "the file sink's journal cannot be written; it is removed, and until a restart a crash may leave records twice in the output");
        let Some(journal) = self.journal.take() else {
            return Ok(());
        };
        let path = journal.path().to_path_buf();
        journal.abandon().map_err(|error| {
            self.stale_journal = Some(path);
            journal_error(&self.name, false, error)
        })
    }

    /// Removes a journal that could not be written, before anything more is written.
    fn remove_stale_journal(&mut self) -> Result<(), SinkError> {
        let Some(path) = &self.stale_journal else {
            return Ok(());
        };
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(self.error("remove the unwritable journal", path, false, e)),
        }
        tracing::info!(sink = self.name, journal = %path.display(), "removed the journal that could not be written; writing goes on");
        self.stale_journal = None;
        Ok(())
    }
}

/// A journal error as the sink's.
fn journal_error(sink: &str, fatal: bool, error: JournalError) -> SinkError {
    let JournalError::Io {
        action,
        path,
        source,
    } = error;
    SinkError::Io {
        sink: sink.to_string(),
        action,
        target: path.display().to_string(),
        fatal,
        source,
    }
}

fn sync_job(name: &str, target: &str, job: &SyncJob) -> Result<(), SinkError> {
    let fatal = |action, source| SinkError::Io {
        sink: name.to_string(),
        action,
        target: target.to_string(),
        fatal: true,
        source,
    };
    job.file.sync_data().map_err(|e| fatal("fsync", e))?;
    if let Some(journal) = &job.journal {
        journal
            .sync_data()
            .map_err(|e| fatal("fsync the journal of", e))?;
    }
    if let Some(dir) = &job.dir {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| fatal("fsync the directory of", e))?;
    }
    Ok(())
}

impl Sink for FileSink {
    fn write(&mut self, batch: &Batch) -> Result<(), SinkError> {
        if self.written == 0 {
            self.maintain()?;
        }
        if self.writer.is_none() {
            self.open()?;
        }
        if self.written == 0 {
            self.journal_batch(batch)?;
        }
        let Some(writer) = self.writer.as_mut() else {
            return Ok(());
        };
        let result = write_resumable(&mut self.written, &batch.data, |chunk| writer.write(chunk));
        if let Err(e) = result {
            let fatal = is_fatal_stream_error(&e);
            return Err(self.error("write to", &self.config.path, fatal, e));
        }
        self.written = 0;
        self.unsynced.push(batch.ack.clone());
        self.first_unsynced.get_or_insert_with(Instant::now);
        if let (Some(rotate), Some(writer)) = (self.config.rotate, self.writer.as_ref())
            && writer.counted().size >= rotate.max_bytes
        {
            self.rotate_due = true;
        }
        Ok(())
    }

    fn deadline(&self) -> Option<Instant> {
        if self.rotate_due || self.shift_due {
            return Some(Instant::now());
        }
        self.first_unsynced.map(|t| t + self.config.sync_interval)
    }

    fn on_deadline(&mut self) -> Result<(), SinkError> {
        self.maintain()?;
        // Idle: sync whatever is left even if the syncer was busy last time.
        if self
            .first_unsynced
            .is_some_and(|t| t.elapsed() >= self.config.sync_interval)
        {
            self.sync(true)?;
        }
        Ok(())
    }

    fn close(&mut self) -> Result<(), SinkError> {
        if let Some(writer) = self.writer.as_mut()
            && let Err(e) = writer.finish()
        {
            return Err(self.error("finish zstd frame of", &self.config.path, false, e));
        }
        self.sync(true)?;
        if let Some((tx, handle)) = self.syncer.take() {
            drop(tx);
            match handle.join() {
                Ok(result) => result?,
                Err(_) => {
                    return Err(self.error(
                        "fsync",
                        &self.config.path,
                        true,
                        io::Error::other("the syncer thread panicked"),
                    ));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deliver::ack::{AckTracker, FileProgress};
    use crate::file::{FileId, FileIdentity, Fingerprint};
    use crate::metrics::Metrics;
    use bytes::Bytes;
    use std::io::Read;
    use std::time::Duration;

    /// A tracker that knows file 1.
    fn tracker() -> Arc<AckTracker> {
        let tracker = Arc::new(AckTracker::new(Arc::new(Metrics::new())));
        tracker.open(
            FileId(1),
            crate::deliver::ack::Registration {
                identity: FileIdentity { dev: 1, ino: 1 },
                born: None,
                fingerprint: Fingerprint::of(b""),
                path: Path::new("/in.log"),
                source: "s",
                offset: 0,
            },
        );
        tracker
    }

    /// The `seq`-th batch of file 1, complete up to `offset`.
    fn batch(tracker: &Arc<AckTracker>, seq: u64, offset: u64, text: &str) -> Batch {
        Batch {
            data: Bytes::from(text.to_string()),
            records: 1,
            index: None,
            ack: AckHandle::new(
                1,
                vec![FileProgress {
                    id: FileId(1),
                    offset,
                    seq,
                    closed: false,
                }],
                Arc::clone(tracker),
            ),
        }
    }

    fn config(path: PathBuf, compression: Compression, rotate: Option<Rotate>) -> FileSinkSettings {
        FileSinkSettings {
            path,
            compression,
            rotate,
            sync_interval: Duration::from_millis(10),
        }
    }

    #[test]
    fn writes_syncs_and_acknowledges() {
        let dir = tempfile::tempdir().unwrap();
        let tracker = tracker();
        let path = dir.path().join("out.ndjson");
        let mut sink = FileSink::new(
            "f",
            config(path.clone(), Compression::None, None),
            Arc::default(),
            None,
        )
        .unwrap();
        sink.write(&batch(&tracker, 0, 10, "{\"a\":1}\n")).unwrap();
        sink.write(&batch(&tracker, 1, 20, "{\"a\":2}\n")).unwrap();
        assert_eq!(
            tracker.offset(FileId(1)),
            Some(0),
            "not acknowledged before fsync"
        );
        sink.close().unwrap();
        assert_eq!(tracker.offset(FileId(1)), Some(20));
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "{\"a\":1}\n{\"a\":2}\n"
        );
    }

    #[test]
    fn rotates_by_size_and_keeps_max_files() {
        let dir = tempfile::tempdir().unwrap();
        let tracker = tracker();
        let path = dir.path().join("out.ndjson");
        let rotate = Rotate {
            max_bytes: 10,
            max_files: 2,
        };
        let mut sink = FileSink::new(
            "f",
            config(path.clone(), Compression::None, Some(rotate)),
            Arc::default(),
            None,
        )
        .unwrap();
        for i in 0..5u64 {
            sink.write(&batch(&tracker, i, i, &format!("line-{i:04}\n")))
                .unwrap();
        }
        sink.close().unwrap();
        let read = |p: &str| std::fs::read_to_string(dir.path().join(p)).unwrap_or_default();
        assert_eq!(read("out.ndjson"), "line-0004\n");
        assert_eq!(read("out.ndjson.1"), "line-0003\n");
        assert_eq!(read("out.ndjson.2"), "line-0002\n");
        assert!(!dir.path().join("out.ndjson.3").exists());
        assert_eq!(tracker.offset(FileId(1)), Some(4));
    }

    #[test]
    fn zstd_output_decodes_and_an_existing_file_is_rotated_away() {
        let dir = tempfile::tempdir().unwrap();
        let tracker = tracker();
        let path = dir.path().join("out.ndjson.zst");
        std::fs::write(&path, b"old, maybe unfinished").unwrap();
        let mut sink = FileSink::new(
            "f",
            config(path.clone(), Compression::Zstd { level: 3 }, None),
            Arc::default(),
            None,
        )
        .unwrap();
        for i in 0..100u64 {
            sink.write(&batch(&tracker, i, i, &format!("{{\"n\":{i}}}\n")))
                .unwrap();
        }
        sink.close().unwrap();
        let mut text = String::new();
        zstd::stream::read::Decoder::new(File::open(&path).unwrap())
            .unwrap()
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text.lines().count(), 100);
        assert_eq!(
            std::fs::read(dir.path().join("out.ndjson.zst.1")).unwrap(),
            b"old, maybe unfinished"
        );
    }
}
