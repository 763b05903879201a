//! The `pread(2)` backend: one system call per read. The fallback when io_uring is refused.
//!
//! Owns the descriptors registered with it; it may not choose what to read.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::fd::AsFd;

use crate::file::FileId;
use crate::read::backend::{ReadBackend, ReadError, ReadOp, Region, pread_retrying, seek_region};

/// Reads with `pread(2)`.
#[derive(Debug, Default)]
pub struct PreadBackend {
    files: HashMap<FileId, File>,
}

impl ReadBackend for PreadBackend {
    fn name(&self) -> &'static str {
        "pread"
    }

    fn register(&mut self, id: FileId, file: File) -> Result<(), ReadError> {
        self.files.insert(id, file);
        Ok(())
    }

    fn size(&self, id: FileId) -> io::Result<u64> {
        match self.files.get(&id) {
            Some(file) => Ok(file.metadata()?.len()),
            None => Err(not_registered(id)),
        }
    }

    fn read_head(&self, id: FileId, buf: &mut [u8]) -> io::Result<usize> {
        match self.files.get(&id) {
            Some(file) => pread_retrying(file.as_fd(), buf, 0),
            None => Err(not_registered(id)),
        }
    }

    fn next_region(&self, id: FileId, offset: u64, region: Region) -> io::Result<Option<u64>> {
        match self.files.get(&id) {
            Some(file) => seek_region(file.as_fd(), offset, region),
            None => Err(not_registered(id)),
        }
    }

    fn unregister(&mut self, id: FileId) {
        self.files.remove(&id);
    }

    fn read_batch(&mut self, mut ops: Vec<ReadOp>) -> Vec<ReadOp> {
        for op in &mut ops {
            op.result = match self.files.get(&op.id) {
                Some(file) => pread_retrying(file.as_fd(), op.buf.as_mut_slice(), op.offset),
                None => Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("file {} is not registered", op.id),
                )),
            };
            op.buf.set_len(*op.result.as_ref().unwrap_or(&0));
        }
        ops
    }
}

fn not_registered(id: FileId) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("file {id} is not registered"),
    )
}
