//! The checkpointer: loading the last run's checkpoints into a tracker at start-up, and the
//! thread that writes the tracker's snapshot while the pipeline runs, plus the final write.
//!
//! The snapshot is written when it changed: [`ACK_SAVE_DELAY`] after an acknowledgement
//! moved an offset (coalesced: under load, about ten writes a second), so a crash re-sends
//! little more than what was in flight; [`NEW_FILES_PAUSE`] after files are opened, so a new
//! identity is on disk before the file can be renamed away; and every
//! `checkpoints.interval` for the rest (checkpoints forgotten) — until a tick finds nothing
//! changed: then only a change (every one is signalled) or the next checkpoint due to be
//! forgotten wakes the thread, so an idle collector has no timer here. Writes are spaced by at least
//! [`COST_FACTOR`] times the last write's duration, so a large checkpoint file (100,000
//! files) is saved less often instead of taking the thread's whole time. A failed write is
//! logged once per failure streak, counted and retried at the next tick. The final write
//! comes after the sinks have stopped ([`Checkpointer::stop`]) and is made even when nothing
//! changed: with a checkpoint file from a build that saved no discovery watermark, the file's
//! time stands for it, so it must be when the run ended.
//!
//! Owns the writing schedule; it may not change offsets, only save what the tracker says.

use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam::channel::{Sender, bounded, select};

use crate::deliver::ack::AckTracker;
use crate::deliver::checkpoint::{CheckpointError, CheckpointSettings, Saved, Store};
use crate::liveness::Heart;
use crate::metrics::Metrics;
use crate::readiness::Readiness;

/// The readiness condition a failing checkpoint write holds.
const READINESS: &str = "checkpoints";

/// After files are opened, the checkpointer waits this long for more before writing.
pub const NEW_FILES_PAUSE: Duration = Duration::from_millis(5);
/// After an acknowledgement moved an offset, the checkpointer waits this long for more
/// before writing.
pub const ACK_SAVE_DELAY: Duration = Duration::from_millis(100);
/// Acknowledgement-driven writes start at least this many times the last write's duration
/// after it ended (at most about a tenth of the thread's time goes to writing).
pub const COST_FACTOR: u32 = 10;

/// Why the checkpointer could not start.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointerError {
    /// The thread could not be started.
    #[error("cannot start thread checkpointer: {source}")]
    Thread {
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
}

/// The checkpoints of the last run in `data_dir`, loaded into a new tracker, and the store to
/// write this run's to. A damaged file is set aside (counted, logged) and the run starts
/// without checkpoints; a file that cannot even be set aside is an error, since the first
/// write would destroy it.
pub fn resume(
    data_dir: &Path,
    metrics: &Arc<Metrics>,
) -> Result<(Store, Arc<AckTracker>), CheckpointError> {
    let store = Store::new(data_dir);
    // The file's time is when the last run last saved it (written, then renamed into place).
    let saved = std::fs::metadata(store.path())
        .and_then(|m| m.modified())
        .ok();
    let loaded = match store.load() {
        Ok(loaded) => loaded,
        Err(e @ CheckpointError::Corrupt { .. }) => {
            metrics.checkpoint_corrupt.inc();
            tracing::error!(error = %e, "files are read as if new (from `read_from`)");
            Saved::default()
        }
        Err(e) => return Err(e),
    };
    if !loaded.entries.is_empty() {
        tracing::info!(path = %store.path().display(), files = loaded.entries.len(), "loaded checkpoints");
    }
    let saved = saved.filter(|_| !loaded.entries.is_empty());
    let tracker = Arc::new(AckTracker::with_previous_run(
        Arc::clone(metrics),
        loaded,
        saved,
    ));
    Ok((store, tracker))
}

/// Writes checkpoints when they changed; a failed write is logged, counted and retried, and
/// keeps ringtail not ready meanwhile.
struct Writer {
    store: Store,
    tracker: Arc<AckTracker>,
    metrics: Arc<Metrics>,
    readiness: Arc<Readiness>,
    forget_after: Duration,
    last: Option<Saved>,
    failing: bool,
}

impl Writer {
    /// Saves the snapshot if it changed; returns whether it did.
    fn write(&mut self) -> Result<bool, CheckpointError> {
        self.save(false)
    }

