//! Idle files: parking — a reader's idle files closed and opened again (see
//! [`crate::read::budget`]) — which files are idle, when their deadline comes, making room
//! when the budget is spent, and opening a parked file when it has new data; the linger of
//! gone files at their end ([`GONE_LINGER`](super::GONE_LINGER)); and idle notices.
//!
//! An idle notice ([`WorkItem::Idle`]) tells a file's worker that the file had nothing more
//! to read for one of its source's idle timeouts: `partial_timeout`, so an unfinished line at
//! its end is emitted as it is, and the multi-line `timeout`, so its pending multi-line
//! records are. The reader sends them because only the reader knows whether more of the file
//! waits: a worker timing them would cut a line, or split a stack trace, whose rest is on disk
//! behind a backlog (a slow sink, many busy files). A notice never goes out early; it may go
//! out up to a quarter of its timeout late, so that notices due close together share a
//! wake-up and busy files cost a few wake-ups per timeout, not one each.
//!
//! Owns the idle queue, the parked state, the lingering files and the idle notices; reads
//! stay with the round.

use std::time::{Duration, Instant};

use std::cmp::Reverse;

use super::{BLOCKED_RETRY, Reader};
use crate::file::{FileId, FileIdentity};
use crate::metrics::Metrics;
use crate::read::budget::{is_exhausted, reopen};
use crate::work::item::WorkItem;

/// Files are parked to make room only once idle this long: a file its writer is still busy
/// with (and may delete or replace right after writing) keeps its descriptor — what is written
/// to a parked file that is gone before its next read cannot be reached any more.
const MIN_IDLE: Duration = Duration::from_secs(1);

impl Reader {
    /// When the reader must look again without being woken: the next idle file's deadline,
    /// soon while parked files wait for a slot, or when its free buffers are to be trimmed.
    pub(super) fn next_timer(&self, now: Instant) -> Option<Duration> {
        let idle = self
            .idle
            .front()
            .map(|&(since, _)| (since + self.close_idle).saturating_duration_since(now));
        let blocked = (!self.blocked.is_empty()).then_some(BLOCKED_RETRY);
        let lingering = self
            .lingering
            .front()
            .map(|&(at, _)| at.saturating_duration_since(now));
        let trim = self.trim_at.map(|at| at.saturating_duration_since(now));
        // The slack is the smallest of any file's: a notice due a little after the first may
        // allow less.
        let notice = self.notices.peek().map(|&Reverse((at, _))| {
            at.checked_add(self.notice_slack)
                .unwrap_or(at)
                .saturating_duration_since(now)
        });
        [idle, blocked, lingering, trim, notice]
            .into_iter()
            .flatten()
            .min()
    }

    /// Sends the idle notices due by `now` (see the module documentation): a file whose last
    /// data went out one of its idle timeouts ago, with no read queued or waiting for it, gets
    /// one at its offset; one with data since, or a read on its way, is looked at again later.
    pub(super) fn send_idle_notices(&mut self, now: Instant) {
        while let Some(&Reverse((due, id))) = self.notices.peek() {
            if due > now {
                break;
            }
            self.notices.pop();
            let Some(file) = self.files.get_mut(&id) else {
                continue;
            };
            let last = file.last_data.unwrap_or(now);
            let quiet = now.saturating_duration_since(last);
            let (line_timeout, multiline_timeout) = file.ctx.source.cut.idle_timeouts();
            let line = quiet >= line_timeout;
            let multiline = multiline_timeout.is_some_and(|t| quiet >= t);
            let news = (line && !file.told_line) || (multiline && !file.told_multiline);
            if !news {
                // Data since: look again once the pause since it reaches the next timeout.
                match file.untold_timeout() {
                    Some(timeout) => self.notices.push(Reverse((last + timeout, id))),
                    None => file.notice_due = false,
                }
                continue;
            }
            if file.queued || self.blocked.contains(&id) || self.inbox.is_dirty(id) {
                // Read first; if that finds nothing new, the notice is due again soon.
                self.notices.push(Reverse((now + file.notice_slack(), id)));
                continue;
            }
            file.told_line |= line;
            file.told_multiline |= multiline;
            self.out[file.worker].push(WorkItem::Idle {
                id,
                at: file.offset,
                unfinished_line: line,
                multiline,
            });
            match file.untold_timeout() {
                Some(timeout) => self.notices.push(Reverse((last + timeout, id))),
                None => file.notice_due = false,
            }
        }
    }

