//! The maps user space shares with the programs: the directories whose files the kernel
//! reports ([`WatchedDirs`]) and the write hook's per-file flags and byte counts
//! ([`DirtyFlags`]), keyed the way the kernel names files.
//!
//! Owns the maps' keys and their updates; it may not decide which directories or files are
//! watched.

use std::io;
use std::os::fd::BorrowedFd;
use std::sync::Mutex;

use aya::maps::MapData;
use ringtail_ebpf_common::{DirKey, FileKey};

/// The kernel's `dev_t` (`major << 20 | minor`) of a file system, from `st_dev`.
pub fn kernel_dev(st_dev: u64) -> u32 {
    (rustix::fs::major(st_dev) << 20) | rustix::fs::minor(st_dev)
}

/// `st_dev` from the kernel's `dev_t`.
pub fn user_dev(dev: u32) -> u64 {
    rustix::fs::makedev(dev >> 20, dev & 0xf_ffff)
}

/// A shared struct as a map key or value (aya's `Pod` is a foreign trait, the structs are
/// foreign types).
#[repr(transparent)]
#[derive(Clone, Copy)]
pub(crate) struct Pod<T>(pub(crate) T);

// SAFETY: each of these is repr(C), Copy, made of integers with explicit padding (asserted in
// ringtail-ebpf-common): any bit pattern is valid and there are no uninitialised bytes.
unsafe impl aya::Pod for Pod<DirKey> {}
// SAFETY: as above.
unsafe impl aya::Pod for Pod<FileKey> {}

/// The write hook's per-file state, shared by the readers: a reader that has read a file to
/// its end clears the file's dirty flag, so the next write wakes it again.
pub struct DirtyFlags {
    pub(crate) files: Mutex<aya::maps::HashMap<MapData, Pod<FileKey>, u64>>,
    pub(crate) bytes: Mutex<aya::maps::HashMap<MapData, Pod<FileKey>, u64>>,
}

impl std::fmt::Debug for DirtyFlags {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirtyFlags").finish_non_exhaustive()
    }
}

impl DirtyFlags {
    fn key(dev: u64, ino: u64) -> Pod<FileKey> {
        Pod(FileKey {
            dev: kernel_dev(dev),
            _pad: 0,
            ino,
        })
    }

    /// Clears the dirty flag of file (`dev` as `st_dev`, `ino`); returns whether it was set —
    /// then the caller reads once more, since a write may have come between its last read
    /// and the clear.
    pub fn clear(&self, dev: u64, ino: u64) -> bool {
        let key = Self::key(dev, ino);
        let mut files = self.files.lock().unwrap_or_else(|e| e.into_inner());
        match files.get(&key, 0) {
            Ok(dirty) if dirty != 0 => {
                // BPF_EXIST (2): only update; the entry may have been dropped meanwhile.
                let _ = files.insert(key, 0, 2);
                true
            }
            _ => false,
        }
    }

    /// Bytes written to the file through `write`/`pwrite64`, as the kernel counted them.
    pub fn bytes_written(&self, dev: u64, ino: u64) -> Option<u64> {
        let bytes = self.bytes.lock().unwrap_or_else(|e| e.into_inner());
        bytes.get(&Self::key(dev, ino), 0).ok()
    }

    /// Forgets a file (closed after being read to its end).
    pub fn forget(&self, dev: u64, ino: u64) {
        let key = Self::key(dev, ino);
        let _ = self
            .files
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&key);
        let _ = self
            .bytes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&key);
    }
}

/// The directories whose files the kernel reports when opened for writing.
pub struct WatchedDirs {
    pub(crate) map: aya::maps::HashMap<MapData, Pod<DirKey>, u8>,
}

impl std::fmt::Debug for WatchedDirs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatchedDirs").finish_non_exhaustive()
    }
}

impl WatchedDirs {
    /// Starts reporting opens in the directory open as `dir`; returns its key.
    pub fn insert(&mut self, dir: BorrowedFd<'_>) -> io::Result<DirKey> {
        let stat = rustix::fs::fstat(dir)?;
        let key = DirKey {
            dev: kernel_dev(stat.st_dev),
            _pad: 0,
            ino: stat.st_ino,
        };
        self.map
            .insert(Pod(key), 1, 0)
            .map_err(|e| io::Error::other(e.to_string()))?;
        Ok(key)
    }

    /// Stops reporting opens in the directory `key`.
    pub fn remove(&mut self, key: &DirKey) {
        // Already gone is fine.
        let _ = self.map.remove(&Pod(*key));
    }
}
