//! Rotations found at start-up: files whose names match no glob but that may hold lines the
//! last run did not deliver, because they were rotated (and perhaps compressed) while
//! ringtail was down.
//!
//! - A file with an unclaimed checkpoint of the last run (by identity) was rotated to its
//!   name while ringtail was down: it is read from its checkpoint to its end.
//! - A file without one whose name is a rotation of a matching name (`<name>.<suffix>`) and
//!   that was created after the last run's discovery watermark — until which that run had
//!   found (and registered, or read to its end) every file created — may never have been
//!   read: it is read whole. One created before it was read (or was history already).
//! - A compressed rotation (`<name>.<suffix>.gz` or `.zst`, see [`crate::compressed`]) is
//!   considered after every other file of the start-up scan, so that the file it was
//!   compressed from, if still there, is read rather than it. It is read decoded: from its
//!   own checkpoint, or from the checkpoint of the file it was compressed from (matched by
//!   the fingerprint of its first uncompressed bytes), or whole if it has none and was
//!   created after the watermark — otherwise it was read before it was compressed.
//! - A compression in progress (`….gz.tmp`) and formats ringtail cannot decode (`.xz`, …)
//!   are never read: the finished `.gz` follows by rename, and a compressed file read as text
//!   would be garbage.
//!
//! Owns the start-up rules for rotated names; opening and the resume decision stay with
//! [`open`](super::open).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::compressed::{self, Codec};
use crate::file::FileIdentity;
use crate::source::Source;

use super::open::Compressed;
use super::{Discovery, DiscoveryError};

impl Discovery {
    /// A file found by the start-up scan that matches no glob (see the module documentation).
    pub(super) fn consider_rotated(&mut self, path: &Path) -> Result<(), DiscoveryError> {
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            return Ok(());
        };
        if compressed::never_text(name) {
            return Ok(());
        }
        if let Some(codec) = Codec::of_name(name) {
            if let Some(later) = &mut self.compressed_later {
                later.push(path.to_path_buf());
                return Ok(());
            }
            return self.consider_compressed(path, codec);
        }
        // Read whole when no checkpoint of its own says where to resume, if it changed after
        // the last save; a checkpoint for its inode may be another file's (a recycled inode).
        let whole = self
            .rotation_of(path)
            .filter(|_| self.created_after_watermark(path));
        let carried = self
            .tracker
            .has_carried()
            .then(|| self.rotated_source(path))
            .flatten();
        match (carried, whole) {
            (Some(source), whole) => self.open(path, source, true, whole.is_none()),
            (None, Some((source, _))) => {
                tracing::info!(file = %path.display(), "rotated while ringtail was down and never read: reading it whole");
                self.open(path, source, true, false)
            }
            (None, None) => Ok(()),
        }
    }

    /// The compressed rotations the start-up scan put off, considered now that every other
    /// file found is open.
    pub(super) fn consider_compressed_later(&mut self) -> Result<(), DiscoveryError> {
        for path in self.compressed_later.take().unwrap_or_default() {
            let codec = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(Codec::of_name);
            if let Some(codec) = codec {
                self.consider_compressed(&path, codec)?;
            }
        }
        self.tracker.forget_recycled();
        Ok(())
    }

    /// A compressed rotation found at start-up: read decoded where a checkpoint says it
    /// holds undelivered lines, or whole when it was created after the last run's watermark.
    fn consider_compressed(&mut self, path: &Path, codec: Codec) -> Result<(), DiscoveryError> {
        if self.tracker.previous_watermark().is_none() {
            // A first start: rotations are history, as uncompressed ones are.
            return Ok(());
        }
        let Some((source, stem)) = self.rotation_of(path) else {
            return Ok(());
        };
        let only_resume = !self.created_after_watermark(path);
        let compressed = Compressed { codec, stem: &stem };
        self.open_via(path, None, source, true, only_resume, Some(compressed))
    }

    /// The source of a file that matches no glob but has a checkpoint: it was rotated to its
    /// current name while ringtail was not running.
    fn rotated_source(&self, path: &Path) -> Option<Arc<Source>> {
        let meta = std::fs::metadata(path).ok()?;
        let name = self.tracker.carried_source(FileIdentity::of(&meta))?;
        self.sources.named(&name).cloned()
    }

    /// Whether `path` is a rotation of a name a source matches (`<name>.<suffix>`, where the
    /// suffix may hold dots: `0.log.20261206-110000.gz`), and that source, with `<name>`'s
    /// file name.
    fn rotation_of(&mut self, path: &Path) -> Option<(Arc<Source>, String)> {
        let name = path.file_name()?.to_str()?;
        let dir = path.parent()?;
        let (base, stem) = name
            .match_indices('.')
            .rev()
            .map(|(i, _)| (dir.join(&name[..i]), &name[..i]))
            .find(|(base, _)| self.sources.matching(base).next().is_some())?;
        let stem = stem.to_string();
        let source = self.select(&base)?;
        Some((source, stem))
    }

    /// Whether the regular file at `path` may not have been read by the last run: it was
    /// created (its birth time, or where the file system keeps none its last change) after
    /// that run's discovery watermark — until then, that run had found every file created.
    /// A copy logrotate's copytruncate made while ringtail ran is older than that, and holds
    /// lines read already. File times come from the kernel's coarse clock, up to a tick behind
    /// the one the watermark was read from: two ticks of slack, so a file created just after
    /// the watermark is never taken for an older one.
    fn created_after_watermark(&self, path: &Path) -> bool {
        let Some(watermark) = self.tracker.previous_watermark() else {
            return false;
        };
        let Some(created) = created(path) else {
            return false;
        };
        created + 2 * coarse_tick() >= watermark
    }
}

/// When the regular file at `path` was created: its birth time, or its last change where the
/// file system keeps no birth time (later than its birth: a file may be read once more, never
/// skipped).
fn created(path: &Path) -> Option<SystemTime> {
    use rustix::fs::{AtFlags, StatxFlags, statx};
    let stat = statx(
        rustix::fs::CWD,
        path,
        AtFlags::SYMLINK_NOFOLLOW,
        StatxFlags::TYPE | StatxFlags::BTIME | StatxFlags::MTIME,
    )
    .ok()?;
    if rustix::fs::FileType::from_raw_mode(u32::from(stat.stx_mode))
        != rustix::fs::FileType::RegularFile
    {
        return None;
    }
    let time = if StatxFlags::from_bits_retain(stat.stx_mask).contains(StatxFlags::BTIME) {
        stat.stx_btime
    } else {
        stat.stx_mtime
    };
    let seconds = u64::try_from(time.tv_sec).ok()?;
    Some(UNIX_EPOCH + Duration::new(seconds, time.tv_nsec))
}

/// The resolution of the kernel's coarse clock, which file times come from.
fn coarse_tick() -> Duration {
    let res = rustix::time::clock_getres(rustix::time::ClockId::RealtimeCoarse);
    let tick = Duration::new(
        u64::try_from(res.tv_sec).unwrap_or(0),
        u32::try_from(res.tv_nsec).unwrap_or(0),
    );
    // A kernel that says nothing useful: HZ=100's tick.
    if tick.is_zero() {
        Duration::from_millis(10)
    } else {
        tick.min(Duration::from_millis(10))
    }
}
