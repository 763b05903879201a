//! What travels from workers to sinks: a [`Batch`] of encoded records, and for sinks that
//! take records one by one, a [`RecordIndex`] of where each record ends and whose it is.
//!
//! Every batch carries an [`AckHandle`] with, for every file that contributed, the offset up
//! to which that file is *complete*: every record that starts before it is in this batch or an
//! earlier one of the same route. Each sink that receives the batch acknowledges it once the
//! data is durable at its destination (see [`crate::deliver::ack`]). A sink that cannot
//! deliver simply never acknowledges, and the offsets do not move.
//!
//! Owns the shape of a batch; it may not decide when one is sent (workers) or delivered
//! (sinks).

use std::sync::Arc;

use bytes::Bytes;

use crate::cut::decode::Stream;
use crate::deliver::ack::AckHandle;
use crate::source::FileCtx;

/// Encoded records on their way to one sink.
#[derive(Debug, Clone)]
pub struct Batch {
    /// NDJSON: one record per line.
    pub data: Bytes,
    /// Number of records in `data`.
    pub records: u64,
    /// Acknowledge when `data` is durable at the sink.
    pub ack: AckHandle,
    /// Where each record ends and which file and stream it came from, for sinks that route
    /// or key records one by one (Kafka); `None` on routes whose sinks take the batch whole.
    pub index: Option<Arc<RecordIndex>>,
}

/// The records of a batch, one by one.
#[derive(Debug, Default, Clone)]
pub struct RecordIndex {
    /// One entry per record, in order.
    pub records: Vec<RecordRef>,
    /// The files the records came from ([`RecordRef::file`] indexes this).
    pub files: Vec<Arc<FileCtx>>,
}

/// One record of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordRef {
    /// End of the record in [`Batch::data`], after its newline; it starts where the previous
    /// one ends.
    pub end: u32,
    /// Index in [`RecordIndex::files`].
    pub file: u32,
    /// The record's stream.
    pub stream: Stream,
}

impl RecordIndex {
    /// Each record's bytes (without the newline), file and stream.
    pub fn iter<'a>(
        &'a self,
        data: &'a [u8],
    ) -> impl Iterator<Item = (&'a [u8], &'a Arc<FileCtx>, Stream)> + 'a {
        let mut start = 0usize;
        self.records.iter().filter_map(move |r| {
            let end = r.end as usize;
            let record = data.get(start..end.saturating_sub(1))?;
            start = end;
            Some((record, self.files.get(r.file as usize)?, r.stream))
        })
    }
}
