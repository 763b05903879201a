//! What travels from workers to sinks, and how it is acknowledged.
//!
//! A [`Batch`] is a run of encoded NDJSON records plus, for every file that contributed, the
//! offset up to which that file is *complete*: every record that starts before it is in this
//! batch or an earlier one of the same route. Each sink that receives the batch calls
//! [`AckHandle::ack`] once the data is durable at its destination; when the last one has, the
//! progress is handed to the [`AckTracker`](crate::ack::AckTracker). A sink that cannot deliver
//! simply never acknowledges, and the offsets do not move.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;

use crate::ack::AckTracker;
use crate::decode::Stream;
use crate::source::{FileCtx, SourceId};

/// How far one file is complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileProgress {
    /// The file.
    pub id: SourceId,
    /// Every record starting before this byte offset has been handed on.
    pub offset: u64,
    /// Number of this progress report among the file's reports (0, 1, 2, …): the tracker
    /// applies them in this order whatever order the acknowledgements come in.
    pub seq: u64,
    /// The file was read to its end and closed; this is its last report.
    pub closed: bool,
}

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

/// The shared acknowledgement state of one batch sent to several sinks.
#[derive(Debug, Clone)]
pub struct AckHandle(Arc<AckState>);

#[derive(Debug)]
struct AckState {
    remaining: AtomicUsize,
    progress: Vec<FileProgress>,
    tracker: Arc<AckTracker>,
}

impl AckHandle {
    /// A handle that completes after `sinks` acknowledgements.
    pub fn new(sinks: usize, progress: Vec<FileProgress>, tracker: Arc<AckTracker>) -> Self {
        Self(Arc::new(AckState {
            remaining: AtomicUsize::new(sinks),
            progress,
            tracker,
        }))
    }

    /// One sink has made the batch durable. The last acknowledgement advances the files.
    pub fn ack(&self) {
        // AcqRel: the last sink must see every earlier sink's writes before publishing.
        if self.0.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.tracker.complete(&self.0.progress);
        }
    }

    /// The progress this batch carries.
    pub fn progress(&self) -> &[FileProgress] {
        &self.0.progress
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;

    #[test]
    fn a_batch_completes_only_when_every_sink_has_acknowledged_it() {
        let tracker = Arc::new(AckTracker::new(Arc::new(Metrics::new())));
        let progress = vec![FileProgress {
            id: SourceId(1),
            offset: 100,
            seq: 0,
            closed: false,
        }];
        tracker.open(
            SourceId(1),
            crate::source::FileIdentity { dev: 1, ino: 1 },
            crate::checkpoint::Fingerprint::of(b""),
            std::path::Path::new("/a.log"),
            "s",
            0,
        );
        let handle = AckHandle::new(2, progress, Arc::clone(&tracker));
        let for_second_sink = handle.clone();
        handle.ack();
        assert_eq!(tracker.offset(SourceId(1)), Some(0));
        for_second_sink.ack();
        assert_eq!(tracker.offset(SourceId(1)), Some(100));
    }
}
