//! Compressed rotations in a reader: taking one in (a decoder instead of the backend),
//! reading its chunks in the round, and closing it at its end or at its damage.
//!
//! A compressed rotation is complete when discovery hands it over, so it is read to its end
//! and closed, like a gone file, but it holds no deleted file's disk space: it is neither
//! counted in nor limited by `reader.max_open_deleted` / `max_deleted_bytes`. Its chunks are
//! decoded on the reader thread, in the same round as the backend's batch; rotations are
//! compressed only after the live file moved on, so this is catching up, not the live path.
//!
//! Owns the decoded files' reads; the order of reads stays with the round.

use std::fs::File;

use super::Reader;
use crate::compressed::{Codec, DecodeError, Decoder};
use crate::file::FileId;
use crate::metrics::Metrics;
use crate::read::backend::ReadOp;
use crate::source::FileCtx;

impl Reader {
    /// The decoder for a compressed rotation `ctx` opened as `file`; `None` (logged, counted,
    /// the budget's slot given back) when it cannot be set up.
    pub(super) fn decoder(&self, ctx: &FileCtx, file: File, codec: Codec) -> Option<Decoder> {
        match Decoder::new(codec, file) {
            Ok(decoder) => Some(decoder),
            Err(e) => {
                self.budget.release();
                tracing::error!(file = %ctx.path.display(), error = %e, "cannot read compressed rotation; it is skipped");
                self.metrics
                    .read_errors
                    .get_or_create(&Metrics::source(&ctx.source.name))
                    .inc();
                None
            }
        }
    }

    /// Performs this round's reads of compressed files, taken out of `ops`; the others are
    /// left for the backend. Returns the decoded reads, done.
    pub(super) fn read_decoded(&mut self, ops: &mut Vec<ReadOp>) -> Vec<ReadOp> {
        if !self.files.values().any(|f| f.decoder.is_some()) {
            return Vec::new();
        }
        let (mut decoded, backend): (Vec<ReadOp>, Vec<ReadOp>) = std::mem::take(ops)
            .into_iter()
            .partition(|op| self.files.get(&op.id).is_some_and(|f| f.decoder.is_some()));
        *ops = backend;
        for op in &mut decoded {
            let Some(decoder) = self.files.get_mut(&op.id).and_then(|f| f.decoder.as_mut()) else {
                continue;
            };
            op.result = match decoder.read_at(op.offset, op.buf.as_mut_slice()) {
                Ok(n) => Ok(n),
                Err(e) => Err(std::io::Error::other(e)),
            };
            op.buf.set_len(*op.result.as_ref().unwrap_or(&0));
        }
        decoded
    }

    /// A compressed file's read came back short: the end of its data, or damage after the
    /// last bytes that decoded. Either way it is closed.
    pub(super) fn decoded_end(&mut self, id: FileId) {
        let damage = self
            .files
            .get(&id)
            .and_then(|f| f.decoder.as_ref())
            .and_then(Decoder::damage);
        match damage {
            Some(damage) => self.damaged(id, &damage),
            None => self.close(id),
        }
    }

    /// A compressed file's read failed with `error`: what decoded is delivered already; the
    /// compressed bytes that did not decode are counted and logged, and the file closed.
    pub(super) fn decode_failed(&mut self, id: FileId, error: &std::io::Error) {
        match error
            .get_ref()
            .and_then(|e| e.downcast_ref::<DecodeError>())
        {
            Some(damage) => self.damaged(id, damage),
            None => {
                let damage = DecodeError::Io {
                    source: std::io::Error::new(error.kind(), error.to_string()),
                };
                self.damaged(id, &damage);
            }
        }
    }

    fn damaged(&mut self, id: FileId, error: &DecodeError) {
        let Some(file) = self.files.get_mut(&id) else {
            return;
        };
        file.read_errors.inc();
        let undecoded = error.undecoded();
        file.lost(Metrics::LOST_DAMAGED_ARCHIVE, undecoded);
        tracing::error!(
            file = %file.ctx.path.display(),
            offset = file.offset,
            lost_compressed_bytes = undecoded,
            error = %error,
            "compressed rotation (the file named plus its .gz or .zst suffix) is damaged: what decoded was read, the rest is lost"
        );
        self.close(id);
    }

    /// Whether file `id` is a compressed rotation.
    pub(super) fn is_decoded(&self, id: FileId) -> bool {
        self.files.get(&id).is_some_and(|f| f.decoder.is_some())
    }
}
