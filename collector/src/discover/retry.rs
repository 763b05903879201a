//! Discovery's only timers, and what they retry: empty container logs waiting for their
//! container's bundle (at most [`META_WAIT`]), files and directories waiting for a
//! descriptor, and rescans of the directories inotify refused to watch (both scheduled in
//! [`waiting`](super::waiting)). With none of them, discovery sleeps until an event.
//!
//! Owns when to look again; the opening is discovery's.

use std::collections::HashSet;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use super::{Discovery, DiscoveryError, META_WAIT};
use crate::file::FileIdentity;

impl Discovery {
    /// Rescans the directories inotify refused to watch, when due: new files in them are
    /// opened, known ones marked dirty, and each is offered to inotify again.
    pub(super) fn rescan_unwatched(&mut self) -> Result<(), DiscoveryError> {
        let dirs = self.watches.unwatched();
        if !self.rescans.due(Instant::now(), !dirs.is_empty()) {
            return Ok(());
        }
        let before = self.registry.len();
        // Files deleted where no event told: gone, so their readers read them to their ends
        // (they still hold them) and close them.
        let unwatched: HashSet<PathBuf> = dirs.iter().cloned().collect();
        for path in self.registry.paths_in(&unwatched) {
            if std::fs::symlink_metadata(&path).is_err_and(|e| e.kind() == ErrorKind::NotFound) {
                self.registry.deleted(&path)?;
            }
        }
        for dir in dirs {
            if !dir.is_dir() {
                self.watches.forget_unwatched(&dir);
                continue;
            }
            if self.interesting(&dir) {
                self.scan_dir(&dir, false)?;
                continue;
            }
            // A symlink target's directory: offered to inotify again, its files marked.
            if let Ok(Some(fd)) = self.opener.open_dir(&dir) {
                self.watches.watch(&dir, std::os::fd::AsFd::as_fd(&fd));
            }
            for (_, id) in self.registry.under(&dir) {
                self.registry.mark_dirty(id);
            }
        }
        self.flush_dirty();
        self.rescans.done(
            self.registry.len() > before,
            !self.watches.unwatched().is_empty(),
        );
        Ok(())
    }

    /// Whether opening the (empty) container log at `path` waits for its container's bundle.
    /// The runtime creates a container's log file a moment before the container's bundle, so
    /// a file opened at once would miss the container id and image. An empty file loses
    /// nothing by waiting: its first write, or at the latest [`META_WAIT`], opens it.
    pub(super) fn await_bundle(&mut self, path: &Path) -> bool {
        if !self.resolver.runtime_present() || self.resolver.found_bundle(path) {
            return false;
        }
        match self.deferred.get(path) {
            Some(&deadline) if Instant::now() >= deadline => {
                self.deferred.remove(path);
                false
            }
            Some(_) => true,
            None => {
                self.deferred
                    .insert(path.to_path_buf(), Instant::now() + META_WAIT);
                true
            }
        }
    }

    /// When discovery must look again without an event: the earliest deferred file, or the
    /// next retry of what waits for descriptors.
    pub(super) fn next_retry(&self) -> Option<Instant> {
        let deferred = self.deferred.values().min().copied();
        [
            deferred,
            self.waiting.next_retry(),
            self.rescans.next(),
            self.registry.flush_due(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Opens what waited for descriptors, when a retry is due.
    pub(super) fn retry_waiting(&mut self) -> Result<(), DiscoveryError> {
        let Some(due) = self.waiting.take_due(Instant::now()) else {
            return Ok(());
        };
        self.room_asked = false;
        let before = due.dirs.len() + due.files.len();
        for (dir, startup) in due.dirs {
            self.scan_dir(&dir, startup)?;
        }
        let budget = Arc::clone(self.registry.budget());
        for (path, startup) in due.files {
            if budget.open() >= budget.max() {
                // Spent: the rest wait for the room the readers are making, untouched.
                if !self.room_asked {
                    self.room_asked = true;
                    self.registry.make_room(budget.max() / 2);
                }
                self.waiting.again(path, startup);
                continue;
            }
            // Known by its identity (not by its path: it may have replaced the file known
            // there, as a rename does).
            let known = std::fs::metadata(&path)
                .is_ok_and(|m| self.registry.with_identity(&FileIdentity::of(&m)).is_some());
            if !known {
                self.consider(&path, startup)?;
            }
        }
        self.waiting.retried(self.waiting.len() < before);
        self.flush_dirty();
        Ok(())
    }

    /// Opens the deferred files that are due (their bundle never came).
    pub(super) fn retry_deferred(&mut self) -> Result<(), DiscoveryError> {
        let now = Instant::now();
        let due: Vec<PathBuf> = self
            .deferred
            .iter()
            .filter(|(_, deadline)| **deadline <= now)
            .map(|(path, _)| path.clone())
            .collect();
        for path in due {
            if self.registry.at(&path).is_none() {
                self.consider(&path, false)?;
            }
            self.deferred.remove(&path);
        }
        self.flush_dirty();
        Ok(())
    }
}
