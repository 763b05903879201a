//! The blackhole sink: counts batches and discards them, acknowledging at once. For
//! benchmarks, where the cost of the pipeline without a destination is what is measured.

use super::{Sink, SinkError};
use crate::batch::Batch;

/// Discards batches.
#[derive(Debug, Default)]
pub struct BlackholeSink;

impl Sink for BlackholeSink {
    fn write(&mut self, batch: &Batch) -> Result<(), SinkError> {
        batch.ack.ack();
        Ok(())
    }

    fn close(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
}
