//! The seam between a reader and the system calls: register a file, unregister it, read a
//! batch of chunks (one per file) at given offsets into page-aligned buffers.
//!
//! Owns the seam; it may not decide what to read.

use std::fs::File;
use std::io;
use std::os::fd::BorrowedFd;

use crate::file::FileId;
use crate::read::buffer::AlignedBuf;

/// Which read backend reader threads use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    /// io_uring via tokio-uring; many reads per submission.
    IoUring,
    /// One `pread(2)` per read; the fallback.
    Pread,
}

/// A kind of region of a sparse file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Region {
    /// Bytes that were written.
    Data,
    /// A hole: never written, reads as zeros (the end of the file counts as one).
    Hole,
}

/// [`ReadBackend::next_region`] on the descriptor `fd`.
pub fn seek_region(fd: BorrowedFd<'_>, offset: u64, region: Region) -> io::Result<Option<u64>> {
    let whence = match region {
        Region::Data => rustix::fs::SeekFrom::Data(offset),
        Region::Hole => rustix::fs::SeekFrom::Hole(offset),
    };
    match rustix::fs::seek(fd, whence) {
        Ok(at) => Ok(Some(at)),
        Err(rustix::io::Errno::NXIO) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// `pread(2)` on `fd`, retried when a signal interrupts it.
pub fn pread_retrying(fd: BorrowedFd<'_>, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    loop {
        match rustix::io::pread(fd, &mut *buf, offset) {
            Err(rustix::io::Errno::INTR) => continue,
            other => return Ok(other?),
        }
    }
}

/// One read: `buf.capacity()` bytes of file `id` at `offset`.
#[derive(Debug)]
pub struct ReadOp {
    /// The file.
    pub id: FileId,
    /// Where to read.
    pub offset: u64,
    /// Where the bytes go; after the read, `buf.len()` is the number of bytes read.
    pub buf: AlignedBuf,
    /// Bytes read (0 at end of file), or the error.
    pub result: io::Result<usize>,
}

impl ReadOp {
    /// A read not yet performed.
    pub fn new(id: FileId, offset: u64, buf: AlignedBuf) -> Self {
        Self {
            id,
            offset,
            buf,
            result: Ok(0),
        }
    }
}

/// Why a backend could not be set up or could not take a file.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The backend could not be created (e.g. io_uring refused by the kernel).
    #[error("cannot set up the {backend} read backend: {source}")]
    Setup {
        /// Which backend.
        backend: &'static str,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
    /// A file could not be registered with the backend.
    #[error("cannot register file {id} with the read backend: {source}")]
    Register {
        /// The file.
        id: FileId,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
}

/// A way of reading chunks of many files.
pub trait ReadBackend {
    /// `io_uring` or `pread`.
    fn name(&self) -> &'static str;

    /// Makes `file` readable as `id`. The backend owns the descriptor from now on (one
    /// descriptor per file: tens of thousands of files must fit in the open-file limit).
    fn register(&mut self, id: FileId, file: File) -> Result<(), ReadError>;

    /// The current size of file `id` (to notice truncation).
    fn size(&self, id: FileId) -> io::Result<u64>;

    /// Reads the first bytes of file `id` into `buf` (a synchronous `pread`; for fingerprints,
    /// a few times per file at most).
    fn read_head(&self, id: FileId, buf: &mut [u8]) -> io::Result<usize>;

    /// Where the next region of kind `region` of file `id` begins at or after `offset`
    /// (`lseek`'s `SEEK_DATA` / `SEEK_HOLE`); `None`: no data after `offset`. A sparse file's
    /// holes read as zeros that were never written.
    fn next_region(&self, id: FileId, offset: u64, region: Region) -> io::Result<Option<u64>>;

    /// Forgets `id` and closes the backend's handle.
    fn unregister(&mut self, id: FileId);

    /// Performs every read in `ops` and returns them, each with its result, in the same order.
    fn read_batch(&mut self, ops: Vec<ReadOp>) -> Vec<ReadOp>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::read::{pread, uring};
    use std::io::Write;

    /// Both backends must return exactly the same bytes for the same reads.
    #[test]
    fn backends_read_the_same_bytes() {
        let dir = tempfile::tempdir().unwrap();
        // Files on tmpfs too, where the io_uring backend reads inline (see `uring.rs`).
        let shm = tempfile::tempdir_in("/dev/shm").ok();
        let mut files = Vec::new();
        for i in 0..5u8 {
            let dir = match &shm {
                Some(shm) if i % 2 == 1 => shm.path(),
                _ => dir.path(),
            };
            let path = dir.join(format!("{i}.log"));
            let mut f = File::create(&path).unwrap();
            let content: Vec<u8> = (0..10_000u32)
                .map(|n| (n as u8).wrapping_mul(i + 1))
                .collect();
            f.write_all(&content).unwrap();
            files.push((FileId(u64::from(i)), File::open(&path).unwrap(), content));
        }
        let mut backends: Vec<Box<dyn ReadBackend>> = vec![
            Box::new(pread::PreadBackend::default()),
            Box::new(uring::UringBackend::new(64).expect("io_uring is enabled on these machines")),
        ];
        for backend in &mut backends {
            for (id, file, content) in &files {
                backend.register(*id, file.try_clone().unwrap()).unwrap();
                assert_eq!(backend.size(*id).unwrap(), 10_000);
                let mut head = [0u8; 16];
                assert_eq!(backend.read_head(*id, &mut head).unwrap(), 16);
                assert_eq!(&head[..], &content[..16]);
            }
            for offset in [0u64, 4096, 9000, 10_000, 20_000] {
                let ops = files
                    .iter()
                    .map(|(id, _, _)| ReadOp::new(*id, offset, AlignedBuf::new(4096).unwrap()))
                    .collect();
                let done = backend.read_batch(ops);
                assert_eq!(done.len(), files.len());
                for (op, (id, _, content)) in done.iter().zip(&files) {
                    assert_eq!(op.id, *id);
                    let n = *op.result.as_ref().unwrap();
                    let start = (offset as usize).min(content.len());
                    let expect = &content[start..(start + 4096).min(content.len())];
                    assert_eq!(n, expect.len(), "{} at {offset}", backend.name());
                    assert_eq!(op.buf.filled(), expect, "{} at {offset}", backend.name());
                }
            }
            backend.unregister(FileId(0));
            let done = backend.read_batch(vec![ReadOp::new(
                FileId(0),
                0,
                AlignedBuf::new(4096).unwrap(),
            )]);
            assert!(
                done[0].result.is_err(),
                "an unregistered file is an error, not a panic"
            );
        }
    }
}
