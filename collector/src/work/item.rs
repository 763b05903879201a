//! The reader → worker contract: what a reader tells the worker that owns a file.
//!
//! A file's items arrive in order on one worker: `Open` before its data, `Data` chunks
//! contiguous, `Truncated` restarting at 0, `Idle` when it had nothing more for a while,
//! `Close` after the last data of a drained file.
//!
//! Owns the contract's shape; it may not decide when items are sent.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

use crate::file::FileId;
use crate::source::FileCtx;

/// What a reader tells a worker about a file.
#[derive(Debug)]
pub enum WorkItem {
    /// A file is open; its bytes from `offset` on will follow.
    Open {
        /// The file.
        ctx: Arc<FileCtx>,
        /// Where reading starts.
        offset: u64,
    },
    /// The next bytes of a file.
    Data {
        /// The file.
        id: FileId,
        /// File offset of `bytes[0]`.
        offset: u64,
        /// The bytes, in a pooled page-aligned buffer.
        bytes: Bytes,
        /// When the round's reads were started: if `at_end`, everything written to the file
        /// before then is in these bytes or earlier ones.
        read_started: Instant,
        /// When the round's reads were done: no line in these bytes was written later, so it
        /// is their lines' time for the multi-line `timeout` (the reader's clock: time a
        /// chunk then spends behind a backlog does not count).
        read_done: Instant,
        /// The read found the file's end: a stream whose last line's time is `timeout` or more
        /// before `read_started` had no line written for that long.
        at_end: bool,
    },
    /// The file shrank below the read offset (copytruncate): pending state is flushed and
    /// reading restarts at offset 0.
    Truncated {
        /// The file.
        id: FileId,
    },
    /// The file has a hole (a sparse file's zeros that were never written) up to `to`: what
    /// is pending is emitted as it is, and cutting goes on at `to`.
    Hole {
        /// The file.
        id: FileId,
        /// Where the file's data goes on.
        to: u64,
    },
    /// The file has had nothing more to read at `at` for a while: what is pending at its end
    /// is complete as it is. Sent by the reader, which alone knows whether more of the file
    /// waits to be read, when the pause reaches each of the source's idle timeouts
    /// ([`crate::cut::CutSettings::idle_timeouts`]).
    Idle {
        /// The file.
        id: FileId,
        /// Its read offset: the notice holds only if no data after it was sent since.
        at: u64,
        /// The pause is `partial_timeout` or longer: an unfinished line ending at `at` is
        /// emitted as it is.
        unfinished_line: bool,
        /// The pause is the multi-line `timeout` or longer: the pending multi-line records are
        /// emitted.
        multiline: bool,
    },
    /// The file has a new path.
    Renamed {
        /// The file, with its new path.
        ctx: Arc<FileCtx>,
    },
    /// The file is gone and was read to its end: everything pending is emitted and the file's
    /// state dropped.
    Close {
        /// The file.
        id: FileId,
    },
}
