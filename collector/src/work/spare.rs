//! Output buffers a worker gets back: a batch's buffer returns here when the last sink that
//! holds it drops it, and the worker fills it again, its pages still resident.
//!
//! Without it each batch was a new allocation of a megabyte or more: its pages were faulted
//! in and zeroed by the kernel as records were encoded into them, and a batch larger than
//! the last grew its buffer by copying it. With it, a worker went from 0.60–0.68 % to
//! 0.38–0.43 % of a core at 10 MB/s of JSON records. A worker idle for [`TRIM_AFTER`] drops
//! what it kept, so an idle collector holds none of it.
//!
//! What is kept is bounded in bytes, not in buffers: a round of reads fills several batches
//! that are sent one right after the other, faster than one sink thread writes those of every
//! worker, so a round needs as many buffers as it fills batches (four or five of about 600 KiB
//! at 10 MB/s). Kept by count (one), half the buffers the sinks gave back were dropped and each
//! round faulted in fresh ones: workers at 0.52 % of a core each instead of 0.35 %.
//!
//! Owns the spare buffers; it may not decide how large a batch is (the output does).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use crossbeam::queue::ArrayQueue;

/// A worker idle this long drops its spare buffers and gives their memory back: well beyond
/// the gaps between rounds at any steady rate (the linger is at most a second).
pub const TRIM_AFTER: Duration = Duration::from_secs(5);

/// Spare bytes kept per output part, in buffers of the largest size kept: two of the largest,
/// or more of the usual smaller ones.
pub const KEEP: usize = 2;

/// Spare buffers kept per output part at most, whatever their size.
const MAX_BUFFERS: usize = 8;

/// A part's spare buffers.
#[derive(Debug)]
pub struct Spares {
    free: ArrayQueue<Vec<u8>>,
    /// Capacity of the buffers in `free`, in bytes.
    kept: AtomicUsize,
    /// Buffers larger than this are not kept (one huge record does not pin a huge buffer).
    max_capacity: usize,
}

impl Spares {
    /// Spares of at most `max_capacity` bytes each, [`KEEP`] × `max_capacity` in all.
    pub fn new(max_capacity: usize) -> Arc<Self> {
        Arc::new(Self {
            free: ArrayQueue::new(MAX_BUFFERS),
            kept: AtomicUsize::new(0),
            max_capacity,
        })
    }

    /// An empty buffer of at least `capacity` bytes: a spare if one is that large.
    pub fn take(&self, capacity: usize) -> Vec<u8> {
        while let Some(buf) = self.pop() {
            if buf.capacity() >= capacity {
                return buf;
            }
        }
        Vec::with_capacity(capacity)
    }

    /// Freezes `buf` for the sinks without copying; it comes back as a spare when the last
    /// clone or slice of the [`Bytes`] is dropped.
    pub fn freeze(self: &Arc<Self>, buf: Vec<u8>) -> Bytes {
        Bytes::from_owner(Returning {
            buf,
            spares: Arc::clone(self),
        })
    }

    /// Drops every spare; returns how many there were.
    pub fn trim(&self) -> usize {
        let mut n = 0;
        while self.pop().is_some() {
            n += 1;
        }
        n
    }

    fn pop(&self) -> Option<Vec<u8>> {
        let buf = self.free.pop()?;
        self.kept.fetch_sub(buf.capacity(), Ordering::Relaxed);
        Some(buf)
    }

    fn give_back(&self, mut buf: Vec<u8>) {
        let size = buf.capacity();
        if size > self.max_capacity {
            return;
        }
        // Sinks give buffers back from their own threads: reserve the bytes first, so that
        // two at once cannot both pass the bound.
        let kept = self.kept.fetch_add(size, Ordering::Relaxed) + size;
        buf.clear();
        if kept > KEEP * self.max_capacity || self.free.push(buf).is_err() {
            // Over the bound or full: the buffer is dropped.
            self.kept.fetch_sub(size, Ordering::Relaxed);
        }
    }
}

/// Owner of a frozen batch buffer; gives it back to its spares on drop.
struct Returning {
    buf: Vec<u8>,
    spares: Arc<Spares>,
}

impl AsRef<[u8]> for Returning {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

impl Drop for Returning {
    fn drop(&mut self) {
        self.spares.give_back(std::mem::take(&mut self.buf));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_buffer_comes_back_once_its_last_holder_drops_it() {
        let spares = Spares::new(1 << 20);
        let mut buf = spares.take(4096);
        buf.extend_from_slice(b"records");
        let address = buf.as_ptr();
        let data = spares.freeze(buf);
        let held = data.slice(1..3);
        drop(data);
        assert_eq!(&held[..], b"ec");
        assert_eq!(spares.take(0).capacity(), 0, "still held by a sink");
        drop(held);
        let again = spares.take(4096);
        assert_eq!(again.as_ptr(), address, "the same memory");
        assert!(again.is_empty());
        assert!(again.capacity() >= 4096);
    }

    #[test]
    fn spares_too_small_or_too_large_are_not_used_or_kept() {
        let spares = Spares::new(8192);
        drop(spares.freeze(Vec::with_capacity(1024)));
        assert!(
            spares.take(4096).capacity() >= 4096,
            "a small spare is not enough"
        );
        drop(spares.freeze(Vec::with_capacity(1 << 20)));
        assert_eq!(spares.trim(), 0, "a huge buffer is not kept");
        for _ in 0..=KEEP {
            drop(spares.freeze(Vec::with_capacity(8192)));
        }
        assert_eq!(spares.trim(), KEEP, "at most {KEEP} of the largest kept");
        for _ in 0..=MAX_BUFFERS {
            drop(spares.freeze(Vec::with_capacity(1024)));
        }
        assert_eq!(
            spares.trim(),
            (KEEP * 8).min(MAX_BUFFERS),
            "more of smaller ones, up to {MAX_BUFFERS}"
        );
        drop(spares.freeze(Vec::with_capacity(8192)));
        assert_eq!(
            spares.take(8192).capacity(),
            8192,
            "what was taken is uncounted"
        );
    }
}
