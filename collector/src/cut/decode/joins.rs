//! Joining partial messages — CRI `P` lines, docker's 16 KiB splits — per stream, bounded
//! by `max_line_bytes`. A stream's pending message goes out as it is once a read that found
//! the file's end shows nothing was written to that stream for `partial_timeout`, while the
//! other stream goes on (the same reasoning as the multi-line `timeout`: see
//! [`crate::cut::multiline`]).
//!
//! Owns the join buffers and their bound; it may not parse a format.

use std::time::{Duration, Instant};

use crate::cut::decode::entry::{DecodeStats, Entry, Held, Stream};

/// Buffer capacity a stream's join keeps after a message (a huge one gives the rest back).
const KEEP_BYTES: usize = 64 * 1024;

/// Joins partial messages, per stream, bounded by a byte limit.
#[derive(Debug)]
pub struct Joins {
    max: usize,
    timeout: Duration,
    streams: [Held; Stream::COUNT],
}

impl Joins {
    /// Empty join state with a limit of `max` bytes per joined message; a stream's pending
    /// message waits `timeout` for more pieces (see [`Joins::flush_expired`]).
    pub fn new(max: usize, timeout: Duration) -> Self {
        Self {
            max,
            timeout,
            streams: Default::default(),
        }
    }

    /// Handles one parsed piece of a message, read by a read done at `read_at`. `partial`
    /// pieces are held; a final piece ends the message and emits it (borrowed from the line
    /// when nothing was held: no copy).
    #[allow(clippy::too_many_arguments)]
    pub fn piece(
        &mut self,
        offset: u64,
        stream: Stream,
        time: &[u8],
        message: &[u8],
        truncated: bool,
        partial: bool,
        read_at: Instant,
        stats: &mut DecodeStats,
        emit: &mut impl FnMut(Entry<'_>),
    ) {
        let max = self.max;
        let join = &mut self.streams[stream.index()];
        if !join.active {
            if !partial {
                emit(Entry {
                    offset,
                    message,
                    stream,
                    time,
                    truncated,
                    error: None,
                });
                return;
            }
            join.begin(offset, time, read_at);
        }
        let room = max.saturating_sub(join.message.len());
        if message.len() > room {
            if !join.truncated {
                stats.truncated += 1;
            }
            stats.truncated_bytes += (message.len() - room) as u64;
            join.message.extend_from_slice(&message[..room]);
            join.truncated = true;
        } else {
            join.message.extend_from_slice(message);
        }
        join.truncated |= truncated;
        join.last = Some(read_at);
        if !partial {
            join.emit(stream, KEEP_BYTES, |entry, _| emit(entry));
        }
    }

    /// Emits every pending message as it is.
    pub fn finish(&mut self, emit: &mut impl FnMut(Entry<'_>)) {
        for (join, stream) in self.streams.iter_mut().zip(Stream::ALL) {
            join.emit(stream, KEEP_BYTES, |entry, _| emit(entry));
        }
    }

    /// The file was read to its end by a read started at `read_at`: emits, as it is, each
    /// stream's pending message whose last piece was read `timeout` or more before it — that
    /// read saw everything written before it started, so nothing was written to that stream
    /// for that long. `emit` gets each with the time its last piece was read.
    pub fn flush_expired(
        &mut self,
        read_at: Instant,
        emit: &mut impl FnMut(Entry<'_>, Option<Instant>),
    ) {
        for (join, stream) in self.streams.iter_mut().zip(Stream::ALL) {
            if join.expired(read_at, self.timeout) {
                join.emit(stream, KEEP_BYTES, &mut *emit);
            }
        }
    }

    /// Which streams have a message being joined (by [`Stream::index`]).
    pub fn joining(&self) -> [bool; Stream::COUNT] {
        self.streams.each_ref().map(|join| join.active)
    }

    /// File offset of the oldest pending message, if any.
    pub fn pending_start(&self) -> Option<u64> {
        self.streams
            .iter()
            .filter(|j| j.active)
            .map(|j| j.offset)
            .min()
    }
}
