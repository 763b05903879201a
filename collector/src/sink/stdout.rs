//! The stdout sink: NDJSON to standard output. A batch is acknowledged once written: what
//! happens to it after the pipe is the reader's business. A closed stdout is fatal.
//!
//! Owns standard output; it may not touch batches beyond writing and acknowledging them.

use std::io::{self, Write};

use crate::deliver::batch::Batch;
use crate::sink::driver::{Sink, SinkError, is_fatal_stream_error, write_resumable};

/// Writes batches to standard output.
#[derive(Debug, Default)]
pub struct StdoutSink {
    name: String,
    written: usize,
}

impl StdoutSink {
    /// A stdout sink named `name`.
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_string(),
            written: 0,
        }
    }
}

impl Sink for StdoutSink {
    fn write(&mut self, batch: &Batch) -> Result<(), SinkError> {
        let mut out = io::stdout().lock();
        let result = write_resumable(&mut self.written, &batch.data, |chunk| out.write(chunk))
            .and_then(|()| out.flush());
        if let Err(source) = result {
            return Err(SinkError::Io {
                sink: self.name.clone(),
                action: "write to",
                target: "stdout".to_string(),
                fatal: is_fatal_stream_error(&source),
                source,
            });
        }
        self.written = 0;
        batch.ack.ack();
        Ok(())
    }

    fn close(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
}