    /// Whether gone file `id`, at its end, stays open to linger (see [`GONE_LINGER`](super::GONE_LINGER)): the
    /// first time it is found at its end, and until its linger is over.
    pub(super) fn linger(&mut self, id: FileId) -> bool {
        if self.gone_linger.is_zero() {
            return false;
        }
        let now = Instant::now();
        let Some(file) = self.files.get_mut(&id) else {
            return false;
        };
        match file.linger_until {
            None => {
                let until = now + self.gone_linger;
                file.linger_until = Some(until);
                self.lingering.push_back((until, id));
                true
            }
            Some(until) => until > now,
        }
    }

    /// Reads once more the gone files whose linger is over by `now`.
    pub(super) fn expire_lingering(&mut self, now: Instant) {
        while let Some(&(at, id)) = self.lingering.front() {
            if at > now {
                break;
            }
            self.lingering.pop_front();
            self.enqueue(id);
        }
    }

    /// Parks the files idle for `close_idle` by `now`.
    pub(super) fn expire_idle(&mut self, now: Instant) {
        while let Some(&(since, id)) = self.idle.front() {
            if since + self.close_idle > now {
                break;
            }
            self.idle.pop_front();
            let Some(file) = self.files.get_mut(&id) else {
                continue;
            };
            file.in_idle = false;
            if file.queued || file.gone || file.parked {
                continue;
            }
            match file.idle_since {
                Some(at) if at + self.close_idle <= now => self.park(id),
                // Active since, and at its end again: it comes up again from then.
                Some(at) => {
                    file.in_idle = true;
                    self.idle.push_back((at, id));
                }
                None => {}
            }
        }
    }

    /// Parks idle files, least recently active first, until at most `target` files are open
    /// in all or no file has been idle for [`MIN_IDLE`]. Returns whether any was parked.
    pub(super) fn make_room(&mut self, target: usize) -> bool {
        let now = Instant::now();
        let mut parked = false;
        while self.budget.open() > target {
            let Some(&(since, id)) = self.idle.front() else {
                break;
            };
            let Some(file) = self.files.get_mut(&id) else {
                self.idle.pop_front();
                continue;
            };
            let idle_since = match file.idle_since {
                Some(at) if !(file.queued || file.gone || file.parked) => at,
                _ => {
                    file.in_idle = false;
                    self.idle.pop_front();
                    continue;
                }
            };
            if idle_since > since {
                // Active since, and at its end again: it comes up again from then.
                self.idle.pop_front();
                self.idle.push_back((idle_since, id));
                continue;
            }
            if now.saturating_duration_since(idle_since) < MIN_IDLE {
                // The rest are idle for even less.
                break;
            }
            self.idle.pop_front();
            file.in_idle = false;
            self.park(id);
            parked = true;
        }
        parked
    }

    /// Closes the descriptor of file `id`, which is at its end; everything else is kept.
    fn park(&mut self, id: FileId) {
        let Some(file) = self.files.get_mut(&id) else {
            return;
        };
        if let Some(flags) = &self.dirty_flags {
            file.publish_written(flags);
        }
        file.parked = true;
        file.reopen_missed = false;
        file.in_idle = false;
        self.inbox.set_parked(id, true);
        self.backend.unregister(id);
        self.budget.release();
        self.metrics.files_open.dec();
        self.metrics.files_parked.inc();
        tracing::debug!(file = %file.ctx.path.display(), id = %id, offset = file.offset, "idle file closed; its next write opens it again");
    }

