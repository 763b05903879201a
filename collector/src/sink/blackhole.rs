//! The blackhole sink: counts batches and discards them, acknowledging at once. For
//! benchmarks, where the cost of the pipeline without a destination is what is measured.
//!
//! Owns nothing but a count.

use crate::deliver::batch::Batch;
use crate::sink::driver::{Sink, SinkError};

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