    /// Saves the tracker's snapshot if it changed since the last save, or even if it did not
    /// when `always` (the final write: the file's time then says when this run ended, which
    /// the next run compares rotated files against).
    fn save(&mut self, always: bool) -> Result<bool, CheckpointError> {
        let entries = self.tracker.saved(self.forget_after);
        if !always && self.last.as_ref() == Some(&entries) {
            return Ok(false);
        }
        match self.store.save(&entries) {
            Ok(()) => {
                self.metrics.checkpoint_writes.inc();
                if self.failing {
                    self.failing = false;
                    self.readiness.set(READINESS, None);
                    tracing::info!(path = %self.store.path().display(), "checkpoints are written again");
                }
                self.last = Some(entries);
                Ok(true)
            }
            Err(e) => {
                self.metrics.checkpoint_errors.inc();
                self.readiness.set(
                    READINESS,
                    Some(format!(
                        "{e}; a restart would re-read everything since the last write"
                    )),
                );
                if !self.failing {
                    self.failing = true;
                    tracing::error!(error = %e, "cannot write checkpoints; delivery goes on, and a restart would re-read more than usual until a write succeeds");
                }
                Err(e)
            }
        }
    }
}

/// The running checkpointer thread.
#[derive(Debug)]
pub struct Checkpointer {
    stop: Sender<()>,
    thread: JoinHandle<WriterState>,
}

/// What the thread hands back for the final write.
struct WriterState(Writer);

impl std::fmt::Debug for WriterState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("path", &self.0.store.path())
            .finish_non_exhaustive()
    }
}

impl Checkpointer {
    /// Starts the thread. Its first write comes at once (right after discovery's start-up
    /// scan), so checkpoints that were claimed or forgotten are settled on disk.
    pub fn start(
        store: Store,
        tracker: Arc<AckTracker>,
        metrics: Arc<Metrics>,
        readiness: Arc<Readiness>,
        settings: &CheckpointSettings,
        heart: Arc<Heart>,
    ) -> Result<Self, CheckpointerError> {
        let mut writer = Writer {
            store,
            tracker: Arc::clone(&tracker),
            metrics,
            readiness,
            forget_after: settings.forget_after,
            last: None,
            failing: false,
        };
        let (stop, stopped) = bounded::<()>(0);
        let interval = settings.interval;
        let opened = tracker.opened_signal();
        let acked = tracker.acked_signal();
        let thread = std::thread::Builder::new()
            .name("checkpointer".to_string())
            .spawn(move || {
                let mut next = Instant::now();
                // When acknowledgement-driven writes may start again.
                let mut spaced = Instant::now();
                loop {
                    // Errors are logged and counted inside; the next tick retries. A write
                    // that never returns (a hung disk) is what `/livez` looks for.
                    heart.work();
                    let started = Instant::now();
                    let wrote = writer.write();
                    spaced = spaced.max(Instant::now() + started.elapsed() * COST_FACTOR);
                    heart.wait();
                    let now = Instant::now();
                    if next <= now {
                        next = now + interval;
                    }
                    // Every change is signalled; the interval catches up once after writes
                    // and keeps retrying a failing one. Once a tick finds nothing changed,
                    // only a signal or the next checkpoint to forget wakes the thread: an
                    // idle collector has no timer here.
                    let tick = match wrote {
                        Ok(false) => writer
                            .tracker
                            .next_forgetting(writer.forget_after)
                            .map_or_else(crossbeam::channel::never, |d| {
                                crossbeam::channel::at(now + d.max(interval))
                            }),
                        Ok(true) | Err(_) => crossbeam::channel::at(next),
                    };
                    // New files are written soon (after a short pause that gathers a burst of
                    // them), other changes at the interval.
                    select! {
                        recv(stopped) -> _ => return WriterState(writer),
                        recv(opened) -> _ => {
                            if stopped.recv_timeout(NEW_FILES_PAUSE).is_err_and(|e| e.is_disconnected()) {
                                return WriterState(writer);
                            }
                        }
                        recv(acked) -> _ => {
                            let at = spaced.max(Instant::now() + ACK_SAVE_DELAY);
                            if stopped.recv_deadline(at).is_err_and(|e| e.is_disconnected()) {
                                return WriterState(writer);
                            }
                        }
                        recv(tick) -> _ => {}
                    }
                }
            })
            .map_err(|source| CheckpointerError::Thread { source })?;
        Ok(Self { stop, thread })
    }

    /// Stops the thread and writes the final checkpoint (call after the sinks have stopped).
    /// Returns what went wrong, if anything.
    pub fn stop(self) -> Result<(), String> {
        drop(self.stop);
        match self.thread.join() {
            Ok(WriterState(mut writer)) => match writer.save(true) {
                Ok(_) => {
                    tracing::info!(path = %writer.store.path().display(), files = writer.last.as_ref().map_or(0, |s| s.entries.len()), "final checkpoint written");
                    Ok(())
                }
                Err(e) => Err(format!("final checkpoint: {e}")),
            },
            Err(_) => Err("the checkpointer thread panicked".to_string()),
        }
    }
}
