//! Joining partial messages — CRI `P` lines, docker's 16 KiB splits — per stream, bounded
//! by `max_line_bytes`.
//!
//! Owns the join buffers and their bound; it may not parse a format.

use crate::cut::decode::entry::{DecodeStats, Entry, Stream};

/// Joins partial messages, per stream, bounded by a byte limit.
#[derive(Debug)]
pub struct Joins {
    max: usize,
    streams: [Join; Stream::COUNT],
}

#[derive(Debug, Default)]
struct Join {
    active: bool,
    offset: u64,
    time: Vec<u8>,
    buf: Vec<u8>,
    truncated: bool,
}

impl Joins {
    /// Empty join state with a limit of `max` bytes per joined message.
    pub fn new(max: usize) -> Self {
        Self {
            max,
            streams: Default::default(),
        }
    }

    /// Handles one parsed piece of a message. `partial` pieces are held; a final piece ends
    /// the message and emits it (borrowed from the line when nothing was held: no copy).
    #[allow(clippy::too_many_arguments)]
    pub fn piece(
        &mut self,
        offset: u64,
        stream: Stream,
        time: &[u8],
        message: &[u8],
        truncated: bool,
        partial: bool,
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
            join.active = true;
            join.offset = offset;
            join.time.clear();
            join.time.extend_from_slice(time);
            join.buf.clear();
            join.truncated = false;
        }
        let room = max.saturating_sub(join.buf.len());
        if message.len() > room {
            if !join.truncated {
                stats.truncated += 1;
            }
            stats.truncated_bytes += (message.len() - room) as u64;
            join.buf.extend_from_slice(&message[..room]);
            join.truncated = true;
        } else {
            join.buf.extend_from_slice(message);
        }
        join.truncated |= truncated;
        if !partial {
            emit(Entry {
                offset: join.offset,
                message: &join.buf,
                stream,
                time: &join.time,
                truncated: join.truncated,
                error: None,
            });
            join.active = false;
            join.buf.clear();
            // A single huge join must not pin its memory for the life of the file.
            if join.buf.capacity() > 64 * 1024 {
                join.buf.shrink_to(64 * 1024);
            }
        }
    }

    /// Emits every pending message as it is.
    pub fn finish(&mut self, emit: &mut impl FnMut(Entry<'_>)) {
        for (i, join) in self.streams.iter_mut().enumerate() {
            if join.active {
                let stream = [Stream::Stdout, Stream::Stderr, Stream::Unknown][i];
                emit(Entry {
                    offset: join.offset,
                    message: &join.buf,
                    stream,
                    time: &join.time,
                    truncated: join.truncated,
                    error: None,
                });
                join.active = false;
                join.buf.clear();
            }
        }
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
