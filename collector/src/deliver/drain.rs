//! Draining before a sidecar stops: after a SIGTERM, ringtail in a pod beside the app keeps
//! reading until what the app wrote is delivered — every file it reads acknowledged to its
//! end, and none grown (nor a new one found) for `drain_quiet` — or `drain_max` has passed.
//! No later run will read what is left.
//!
//! Owns deciding when the files are drained; it may not read them (the pipeline goes on as
//! usual meanwhile).

use std::time::{Duration, Instant};

use crate::deliver::ack::AckTracker;

/// Sidecar mode (`sidecar`): how a SIGTERM is met when ringtail runs in a pod beside the app
/// whose log files it reads — the app may still be writing its last lines, and no later run
/// will read them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SidecarSettings {
    /// Stop once every file is acknowledged to its end and none has grown for this long.
    pub drain_quiet: Duration,
    /// Stop after this long whatever is left (within the pod's grace period).
    pub drain_max: Duration,
}

/// `sidecar.drain_quiet` by default.
pub const DEFAULT_DRAIN_QUIET: Duration = Duration::from_secs(2);
/// `sidecar.drain_max` by default: under Kubernetes' default 30 s grace period.
pub const DEFAULT_DRAIN_MAX: Duration = Duration::from_secs(25);

/// Sidecar mode, after a SIGTERM: keeps everything running until every file being read
/// is acknowledged to its end and none has grown (nor a new one appeared) for
/// `drain_quiet`, or `drain_max` has passed. Returns whether it drained. A file deleted
/// before it was read to its end counts as not drained while ringtail still reads it.
pub fn drain(tracker: &AckTracker, settings: &SidecarSettings) -> bool {
    let started = Instant::now();
    let mut last: Option<(usize, u64, u64)> = None;
    let mut changed = started;
    loop {
        let files = tracker.tracked();
        let (mut size, mut pending) = (0u64, 0u64);
        for (path, offset) in &files {
            match std::fs::metadata(path) {
                Ok(m) => {
                    size += m.len();
                    pending += m.len().saturating_sub(*offset);
                }
                // Gone (deleted, still being read from its descriptor): not done yet.
                Err(_) => pending += 1,
            }
        }
        let now = (files.len(), size, pending);
        if last != Some(now) {
            last = Some(now);
            changed = Instant::now();
        }
        if pending == 0 && changed.elapsed() >= settings.drain_quiet {
            tracing::info!(files = files.len(), waited = ?started.elapsed(), "sidecar: every file is delivered to its end and none has grown since; stopping");
            return true;
        }
        if started.elapsed() >= settings.drain_max {
            tracing::warn!(
                files = files.len(),
                unacknowledged_bytes = pending,
                "sidecar: sidecar.drain_max passed with bytes not yet delivered; stopping anyway (what is left is delivered if the pod starts again)"
            );
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
