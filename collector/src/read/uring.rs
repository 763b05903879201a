//! The io_uring backend (tokio-uring): a batch of reads is submitted with one system call.
//!
//! tokio-uring runs a single-threaded runtime with `!Send` futures, so each reader thread owns
//! one [`UringBackend`]. A batch spawns one read task per chunk; the tasks queue their
//! submission entries and the runtime submits them all when it next parks, then the batch waits
//! for every completion.
//!
//! Files on tmpfs are read inline with `pread`: tmpfs cannot read without blocking as io_uring
//! asks first, so the ring would hand each of their reads to a kernel worker thread (a
//! thread hop per read; at everyday rates, half the reader's cost).
//!
//! Owns the ring and the descriptors registered with it; it may not choose what to read.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::rc::Rc;

use crate::file::FileId;
use crate::read::backend::{ReadBackend, ReadError, ReadOp, Region, pread_retrying, seek_region};

/// Reads with io_uring.
pub struct UringBackend {
    runtime: tokio_uring::Runtime,
    files: HashMap<FileId, Rc<tokio_uring::fs::File>>,
    /// Files read inline (on tmpfs).
    inline: HashSet<FileId>,
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
            inline: HashSet::new(),
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
        if rustix::fs::fstatfs(&file).is_ok_and(|fs| fs.f_type == libc::TMPFS_MAGIC) {
            self.inline.insert(id);
        }
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
        pread_retrying(fd, buf, 0)
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
        self.inline.remove(&id);
    }

    fn read_batch(&mut self, ops: Vec<ReadOp>) -> Vec<ReadOp> {
        let (files, inline) = (&self.files, &self.inline);
        self.runtime.block_on(async move {
            let mut pending = Vec::with_capacity(ops.len());
            for mut op in ops {
                match files.get(&op.id) {
                    Some(file) if inline.contains(&op.id) => {
                        // SAFETY: as in `size`: `file` is borrowed from `self.files` for the
                        // whole read.
                        let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(file.as_raw_fd()) };
                        op.result = pread_retrying(fd, op.buf.as_mut_slice(), op.offset);
                        op.buf.set_len(*op.result.as_ref().unwrap_or(&0));
                        pending.push(Pending::Done(op));
                    }
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