    /// Opens parked file `id` again, in a slot of the budget (one of this reader's idle files
    /// is parked for it when the budget is spent). `false`: it stays parked — it waits for a
    /// slot, or its path names it no more (its rename or deletion is on its way as an event).
    pub(super) fn unpark(&mut self, id: FileId) -> bool {
        if self.unchanged(id) {
            return false;
        }
        let slot = self.budget.acquire()
            || (self.make_room(self.budget.open().saturating_sub(1)) && self.budget.acquire());
        if !slot {
            self.blocked.insert(id);
            return false;
        }
        let Some(file) = self.files.get_mut(&id) else {
            self.budget.release();
            return false;
        };
        let reopened = match reopen(&file.ctx.path, file.ctx.identity) {
            Ok(Some(handle)) => self.backend.register(id, handle).map_err(|e| e.to_string()),
            Ok(None) => {
                file.reopen_missed = true;
                tracing::debug!(file = %file.ctx.path.display(), "a parked file is no longer at its path; its rename or deletion is on its way");
                self.budget.release();
                return false;
            }
            Err(e) if is_exhausted(&e) => {
                self.budget.release();
                self.blocked.insert(id);
                return false;
            }
            Err(e) => Err(e.to_string()),
        };
        match reopened {
            Ok(()) => {
                file.parked = false;
                file.reopen_missed = false;
                self.inbox.set_parked(id, false);
                self.metrics.files_open.inc();
                self.metrics.files_parked.dec();
                true
            }
            Err(error) => {
                file.read_errors.inc();
                tracing::warn!(file = %file.ctx.path.display(), %error, "cannot open a parked file again; tried again on its next event");
                self.budget.release();
                false
            }
        }
    }

    /// Parked file `id` is gone. A write since it was parked that was not read — the reader
    /// could not open it again in time, or has not yet been told of the write — is lost: no
    /// descriptor reaches the file any more. Counted (with its bytes where the write hook
    /// counted them) and logged.
    pub(super) fn gone_while_parked(&mut self, id: FileId) {
        let pending = self.inbox.is_dirty(id);
        let Some(file) = self.files.get(&id) else {
            return;
        };
        let bytes = self
            .dirty_flags
            .as_ref()
            .map_or(0, |flags| file.unpublished_written(flags));
        if !(file.reopen_missed || pending || bytes > 0) {
            return;
        }
        self.metrics
            .files_gone_while_parked
            .get_or_create(&Metrics::source(&file.ctx.source.name))
            .inc();
        if bytes > 0 {
            file.lost(Metrics::LOST_PARKED, bytes);
        }
        tracing::warn!(
            file = %file.ctx.path.display(),
            offset = file.offset,
            bytes_written = bytes,
            "a file closed while idle was written and then deleted before it could be opened again; what was written since it was closed is lost (raise reader.close_idle to keep idle files open longer)"
        );
    }

    /// Whether parked file `id` is still its size at its offset: a wake-up for nothing (a
    /// rescan marks every file it knows) leaves it parked. A `stat`, which opens nothing. With
    /// the write hook waking readers, a set flag means a write may not show in the size yet:
    /// it is cleared (so the next write wakes again) and the file opened.
    fn unchanged(&mut self, id: FileId) -> bool {
        let Some(file) = self.files.get(&id) else {
            return false;
        };
        let identity = file.ctx.identity;
        if let Some(flags) = &self.dirty_flags
            && self.rearm
            && flags.clear(identity.dev, identity.ino)
        {
            return false;
        }
        std::fs::metadata(&file.ctx.path)
            .is_ok_and(|meta| FileIdentity::of(&meta) == identity && meta.len() == file.offset)
    }

    /// Parked files that waited for a slot are tried again (each time an idle file may have
    /// become old enough to make room).
    pub(super) fn retry_blocked(&mut self) {
        if self.blocked.is_empty() {
            return;
        }
        for id in std::mem::take(&mut self.blocked) {
            self.enqueue(id);
        }
    }
}
