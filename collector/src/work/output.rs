//! A worker's output for one route: the batch being built, one buffer per encoding the
//! route's sinks use, and the progress of every file that contributed.
//!
//! [`Output::cut`] is where a file's records meet their route: each record a file's cutting
//! state emits goes through the source's processors, is encoded into every buffer, and is
//! indexed where a sink takes records one by one.
//!
//! Owns the buffers being filled; it may not send them (the worker does) or keep per-file
//! state.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

use crate::cut::decode::Entry;
use crate::cut::{CutStats, Records};
use crate::deliver::ack::FileProgress;
use crate::deliver::batch::{RecordIndex, RecordRef};
use crate::encode::otlp::encode_otlp;
use crate::encode::otlp_json::encode_otlp_json;
use crate::encode::{EncodeStats, Encoding, FileFields, encode_text, encode_with};
use crate::file::FileId;
use crate::process::{self, Fields, Outcome, ProcessStats};
use crate::source::FileCtx;
use crate::work::route::Route;
use crate::work::spare::{self, Spares};

/// The counters of one cut-and-encode call, published per file afterwards.
#[derive(Default)]
pub struct Stats {
    /// Cutting.
    pub cut: CutStats,
    /// Encoding.
    pub encode: EncodeStats,
    /// Processors.
    pub process: ProcessStats,
}

/// A route's batch being built.
pub struct Output {
    /// One per encoding of the route, in the order of [`Route::encodings`].
    parts: Vec<Part>,
    records: u64,
    progress: Vec<FileProgress>,
    slots: HashMap<FileId, usize>,
}

/// The records of a batch in one encoding.
struct Part {
    encoding: Encoding,
    buf: Vec<u8>,
    /// The records one by one, when a sink wants them.
    index: Option<RecordIndex>,
    /// Position of each file context in `index.files`, by address (a renamed file has a new
    /// context, and keeps the old one for the records encoded before).
    file_slots: HashMap<usize, u32>,
    /// The slot of the file being encoded now.
    current: Option<u32>,
    /// Sizes of the largest recent batch (bytes, records), with which the next batch's
    /// buffers start: a batch ends after the chunk that crosses `batch_bytes`, so it is
    /// usually larger than that, and growing a buffer on the way copies the whole batch.
    high_water: (usize, usize),
    /// Where an OTLP record is built before its length is known.
    scratch: Vec<u8>,
    /// Buffers of sent batches, back from the sinks.
    spares: Arc<Spares>,
}

/// A batch's buffer starts at most this many times `batch_bytes` (the size of the recent
/// batches, see [`Output::take`]); spare buffers up to that size are kept.
const MAX_START_BATCHES: usize = 4;

/// Batch buffers are sized in steps of this many bytes, so that a spare fits the next batch of
/// about the same size: sized to the byte, a spare was a little too small for the next batch
/// more often than not, and each miss was a fresh buffer whose pages the kernel faulted in and
/// zeroed again.
const SIZE_STEP: usize = 64 * 1024;

/// The capacity a batch's buffer starts with when recent batches were up to `recent` bytes.
fn start_capacity(batch_bytes: usize, recent: usize) -> usize {
    (batch_bytes.max(recent) + 4096).next_multiple_of(SIZE_STEP)
}

/// The largest capacity a batch's buffer starts with, and a spare is kept at, with batches of
/// `batch_bytes`: [`MAX_START_BATCHES`] × `batch_bytes` and a step of headroom.
fn max_buffer(batch_bytes: usize) -> usize {
    start_capacity(batch_bytes, MAX_START_BATCHES * batch_bytes)
}

/// What one worker keeps for one output part between batches with batches of `batch_bytes`,
/// at most, in bytes: the buffer of the batch filling and the spares back from the sinks
/// ([`spare::KEEP`]), each started or kept at no more than [`MAX_START_BATCHES`] ×
/// `batch_bytes` (and a step of headroom). The batch filling grows past that only while the
/// chunk that closes it is encoded, by that chunk's encoding, and sends it at once.
pub fn held_per_part(batch_bytes: usize) -> usize {
    (1 + spare::KEEP) * max_buffer(batch_bytes)
}

impl Output {
    /// An empty output for `route`: one buffer per encoding, indexed where a sink wants it;
    /// batches close at `batch_bytes` (see [`Output::take`]).
    pub fn new(route: &Route, batch_bytes: usize) -> Self {
        Self {
            parts: route
                .encodings
                .iter()
                .map(|&(encoding, index)| Part {
                    encoding,
                    buf: Vec::new(),
                    index: index.then(RecordIndex::default),
                    file_slots: HashMap::new(),
                    current: None,
                    high_water: (0, 0),
                    scratch: Vec::new(),
                    // A batch closes after the chunk that crossed `batch_bytes`, and a
                    // chunk of 512 KiB (the default `chunk_size`) encodes to up to about 1 MiB of
                    // JSON: the buffers of such batches are kept up to the size the next
                    // batch may start at (see `Output::take`).
                    spares: Spares::new(max_buffer(batch_bytes)),
                })
                .collect(),
            records: 0,
            progress: Vec::new(),
            slots: HashMap::new(),
        }
    }

