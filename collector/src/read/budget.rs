//! The open-file budget: how many files the readers hold open at once (`reader.max_open_files`),
//! and how a file closed while idle is opened again.
//!
//! Discovery reserves a slot before it opens a file and hands the slot to the reader with the
//! file; the reader gives it back when it closes the file — when the file is gone and drained,
//! or *parked*: read to its end and idle for `reader.close_idle`, or closed early because the
//! budget is spent and new files wait. A parked file keeps its identity, offset and partial
//! state; its next write (or a rescan finding it grown) opens it again through [`reopen`].
//! So descriptors follow the files that are active, not every file ever matched, and the
//! budget keeps a reserve under the open-file limit for the pipeline's own pipes, sockets and
//! sinks.
//!
//! Owns the count and the reopening; it may not decide which file is parked (the reader does).

use std::fs::File;
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use rustix::fs::{Mode, OFlags};

use crate::file::FileIdentity;

/// Descriptors kept out of the budget for everything else ringtail opens: at least this many…
const MIN_RESERVE: usize = 256;
/// …or this fraction (1/n) of the open-file limit.
const RESERVE_FRACTION: usize = 8;

/// Open files allowed, and open now.
#[derive(Debug)]
pub struct FileBudget {
    max: usize,
    open: AtomicUsize,
}

impl FileBudget {
    /// A budget of `max` open files.
    pub fn new(max: usize) -> Self {
        Self {
            max: max.max(1),
            open: AtomicUsize::new(0),
        }
    }

    /// No bound (tests and tools).
    pub fn unlimited() -> Self {
        Self::new(usize::MAX)
    }

    /// Most files open at once.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Files open now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// Reserves a slot for one file; `false` when the budget is spent.
    pub fn acquire(&self) -> bool {
        self.open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max).then_some(n + 1)
            })
            .is_ok()
    }

    /// Counts a file opened whatever the budget says: a deleted file reachable only through
    /// its writer's descriptor cannot wait.
    pub fn force(&self) {
        self.open.fetch_add(1, Ordering::AcqRel);
    }

    /// Gives a slot back.
    pub fn release(&self) {
        let _ = self
            .open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                Some(n.saturating_sub(1))
            });
    }
}

/// Whether `e` says the process or the system is out of descriptors (or of the memory to
/// make one): a failure that passes, unlike a missing or refused file.
pub fn is_exhausted(e: &io::Error) -> bool {
    matches!(
        rustix::io::Errno::from_io_error(e),
        Some(rustix::io::Errno::MFILE | rustix::io::Errno::NFILE | rustix::io::Errno::NOMEM)
    )
}

/// A slot reserved in a budget, given back when dropped unless [kept](Slot::keep) (handed
/// to a reader with its file).
#[derive(Debug)]
pub struct Slot {
    budget: Arc<FileBudget>,
    kept: bool,
}

impl Slot {
    /// Reserves a slot in `budget`; `None` when it is spent.
    pub fn acquire(budget: &Arc<FileBudget>) -> Option<Slot> {
        budget.acquire().then(|| Slot {
            budget: Arc::clone(budget),
            kept: false,
        })
    }

    /// A slot counted whatever the budget says (see [`FileBudget::force`]).
    pub fn force(budget: &Arc<FileBudget>) -> Slot {
        budget.force();
        Slot {
            budget: Arc::clone(budget),
            kept: false,
        }
    }

    /// The file went to a reader, which gives the slot back when it closes the file.
    pub fn keep(mut self) {
        self.kept = true;
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if !self.kept {
            self.budget.release();
        }
    }
}

/// `reader.max_open_files` when not set: the process's open-file limit (raised to its hard
/// limit at start) less a reserve of an eighth of it, at least 256 (at most half).
pub fn default_max_open_files() -> usize {
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .map_or(1 << 20, |l| usize::try_from(l).unwrap_or(usize::MAX));
    let reserve = (limit / RESERVE_FRACTION).max(MIN_RESERVE).min(limit / 2);
    limit - reserve
}

/// Opens the file at `path` again if it is still the file `identity`; `None` when the path
/// names no file or another one (its rename or deletion reaches the reader as an event).
///
/// The path is first opened with `O_PATH`, which opens nothing (no device, FIFO or driver
/// sees it, whatever a swapped directory or link leads to); only when that is the same file
/// is it opened for reading, through `/proc/self/fd`, so no other file is ever opened.
pub fn reopen(path: &Path, identity: FileIdentity) -> io::Result<Option<File>> {
    let handle = match rustix::fs::open(path, OFlags::PATH | OFlags::CLOEXEC, Mode::empty()) {
        Ok(handle) => handle,
        Err(rustix::io::Errno::NOENT | rustix::io::Errno::NOTDIR) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let stat = rustix::fs::fstat(&handle)?;
    let found = FileIdentity {
        dev: stat.st_dev,
        ino: stat.st_ino,
    };
    if found != identity || rustix::fs::FileType::from_raw_mode(stat.st_mode).is_dir() {
        return Ok(None);
    }
    let through = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&handle));
    let fd = rustix::fs::open(
        through.as_str(),
        OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    Ok(Some(File::from(fd)))
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::os::unix::fs::MetadataExt;

    use super::*;

    #[test]
    fn the_budget_counts_slots_and_refuses_past_its_bound() {
        let budget = FileBudget::new(2);
        assert!(budget.acquire());
        assert!(budget.acquire());
        assert!(!budget.acquire());
        budget.force();
        assert_eq!(budget.open(), 3);
        budget.release();
        budget.release();
        assert!(budget.acquire());
        assert_eq!(budget.open(), 2);
        assert!(default_max_open_files() >= 1);
    }

    #[test]
    fn a_file_is_reopened_only_while_its_path_names_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        std::fs::write(&path, "one\n").unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        let identity = FileIdentity {
            dev: meta.dev(),
            ino: meta.ino(),
        };
        let mut text = String::new();
        reopen(&path, identity)
            .unwrap()
            .unwrap()
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, "one\n");

        // Replaced by another file: not opened.
        let other = dir.path().join("b.log");
        std::fs::write(&other, "two\n").unwrap();
        std::fs::rename(&other, &path).unwrap();
        assert!(reopen(&path, identity).unwrap().is_none());
        // A link in its place that leads elsewhere: not opened either.
        std::fs::remove_file(&path).unwrap();
        std::os::unix::fs::symlink("/dev/null", &path).unwrap();
        assert!(reopen(&path, identity).unwrap().is_none());
        std::fs::remove_file(&path).unwrap();
        assert!(reopen(&path, identity).unwrap().is_none());
    }
}
