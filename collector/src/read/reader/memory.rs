//! A reader's hold on the buffer pool: waiting for a buffer while every one is downstream,
//! and, once the reader has been idle for [`TRIM_AFTER`], giving back the free buffers a
//! burst needed and what its own thread freed — a single timer per idle spell, none while
//! nothing was read since.
//!
//! Owns when to trim; the pool ([`crate::read::buffer`]) owns how.

use std::time::{Duration, Instant};

use crossbeam::channel::select;

use super::{Reader, ReaderError, Stop};
use crate::read::buffer::AlignedBuf;

/// How long a reader stays idle before it trims: well beyond the gaps between rounds at any
/// steady rate (the linger is at most a second, 250 ms by default), so a reader with work
/// never unmaps and maps the same buffers again and again.
const TRIM_AFTER: Duration = Duration::from_secs(5);

/// A trim due this soon is done by the wake-up at hand (the idle notices of the files last
/// read come due at about the same time), rather than by one more.
const TRIM_SLACK: Duration = Duration::from_secs(1);

/// Free buffers kept through a trim: the ones returned last, whose pages are resident anyway.
const KEEP: usize = 2;

impl Reader {
    /// Waits until a worker returns a buffer (or shutdown). Tokens are taken one at a time,
    /// never drained: readers sharing the pool each need the token of the buffer they take
    /// (a stale token costs one more look).
    pub(super) fn wait_for_buffer(&mut self) -> Result<AlignedBuf, Stop> {
        loop {
            if let Some(buf) = self.try_buffer()? {
                return Ok(buf);
            }
            select! {
                recv(self.pool.returned()) -> token => if token.is_err() {
                    return Err(Stop::Shutdown);
                },
                recv(self.shutdown) -> _ => return Err(Stop::Shutdown),
            }
        }
    }

    /// A free buffer, if the pool has one (mapping a new one while under its bound); a
    /// buffer that cannot be mapped stops the reader.
    pub(super) fn try_buffer(&mut self) -> Result<Option<AlignedBuf>, Stop> {
        self.pool.try_get().map_err(|source| {
            Stop::Failed(ReaderError::Buffer {
                reader: self.index,
                source,
            })
        })
    }

    /// Called as the reader goes idle at `now`: trims once its idle spell reached
    /// [`TRIM_AFTER`] (within [`TRIM_SLACK`]), and otherwise (having read since the last trim) sets when to.
    pub(super) fn trim_when_idle(&mut self, now: Instant) {
        match self.trim_at {
            Some(at) if at <= now + TRIM_SLACK => {
                self.trim_at = None;
                self.read_since_trim = false;
                let trimmed = self.pool.trim(KEEP);
                crate::memory::give_back_freed();
                tracing::debug!(
                    reader = self.index,
                    trimmed,
                    "idle: free read buffers unmapped"
                );
            }
            Some(_) => {}
            None if self.read_since_trim => self.trim_at = Some(now + TRIM_AFTER),
            None => {}
        }
    }
}
