//! The io_uring backend (tokio-uring): a batch of reads is submitted with one system call.
//!
//! tokio-uring runs a single-threaded runtime with `!Send` futures, so each reader thread owns
//! one [`UringBackend`]. A batch spawns one read task per chunk; the tasks queue their
//! submission entries and the runtime submits them all when it next parks, then the batch waits
//! for every completion.
//!
//! Owns the ring and the descriptors registered with it; it may not choose what to read.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::rc::Rc;

use crate::file::FileId;
use crate::read::backend::{ReadBackend, ReadError, ReadOp, Region, seek_region};

/// Reads with io_uring.
pub struct UringBackend {
    runtime: tokio_uring::Runtime,
    files: HashMap<FileId, Rc<tokio_uring::fs::File>>,
}

impl std::fmt::Debug for UringBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UringBackend")
            .field("files", &self.files.len())
            .finish_non_exhaustive()
    }
}

impl UringBackend {
    /// Sets up a ring with `entries` submission entries; fails when the kernel refuses io_uring.
    pub fn new(entries: u32) -> Result<Self, ReadError> {
        let runtime = tokio_uring::Runtime::new(tokio_uring::builder().entries(entries.max(8)))
            .map_err(|source| ReadError::Setup {
                backend: "io_uring",
                source,
            })?;
        Ok(Self {
            runtime,
            files: HashMap::new(),
        })
    }
}

impl UringBackend {
    fn file(&self, id: FileId) -> io::Result<&Rc<tokio_uring::fs::File>> {
        self.files.get(&id).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("file {id} is not registered"),
            )
        })
    }
}

impl ReadBackend for UringBackend {
    fn name(&self) -> &'static str {
        "io_uring"
    }

    fn register(&mut self, id: FileId, file: File) -> Result<(), ReadError> {
        self.files
            .insert(id, Rc::new(tokio_uring::fs::File::from_std(file)));
        Ok(())
    }

    fn size(&self, id: FileId) -> io::Result<u64> {
        let file = self.file(id)?;
        // SAFETY: the descriptor belongs to `file`, which is borrowed from `self.files` for the
        // whole call, so it stays open while it is borrowed here.
        let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(file.as_raw_fd()) };
        Ok(rustix::fs::fstat(fd)?.st_size as u64)
    }

    fn read_head(&self, id: FileId, buf: &mut [u8]) -> io::Result<usize> {
        let file = self.file(id)?;
        // SAFETY: as in `size`: `file` is borrowed from `self.files` for the whole call.
        let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(file.as_raw_fd()) };
        loop {
            match rustix::io::pread(fd, &mut *buf, 0) {
                Err(rustix::io::Errno::INTR) => continue,
                other => return Ok(other?),
            }
        }
    }

    fn next_region(&self, id: FileId, offset: u64, region: Region) -> io::Result<Option<u64>> {
        let file = self.file(id)?;
        // SAFETY: as in `size`: `file` is borrowed from `self.files` for the whole call.
        let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(file.as_raw_fd()) };
        seek_region(fd, offset, region)
    }

    fn unregister(&mut self, id: FileId) {
        // Dropping the last handle closes the descriptor synchronously; no read is in flight
        // because batches complete before `read_batch` returns.
        self.files.remove(&id);
    }

    fn read_batch(&mut self, ops: Vec<ReadOp>) -> Vec<ReadOp> {
        let files = &self.files;
        self.runtime.block_on(async move {
            let mut pending = Vec::with_capacity(ops.len());
            for op in ops {
                match files.get(&op.id) {
                    Some(file) => {
                        let file = Rc::clone(file);
                        pending.push(Pending::Spawned(tokio_uring::spawn(async move {
                            let ReadOp {
                                id, offset, buf, ..
                            } = op;
                            let (result, buf) = file.read_at(buf, offset).await;
                            ReadOp {
                                id,
                                offset,
                                buf,
                                result,
                            }
                        })));
                    }
                    None => {
                        let id = op.id;
                        pending.push(Pending::Done(ReadOp {
                            result: Err(io::Error::new(
                                io::ErrorKind::NotFound,
                                format!("file {id} is not registered"),
                            )),
                            ..op
                        }));
                    }
                }
            }
            let mut done = Vec::with_capacity(pending.len());
            for p in pending {
                match p {
                    Pending::Done(op) => done.push(op),
                    Pending::Spawned(handle) => match handle.await {
                        Ok(op) => done.push(op),
                        // Only a panic inside tokio-uring gets here; the buffer went with the
                        // task. Its file is read again on the next round.
                        Err(e) => tracing::error!(error = %e, "an io_uring read task failed"),
                    },
                }
            }
            done
        })
    }
}

enum Pending {
    Spawned(tokio::task::JoinHandle<ReadOp>),
    Done(ReadOp),
}
