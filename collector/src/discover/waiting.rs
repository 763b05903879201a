//! Files and directories that could not be opened for lack of descriptors (`EMFILE`,
//! `ENFILE`, `ENOMEM`), and files that wait because the readers' open-file budget
//! (`reader.max_open_files`) is spent: kept and retried, with backoff, until they open — never
//! dropped.
//!
//! The first failure of an episode is logged, every one counted
//! (`ringtail_descriptors_exhausted_total{kind}`), what waits is a gauge
//! (`ringtail_waiting_for_descriptors`), and `/readyz` names the condition until everything
//! waiting has opened. Retrying is the one timer discovery keeps, and only while something
//! waits: descriptors are freed by files being closed, connections ending or the limit being
//! raised, none of which discovery hears of.
//!
//! Also the schedule of rescans of the directories inotify refused to watch ([`Rescans`]).
//!
//! Owns the waiting list and these schedules; discovery does the opening and scanning.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

use crate::metrics::{KindLabel, Metrics};
pub use crate::read::budget::is_exhausted;
use crate::readiness::Readiness;

/// The readiness condition while something waits.
const READINESS: &str = "descriptors";
/// The first retry comes this soon after a failure, and retries stay this frequent while
/// each opens something.
const FIRST_RETRY: Duration = Duration::from_millis(50);
/// Retries back off up to this interval.
const MAX_RETRY: Duration = Duration::from_secs(5);

/// The first rescan of unwatched directories comes this soon, and rescans stay this frequent
/// while each finds new files.
const RESCAN_FIRST: Duration = Duration::from_millis(500);
/// Rescans that find nothing back off to this interval.
const RESCAN_MAX: Duration = Duration::from_secs(10);

/// When the directories inotify refused to watch are rescanned: every [`RESCAN_FIRST`],
/// backing off to [`RESCAN_MAX`] while a rescan finds no new file.
#[derive(Debug)]
pub struct Rescans {
    at: Option<Instant>,
    backoff: Duration,
}

impl Default for Rescans {
    fn default() -> Self {
        Self {
            at: None,
            backoff: RESCAN_FIRST,
        }
    }
}

impl Rescans {
    /// When the next rescan is due, if one is scheduled.
    pub fn next(&self) -> Option<Instant> {
        self.at
    }

    /// Whether a rescan is due at `now`; schedules the first one when directories are
    /// `unwatched`.
    pub fn due(&mut self, now: Instant, unwatched: bool) -> bool {
        match self.at {
            Some(at) => at <= now,
            None => {
                if unwatched {
                    self.at = Some(now + self.backoff);
                }
                false
            }
        }
    }

    /// A rescan is done: it found new files (`progressed`) or not; directories are still
    /// `unwatched` or not.
    pub fn done(&mut self, progressed: bool, unwatched: bool) {
        self.backoff = if progressed {
            RESCAN_FIRST
        } else {
            (self.backoff * 2).min(RESCAN_MAX)
        };
        self.at = unwatched.then(|| Instant::now() + self.backoff);
    }
}

/// What waits, each with whether it was found by the start-up scan.
pub struct Waiting {
    files: BTreeMap<PathBuf, bool>,
    dirs: BTreeMap<PathBuf, bool>,
    retry_at: Option<Instant>,
    backoff: Duration,
    logged: bool,
    limit_logged: bool,
    exhausted: Family<KindLabel, Counter>,
    gauge: Gauge,
    readiness: Arc<Readiness>,
}

/// What is due for a retry: directories to scan, then files to open.
#[derive(Debug, Default)]
pub struct Due {
    /// Directories, with their start-up flag.
    pub dirs: Vec<(PathBuf, bool)>,
    /// Files, with their start-up flag.
    pub files: Vec<(PathBuf, bool)>,
}

impl Waiting {
    /// Nothing waiting yet.
    pub fn new(metrics: &Metrics, readiness: Arc<Readiness>) -> Self {
        Self {
            files: BTreeMap::new(),
            dirs: BTreeMap::new(),
            retry_at: None,
            backoff: FIRST_RETRY,
            logged: false,
            limit_logged: false,
            exhausted: metrics.descriptors_exhausted.clone(),
            gauge: metrics.waiting_for_descriptors.clone(),
            readiness,
        }
    }

    /// The file at `path` could not be opened (`error`).
    pub fn file(&mut self, path: &Path, startup: bool, error: &io::Error) {
        self.files.insert(path.to_path_buf(), startup);
        self.failed("file", path, error);
    }

    /// The directory at `path` could not be opened or listed (`error`).
    pub fn dir(&mut self, path: &Path, startup: bool, error: &io::Error) {
        self.dirs.insert(path.to_path_buf(), startup);
        self.failed("directory", path, error);
    }

    /// The file at `path` waits because the readers hold `max` files open already; idle ones
    /// are being closed to make room.
    pub fn limited(&mut self, path: &Path, startup: bool, max: usize) {
        self.files.insert(path.to_path_buf(), startup);
        self.exhausted
            .get_or_create(&KindLabel { kind: "limit" })
            .inc();
        if !self.limit_logged {
            self.limit_logged = true;
            tracing::info!(path = %path.display(), max_open_files = max, "reader.max_open_files reached: idle files are closed (and opened again on their next write) to make room; new files wait meanwhile");
        }
        self.schedule();
    }

