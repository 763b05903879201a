//! Sparse files: which part of a chunk is data and which is a hole (zeros never written), and
//! skipping a hole — counted, logged once per file, and told to the worker so the file's
//! records go on after it.
//!
//! Owns hole detection and skipping; reads stay with the round.

use super::Reader;
use crate::file::FileId;
use crate::read::backend::{ReadBackend, Region};
use crate::read::buffer::AlignedBuf;
use crate::work::item::WorkItem;

/// What a chunk read from a sparse file holds.
enum Sparse {
    /// Data only (or a file system that reports no holes).
    Whole,
    /// Data of this length, then from `hole` on a hole (the zeros between them pad the data's
    /// last block).
    Cut {
        /// Bytes of data.
        data: usize,
        /// Where the hole begins.
        hole: u64,
    },
    /// A hole, up to this offset.
    Skip(u64),
}

/// Whether the chunk `filled`, read from file `id` at `offset`, begins in or runs into a hole.
/// Asked only when the chunk starts or ends with a zero byte (rare in logs), so a file that is
/// not sparse costs no system call. `after_hole`: the file's last read skipped a hole; file
/// systems keep holes in whole blocks, so the zeros that begin the data after a hole are the
/// rest of it (a writer that went on at its own offset after a `copytruncate`).
fn sparse(
    backend: &dyn ReadBackend,
    id: FileId,
    offset: u64,
    filled: &[u8],
    after_hole: bool,
) -> Sparse {
    if filled.first() == Some(&0) {
        match backend.next_region(id, offset, Region::Data) {
            Ok(Some(data)) if data > offset => return Sparse::Skip(data),
            // No data after `offset`: the zeros read are hole. Only they are skipped, not up to
            // the file's size, which may have grown since with data.
            Ok(None) => return Sparse::Skip(offset + filled.len() as u64),
            _ => {}
        }
        if after_hole {
            let zeros = filled.iter().position(|&b| b != 0).unwrap_or(filled.len());
            return Sparse::Skip(offset + zeros as u64);
        }
    }
    if filled.len() > 1
        && filled.last() == Some(&0)
        && let Ok(Some(hole)) = backend.next_region(id, offset, Region::Hole)
    {
        let len = usize::try_from(hole.saturating_sub(offset)).unwrap_or(usize::MAX);
        if len > 0 && len < filled.len() {
            let data = filled[..len]
                .iter()
                .rposition(|&b| b != 0)
                .map_or(0, |at| at + 1);
            return Sparse::Cut { data, hole };
        }
    }
    Sparse::Whole
}

impl Reader {
    /// The chunk `buf` read from file `id` at `offset`, if it is data only; otherwise its data
    /// (if any) is handed on, the hole skipped, and `None` returned.
    pub(super) fn without_holes(
        &mut self,
        id: FileId,
        offset: u64,
        after_hole: bool,
        buf: AlignedBuf,
    ) -> Option<AlignedBuf> {
        match sparse(self.backend.as_ref(), id, offset, buf.filled(), after_hole) {
            Sparse::Whole => Some(buf),
            Sparse::Cut { data, hole } => {
                if data > 0 {
                    let mut buf = buf;
                    buf.set_len(data);
                    self.deliver(id, buf, data, false);
                } else {
                    self.pool.put(buf);
                }
                self.skip_hole(id, hole);
                None
            }
            Sparse::Skip(to) => {
                self.pool.put(buf);
                self.skip_hole(id, to);
                None
            }
        }
    }

    /// File `id` has a hole at its offset (a sparse file: zeros never written) up to `to`:
    /// the hole is skipped, counted and logged once, and the worker told, so the file's
    /// records go on after it. The file is read again at once.
    fn skip_hole(&mut self, id: FileId, to: u64) {
        let Some(file) = self.files.get_mut(&id) else {
            return;
        };
        let from = file.offset;
        let to = to.max(from);
        file.sparse_skipped.inc_by(to - from);
        if !file.sparse_logged {
            file.sparse_logged = true;
            tracing::info!(file = %file.ctx.path.display(), from, to, "skipping a hole of a sparse file (zeros that were never written); further holes in it are skipped too");
        }
        file.offset = to;
        file.after_hole = true;
        let worker = file.worker;
        self.out[worker].push(WorkItem::Hole { id, to });
        self.enqueue(id);
    }
}
