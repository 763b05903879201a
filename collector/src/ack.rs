//! The acknowledged offset of every file: how far each file has been delivered durably.
//!
//! Batches of one route complete in order: every sink handles its queue in order, and a batch
//! completes at the last of its sinks' acknowledgements, which each come after that sink's
//! acknowledgement of the batch before. So the progress of a completed batch is the file's
//! newest acknowledged offset and simply replaces the old one — which is also right when a file
//! was truncated and its offsets started again from 0. This table is what checkpoints are
//! made from.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::batch::FileProgress;
use crate::metrics::Metrics;
use crate::source::SourceId;
use std::sync::Arc;

/// Acknowledged offsets, per file.
#[derive(Debug)]
pub struct AckTracker {
    offsets: Mutex<HashMap<SourceId, u64>>,
    metrics: Arc<Metrics>,
}

impl AckTracker {
    /// An empty tracker.
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self {
            offsets: Mutex::new(HashMap::new()),
            metrics,
        }
    }

    /// A batch was acknowledged by every sink it went to.
    pub fn complete(&self, progress: &[FileProgress]) {
        self.metrics.acked_batches.inc();
        // A poisoned lock means another thread panicked while holding it; the map is still a
        // valid map of offsets, so keep going.
        let mut offsets = self.offsets.lock().unwrap_or_else(|e| e.into_inner());
        for p in progress {
            offsets.insert(p.id, p.offset);
        }
    }

    /// The acknowledged offset of a file, if any batch of it was acknowledged.
    pub fn offset(&self, id: SourceId) -> Option<u64> {
        let offsets = self.offsets.lock().unwrap_or_else(|e| e.into_inner());
        offsets.get(&id).copied()
    }

    /// Forgets a file that is closed and fully acknowledged.
    pub fn forget(&self, id: SourceId) {
        let mut offsets = self.offsets.lock().unwrap_or_else(|e| e.into_inner());
        offsets.remove(&id);
    }
}