    /// The file at `path` is put back untried (the budget is still spent).
    pub fn again(&mut self, path: PathBuf, startup: bool) {
        self.files.insert(path, startup);
        self.schedule();
    }

    fn failed(&mut self, kind: &'static str, path: &Path, error: &io::Error) {
        self.exhausted.get_or_create(&KindLabel { kind }).inc();
        if !self.logged {
            self.logged = true;
            tracing::error!(path = %path.display(), error = %error, "out of descriptors: files and directories that cannot be opened wait and are retried (every 0.05 s to 5 s) until they open; /readyz reports it meanwhile");
        }
        self.schedule();
    }

    fn schedule(&mut self) {
        if self.retry_at.is_none() {
            self.retry_at = Some(Instant::now() + self.backoff);
        }
        self.update();
    }

    fn update(&mut self) {
        let waiting = self.files.len() + self.dirs.len();
        self.gauge.set(i64::try_from(waiting).unwrap_or(i64::MAX));
        if waiting > 0 {
            self.readiness.set(
                READINESS,
                Some(format!(
                    "{} files and {} directories wait for a descriptor (reader.max_open_files, the open-file limit or the system's is reached)",
                    self.files.len(),
                    self.dirs.len()
                )),
            );
        }
    }

    /// When the next retry is due, if anything waits.
    pub fn next_retry(&self) -> Option<Instant> {
        self.retry_at
    }

    /// Takes everything waiting when a retry is due at `now`. What fails again comes back
    /// through [`file`](Self::file) and [`dir`](Self::dir); [`retried`](Self::retried) then
    /// schedules the next retry.
    pub fn take_due(&mut self, now: Instant) -> Option<Due> {
        if self.retry_at.is_none_or(|at| at > now) {
            return None;
        }
        self.retry_at = None;
        Some(Due {
            dirs: std::mem::take(&mut self.dirs).into_iter().collect(),
            files: std::mem::take(&mut self.files).into_iter().collect(),
        })
    }

    /// How many files and directories wait.
    pub fn len(&self) -> usize {
        self.files.len() + self.dirs.len()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A retry is done: the next one comes soon when this one `progressed` (opened
    /// something), later and later when it did not; nothing left waiting clears the condition.
    pub fn retried(&mut self, progressed: bool) {
        if self.is_empty() {
            self.gauge.set(0);
            self.retry_at = None;
            self.backoff = FIRST_RETRY;
            self.readiness.set(READINESS, None);
            if self.logged || self.limit_logged {
                self.logged = false;
                self.limit_logged = false;
                tracing::info!("descriptors available again: everything that waited is open");
            }
            return;
        }
        self.backoff = if progressed {
            FIRST_RETRY
        } else {
            (self.backoff * 2).min(MAX_RETRY)
        };
        self.retry_at = Some(Instant::now() + self.backoff);
        self.update();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waiting_paths_are_retried_with_backoff_and_clear_readiness_once_open() {
        let metrics = Metrics::new();
        let readiness = Arc::new(Readiness::default());
        let mut waiting = Waiting::new(&metrics, Arc::clone(&readiness));
        let emfile = io::Error::from_raw_os_error(24);
        assert!(is_exhausted(&emfile));
        assert!(!is_exhausted(&io::Error::from(io::ErrorKind::NotFound)));
        assert!(waiting.next_retry().is_none());

        waiting.file(Path::new("/l/a.log"), true, &emfile);
        waiting.dir(Path::new("/l/d"), false, &emfile);
        assert!(readiness.conditions().contains_key(READINESS));
        assert_eq!(metrics.waiting_for_descriptors.get(), 2);
        let first = waiting.next_retry().unwrap();
        assert!(waiting.take_due(first - Duration::from_millis(1)).is_none());
        let due = waiting.take_due(first).unwrap();
        assert_eq!(due.files, vec![(PathBuf::from("/l/a.log"), true)]);
        assert_eq!(due.dirs, vec![(PathBuf::from("/l/d"), false)]);

        // The file fails again: the next retry is later.
        waiting.file(Path::new("/l/a.log"), true, &emfile);
        waiting.retried(false);
        let second = waiting.next_retry().unwrap();
        assert!(second.duration_since(first) >= FIRST_RETRY);
        assert!(readiness.conditions().contains_key(READINESS));

        let due = waiting.take_due(second).unwrap();
        assert_eq!(due.files.len(), 1);
        waiting.retried(true);
        assert!(waiting.next_retry().is_none());
        assert!(readiness.conditions().is_empty());
        assert_eq!(metrics.waiting_for_descriptors.get(), 0);
        assert_eq!(
            metrics
                .descriptors_exhausted
                .get_or_create(&KindLabel { kind: "file" })
                .get(),
            2
        );
    }
}