    /// Bytes in the largest buffer.
    pub fn len(&self) -> usize {
        self.parts.iter().map(|p| p.buf.len()).max().unwrap_or(0)
    }
}

impl Part {
    /// Makes `ctx` the file being encoded, adding it to the record index if there is one.
    fn select(&mut self, ctx: &Arc<FileCtx>) {
        let Some(index) = self.index.as_mut() else {
            return;
        };
        let slot = *self
            .file_slots
            .entry(Arc::as_ptr(ctx) as usize)
            .or_insert_with(|| {
                index.files.push(Arc::clone(ctx));
                (index.files.len() - 1) as u32
            });
        self.current = Some(slot);
    }

    /// Hands the buffer and index over for sending, and starts the next ones at the size of
    /// the recent batches (the largest lately: each full batch lowers it by an eighth, so
    /// one huge record does not keep a huge buffer for long; a short batch, the end of a
    /// round, says nothing of how far a full one grows and only raises it), at most `cap`
    /// bytes.
    fn take(&mut self, batch_bytes: usize, cap: usize) -> (Bytes, Option<Arc<RecordIndex>>) {
        let records_now = self.index.as_ref().map_or(0, |i| i.records.len());
        let (mut bytes, mut records) = self.high_water;
        if self.buf.len() >= batch_bytes {
            bytes -= bytes / 8;
            records -= records / 8;
        }
        self.high_water = (
            self.buf.len().max(bytes).min(cap),
            records_now.max(records).min(cap / 16),
        );
        let next = self
            .spares
            .take(start_capacity(batch_bytes, self.high_water.0));
        let data = self.spares.freeze(std::mem::replace(&mut self.buf, next));
        self.file_slots.clear();
        self.current = None;
        let index_capacity = self.high_water.1 + 64;
        let index = self.index.as_mut().map(|index| {
            Arc::new(std::mem::replace(
                index,
                RecordIndex {
                    records: Vec::with_capacity(index_capacity),
                    files: Vec::new(),
                },
            ))
        });
        (data, index)
    }
}

impl Output {
    /// Sets the file's progress in this batch; a file's first report in a batch takes the
    /// next number from `next_seq`, later ones in the same batch update it.
    pub fn set_progress(&mut self, id: FileId, offset: u64, closed: bool, next_seq: &mut u64) {
        match self.slots.get(&id) {
            Some(&i) => {
                self.progress[i].offset = offset;
                self.progress[i].closed |= closed;
            }
            None => {
                self.slots.insert(id, self.progress.len());
                self.progress.push(FileProgress {
                    id,
                    offset,
                    seq: *next_seq,
                    closed,
                });
                *next_seq += 1;
            }
        }
    }

    /// Drops the spare buffers of every part (the worker is idle); returns how many.
    pub fn trim(&self) -> usize {
        self.parts.iter().map(|p| p.spares.trim()).sum()
    }

    /// Whether there is nothing to send: no records and no progress.
    pub fn is_empty(&self) -> bool {
        self.parts.iter().all(|p| p.buf.is_empty()) && self.progress.is_empty()
    }
}

/// A batch ready to send.
#[derive(Debug)]
pub struct Ready {
    /// Each encoding's buffer, with its record index where a sink wants one (in the order of
    /// [`Route::encodings`]).
    pub parts: Vec<(Bytes, Option<Arc<RecordIndex>>)>,
    /// Records in each buffer.
    pub records: u64,
    /// The progress of every file that contributed.
    pub progress: Vec<FileProgress>,
}

/// What to do with a file's cutting state; every record it emits is processed and encoded.
#[derive(Debug, Clone, Copy)]
pub enum Cut<'a> {
    /// Cut the next chunk of the file, read by a read started at the given time.
    Push(&'a [u8], Instant),
    /// The file does not continue where it was: emit everything pending; restart framing at
    /// the offset, or end the file.
    Finish(Option<u64>),
    /// The file was read to its end by a read started at the given time: emit the partial
    /// lines and pending multi-line records whose stream had nothing for `partial_timeout`
    /// or the multi-line `timeout` before it.
    FlushExpired(Instant),
    /// The file had nothing more to read for its `partial_timeout`: emit the unfinished line
    /// as it is.
    FlushUnfinished,
    /// Emit every pending multi-line record: the file had nothing more to read for the
    /// multi-line `timeout`, or the collector shuts down.
    FlushMultiline,
}

