//! How discovery waits: the descriptors it polls (its stop pipe, the kernel's events, inotify)
//! and until when, which of them woke it, and the short pause that gathers a burst; and the
//! rounds of the linger — when write events may go unheard and when the marks go out.
//!
//! Owns the waiting and the rounds; what the events mean stays with the rest of discovery.

use std::time::{Duration, Instant};

use super::{Discovery, DiscoveryError};

/// What woke discovery.
pub(super) struct Ready {
    /// inotify has events.
    pub events: bool,
    /// Stop was asked.
    pub stop: bool,
    /// The kernel's eBPF events are waiting.
    pub kernel: bool,
    /// A reader parked a file (see [`crate::read::control`]).
    pub parked: bool,
}

/// inotify events one drain may have read for the next wait to leave the queue unread: a
/// quarter of the kernel's default queue (`max_queued_events`, 16,384), so that writes
/// arriving faster than that per linger are read as they come instead of overflowing it
/// (an overflow costs a rescan of every watched directory).
const HOLD_BELOW: usize = 4096;

/// Times inotify may wake discovery in a round before the rest of the round's writes are
/// held: each wake-up quiets the directories whose writes it read (see
/// [`Watches::quiet`](super::watches::Watches::quiet)), so the busiest are quiet after the
/// first few, and the slower ones wait in the queue.
const QUIET_WAKES: u32 = 4;

impl Discovery {
    /// Whether inotify's queue is left unread for now: while marks are held for the linger,
    /// the kernel reports new, renamed and deleted files, and no file is parked, it holds
    /// only news of writes to known files. It is read when the marks are due (or with the
    /// kernel's next event), so a node writing thousands of times a second wakes discovery
    /// a few times a second, not thousands. inotify folds a write into the last event queued
    /// only when that event is the same file's, so the queue grows with the writes meanwhile:
    /// after a drain of [`HOLD_BELOW`] events or more, the next wait reads them as they come.
    /// A round first lets inotify wake it [`QUIET_WAKES`] times, each quieting the
    /// directories whose writes it read: their writes then queue nothing at all.
    pub(super) fn holds_inotify(&self) -> bool {
        self.kernel.is_some()
            && self.drained < HOLD_BELOW
            && self.round_wakes >= QUIET_WAKES
            && self.registry.holding_writes()
    }

    /// Sends the readers their marks if the linger is over (see
    /// [`Registry::flush_dirty`](super::registry::Registry::flush_dirty)). Quiet directories
    /// are asked for writes again first, and their files marked: what was written to them
    /// while they were quiet is read after they can report writes again, so nothing falls
    /// in between.
    pub(super) fn flush_dirty(&mut self) {
        if self.watches.any_quiet() && self.registry.flush_is_due() {
            self.wake_quiet();
        }
        self.registry.flush_dirty();
        if self.registry.flush_due().is_none() {
            self.round_wakes = 0;
            if self.watches.any_quiet() {
                // The marks went out without waiting for the round (a parked file's): the
                // quiet directories' files are read once more, after they are woken.
                self.wake_quiet();
                self.registry.flush_dirty_now();
            }
        }
    }

    /// Asks the quiet directories for writes again and marks their files dirty.
    pub(super) fn wake_quiet(&mut self) {
        if self.watches.any_quiet() {
            let dirs = self.watches.wake_quiet();
            self.registry.mark_dirty_in(&dirs);
        }
    }

    /// Waits for an event, stop, or the next retry or flush; `None` when interrupted by a
    /// signal. With `hold_inotify`, inotify's descriptor is not polled.
    pub(super) fn wait(&self, hold_inotify: bool) -> Result<Option<Ready>, DiscoveryError> {
        let mut fds = vec![rustix::event::PollFd::new(
            &self.stop,
            rustix::event::PollFlags::IN,
        )];
        if let Some(k) = &self.kernel {
            fds.push(rustix::event::PollFd::new(
                k.wake(),
                rustix::event::PollFlags::IN,
            ));
        }
        let parks = fds.len();
        // While writes may go unheard (held, or quiet directories), a file parked meanwhile
        // must be heard of at once: its next write has to reopen it.
        if hold_inotify || self.watches.any_quiet() {
            fds.extend(self.registry.park_signals().map(|fd| {
                rustix::event::PollFd::from_borrowed_fd(fd, rustix::event::PollFlags::IN)
            }));
        }
        let inotify = fds.len();
        // Left out, not polled for no events: a descriptor in the set wakes the thread
        // (inside the kernel) at every event queued on it.
        if !hold_inotify {
            fds.push(rustix::event::PollFd::new(
                self.watches.inotify(),
                rustix::event::PollFlags::IN,
            ));
        }
        let timeout = self
            .next_retry()
            .map(|at| timespec(at.saturating_duration_since(Instant::now())));
        match rustix::event::poll(&mut fds, timeout.as_ref()) {
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => return Ok(None),
            Err(e) => return Err(DiscoveryError::Events { source: e.into() }),
        }
        let ready = |i: usize| fds.get(i).is_some_and(|f| !f.revents().is_empty());
        Ok(Some(Ready {
            events: !hold_inotify && ready(inotify),
            stop: ready(0),
            kernel: self.kernel.is_some() && ready(1),
            parked: (parks..inotify).any(ready),
        }))
    }

    /// Sleeps for `wait` unless stopped first; returns whether it was stopped.
    pub(super) fn wait_for_stop(&self, wait: Duration) -> Result<bool, DiscoveryError> {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(false);
            }
            let mut fds = [rustix::event::PollFd::new(
                &self.stop,
                rustix::event::PollFlags::IN,
            )];
            match rustix::event::poll(&mut fds, Some(&timespec(left))) {
                Ok(_) if !fds[0].revents().is_empty() => return Ok(true),
                Ok(_) | Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(DiscoveryError::Events { source: e.into() }),
            }
        }
    }
}

fn timespec(wait: Duration) -> rustix::time::Timespec {
    rustix::time::Timespec {
        tv_sec: wait.as_secs() as i64,
        tv_nsec: i64::from(wait.subsec_nanos()),
    }
}
