//! Configuration reload: what may change while running, the file watch, and draining.
//!
//! Owns the parts of a reload that are not the pipeline itself. A reload is a full, clean
//! restart of the pipeline inside the process: the running pipeline stops front to back and
//! writes its final checkpoint (every record it emitted is acknowledged), and the new one
//! resumes every file from that checkpoint — so no line is lost or delivered twice. Files
//! deleted but not yet read to their end are drained first, since a deleted file cannot be
//! opened again by the next pipeline.
//!
//! Owns deciding whether a new configuration may be applied and watching its files; the restart
//! itself is the pipeline's.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam::channel::Sender;
use inotify::{Inotify, WatchMask};
use ringtail::config::Config;
use ringtail::metrics::Metrics;

use crate::Event;

/// Why a valid new configuration cannot replace the running one, or the file cannot be
/// watched.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReloadError {
    /// `data_dir` changed: the checkpoints live there.
    #[error(
        "data_dir cannot change while running (from {from} to {to}): the checkpoints live there; restart ringtail to move it"
    )]
    DataDir {
        /// The running one.
        from: PathBuf,
        /// The new one.
        to: PathBuf,
    },
    /// inotify failed.
    #[error("cannot watch {dir}: {source}")]
    Watch {
        /// The directory.
        dir: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// `new`, if it can replace `current` (`data_dir` cannot change while running).
pub(crate) fn check(current: &Config, new: Config) -> Result<Config, ReloadError> {
    if new.data_dir != current.data_dir {
        return Err(ReloadError::DataDir {
            from: current.data_dir.clone(),
            to: new.data_dir,
        });
    }
    Ok(new)
}

/// Sends [`Event::Reload`] when something in `dirs` changes: the settings file's directory
/// (where a ConfigMap volume swaps its `..data` link), a link target's, a pipeline
/// directory. Events are gathered for 100 ms into one reload; the reload itself ignores
/// unchanged contents.
pub(crate) fn watch(dirs: &[PathBuf], events: Sender<Event>) -> Result<(), ReloadError> {
    let mut inotify = Inotify::init().map_err(|source| ReloadError::Watch {
        dir: dirs.first().cloned().unwrap_or_default(),
        source,
    })?;
    let mask = WatchMask::CLOSE_WRITE
        | WatchMask::MOVED_TO
        | WatchMask::CREATE
        | WatchMask::DELETE
        | WatchMask::MOVED_FROM;
    for dir in dirs {
        inotify
            .watches()
            .add(dir, mask)
            .map_err(|source| ReloadError::Watch {
                dir: dir.clone(),
                source,
            })?;
    }
    let first = dirs.first().cloned().unwrap_or_default();
    std::thread::Builder::new()
        .name("config-watch".to_string())
        .spawn(move || {
            let mut buffer = [0u8; 4096];
            loop {
                let mut fds = [rustix::event::PollFd::new(
                    &inotify,
                    rustix::event::PollFlags::IN,
                )];
                match rustix::event::poll(&mut fds, None) {
                    Ok(_) | Err(rustix::io::Errno::INTR) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "the configuration file is no longer watched; SIGHUP still reloads it");
                        return;
                    }
                }
                // A ConfigMap update is several renames: let them land, then read them all.
                std::thread::sleep(Duration::from_millis(100));
                while inotify
                    .read_events(&mut buffer)
                    .is_ok_and(|mut events| events.next().is_some())
                {}
                if events.send(Event::Reload("the file changed")).is_err() {
                    return;
                }
            }
        })
        .map_err(|source| ReloadError::Watch { dir: first, source })?;
    Ok(())
}

/// Waits (at most `timeout`) until no deleted file is held open with unread data.
pub(crate) fn drain_deleted(metrics: &Arc<Metrics>, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while metrics.deleted_files_open.get() > 0 {
        if Instant::now() >= deadline {
            tracing::warn!(
                files = metrics.deleted_files_open.get(),
                "deleted files still unread at the reload; their unread bytes are lost (counted in ringtail_lost_bytes_total)"
            );
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