impl Output {
    /// Runs `cut` on `records` (the file `ctx`, whose per-file JSON tail is `fields`), runs
    /// the source's processors on every record it emits and encodes each kept record once per
    /// encoding of the route, with its entry in the record index where a sink wants one.
    pub fn cut(
        &mut self,
        records: &mut Records,
        cut: Cut<'_>,
        ctx: &Arc<FileCtx>,
        fields: &FileFields,
        stats: &mut Stats,
    ) {
        for part in &mut self.parts {
            part.select(ctx);
        }
        let Stats {
            cut: cut_stats,
            encode: encode_stats,
            process: process_stats,
        } = stats;
        let before = encode_stats.records;
        let processors = &*ctx.source.processors;
        // OTLP's observed time: once per call, not per record (a clock read per record would
        // cost more than encoding a short one).
        let observed = if self
            .parts
            .iter()
            .any(|p| matches!(p.encoding, Encoding::Otlp | Encoding::OtlpJson))
        {
            crate::timestamp::now_nanos()
        } else {
            0
        };
        // A plain file's records carry when they were read (`observed_time`): once per call.
        let read_time = if self.parts.iter().any(|p| p.encoding == Encoding::Json) {
            crate::timestamp::Civil::from_nanos(crate::timestamp::now_nanos()).rfc3339_nanos_bytes()
        } else {
            [0; 30]
        };
        let read_time: &[u8] = if read_time[0] == 0 { b"" } else { &read_time };
        let parts = &mut self.parts;
        let emit = &mut |record: Entry<'_>| {
            let mut extracted = Fields::default();
            let (record, extracted) = if processors.is_empty() {
                (record, None)
            } else {
                let mut error = record.error;
                match process::run(
                    processors,
                    &record,
                    &mut extracted,
                    &mut error,
                    process_stats,
                ) {
                    Outcome::Keep => (Entry { error, ..record }, Some(&extracted)),
                    Outcome::Dropped(_) => return,
                }
            };
            // The first encoding counts the records (JSON, when there is one, also the
            // invalid UTF-8 it finds).
            let mut again = EncodeStats::default();
            for (k, part) in parts.iter_mut().enumerate() {
                let counts = if k == 0 {
                    &mut *encode_stats
                } else {
                    &mut again
                };
                match part.encoding {
                    Encoding::Json => {
                        encode_with(&mut part.buf, &record, fields, extracted, read_time, counts)
                    }
                    Encoding::Text => encode_text(&mut part.buf, &record, counts),
                    Encoding::Otlp => encode_otlp(
                        &mut part.buf,
                        &mut part.scratch,
                        &record,
                        extracted,
                        observed,
                        counts,
                    ),
                    Encoding::OtlpJson => {
                        encode_otlp_json(&mut part.buf, &record, extracted, observed, counts)
                    }
                }
                if let (Some(index), Some(file)) = (part.index.as_mut(), part.current) {
                    index.records.push(RecordRef {
                        end: part.buf.len() as u32,
                        file,
                        stream: record.stream,
                    });
                }
            }
        };
        match cut {
            Cut::Push(chunk, read_at) => records.push(chunk, read_at, cut_stats, emit),
            Cut::FlushExpired(read_at) => records.flush_expired(read_at, cut_stats, emit),
            Cut::Finish(restart_at) => records.finish(restart_at, cut_stats, emit),
            Cut::FlushUnfinished => records.flush_unfinished(cut_stats, emit),
            Cut::FlushMultiline => records.flush_multiline(cut_stats, emit),
        }
        self.records += stats.encode.records - before;
    }

    /// Hands every buffer over for sending, and starts the next batch: buffers at the size
    /// of the recent batches, at most [`MAX_START_BATCHES`] × `batch_bytes`.
    pub fn take(&mut self, batch_bytes: usize) -> Ready {
        let cap = MAX_START_BATCHES * batch_bytes;
        let parts = self
            .parts
            .iter_mut()
            .map(|part| part.take(batch_bytes, cap))
            .collect();
        self.slots.clear();
        Ready {
            parts,
            records: std::mem::take(&mut self.records),
            progress: std::mem::take(&mut self.progress),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    /// A round of reads at 10 MB/s of JSON records fills two batches just past the batch size
    /// and a short one, sent back to back; the sink gives them back after the round. From the
    /// second round on, no batch grows its buffer and no new buffer is allocated.
    #[test]
    fn rounds_of_full_batches_and_a_short_one_reuse_their_buffers() {
        let batch = 512 << 10;
        let cap = MAX_START_BATCHES * batch;
        let mut part = Part {
            encoding: Encoding::Json,
            buf: Vec::new(),
            index: None,
            file_slots: HashMap::new(),
            current: None,
            high_water: (0, 0),
            scratch: Vec::new(),
            spares: Spares::new(max_buffer(batch)),
        };
        let mut buffers = HashSet::new();
        for round in 0..10 {
            let mut sent = Vec::new();
            for len in [620_000, 625_000, 207_000] {
                let capacity = part.buf.capacity();
                part.buf.resize(len, b'x');
                if round > 0 {
                    assert_eq!(part.buf.capacity(), capacity, "round {round}: grown");
                    buffers.insert(part.buf.as_ptr() as usize);
                }
                sent.push(part.take(batch, cap).0);
            }
        }
        // The buffer filling and the three batches of a round in flight.
        let filling_and_a_round = 1 + 3;
        assert!(
            buffers.len() <= filling_and_a_round,
            "{} buffers",
            buffers.len()
        );
    }
}
