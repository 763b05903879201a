//! What the kernel reports: the events decoded from the ring buffer, and the table of running
//! containers the cgroup events keep.
//!
//! Owns decoding events and the running-container table; it may not act on an event (discovery
//! does).

use std::collections::HashMap;
use std::sync::Mutex;

use ringtail_ebpf_common::{
    CGROUP_PATH_BYTES, CgroupEvent, DirKey, FILE_NAME_BYTES, FileDirtyEvent, FileOpenedEvent,
    KIND_CGROUP_MKDIR, KIND_CGROUP_RMDIR, KIND_FILE_DIRTY, KIND_FILE_OPENED,
};

use crate::ebpf::maps::user_dev;

/// Hierarchy id of cgroup2 in the tracepoints' `root` field.
const CGROUP2_HIERARCHY: u32 = 0;

/// A container started or stopped, as the kernel reported its cgroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContainerEvent {
    /// A container's cgroup was created.
    Started {
        /// Cgroup id (inode of the cgroup2 directory).
        cgroup_id: u64,
        /// The container id from the cgroup path.
        container_id: String,
        /// The cgroup path.
        path: String,
    },
    /// A container's cgroup was removed.
    Stopped {
        /// Cgroup id.
        cgroup_id: u64,
        /// The container id from the cgroup path.
        container_id: String,
    },
}

/// A file in a watched directory was opened for writing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileOpened {
    /// The writer's process id.
    pub pid: u32,
    /// The writer's descriptor.
    pub fd: u32,
    /// The directory, as the kernel names it.
    pub dir: DirKey,
    /// `st_dev` (glibc encoding) of the file.
    pub dev: u64,
    /// Inode of the file.
    pub ino: u64,
    /// Name in the directory.
    pub name: std::ffi::OsString,
    /// When it was opened (`CLOCK_MONOTONIC`, ns; see [`monotonic_ns`]).
    pub time_ns: u64,
}

/// Now on the clock of [`FileOpened::time_ns`].
pub fn monotonic_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

/// What the kernel reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KernelEvent {
    /// A container started or stopped.
    Container(ContainerEvent),
    /// A file was opened for writing in a watched directory.
    FileOpened(FileOpened),
    /// A watched file that was idle has new data.
    FileDirty {
        /// `st_dev` (glibc encoding).
        dev: u64,
        /// Inode.
        ino: u64,
    },
    /// Events were lost (full ring buffer): what they would have said must be found again.
    Lost {
        /// How many.
        events: u64,
    },
}

/// The container id in a cgroup path, if its last component names one.
pub fn container_id(path: &str) -> Option<&str> {
    let last = path.rsplit('/').next()?;
    let last = last.strip_suffix(".scope").unwrap_or(last);
    // containerd with systemd: `cri-containerd-<id>`; with cgroupfs under systemd slices:
    // `...:cri-containerd:<id>`; docker `docker-<id>`; cri-o `crio-<id>` (and `crio-conmon-`,
    // which is not the container).
    let id = last
        .rsplit([':', '-'])
        .next()
        .filter(|_| !last.starts_with("crio-conmon-"))?;
    (id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit())).then_some(id)
}

/// Containers running now, by cgroup id.
#[derive(Debug, Default)]
pub struct Containers {
    running: Mutex<HashMap<u64, String>>,
}

impl Containers {
    /// The container id of a running cgroup.
    pub fn get(&self, cgroup_id: u64) -> Option<String> {
        self.lock().get(&cgroup_id).cloned()
    }

    /// Number of running containers seen.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no container is known to run.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, String>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The event in a ring-buffer record (`None` for cgroups that are not containers').
pub(crate) fn decode(bytes: &[u8]) -> Option<KernelEvent> {
    let kind = u32::from_ne_bytes(bytes.get(..4)?.try_into().ok()?);
    if kind == KIND_FILE_OPENED {
        return decode_file(bytes).map(KernelEvent::FileOpened);
    }
    if kind == KIND_FILE_DIRTY {
        if bytes.len() < std::mem::size_of::<FileDirtyEvent>() {
            return None;
        }
        // SAFETY: as in decode_file, for a FileDirtyEvent.
        let event: FileDirtyEvent = unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast()) };
        return Some(KernelEvent::FileDirty {
            dev: user_dev(event.dev),
            ino: event.ino,
        });
    }
    decode_cgroup(bytes).map(KernelEvent::Container)
}

pub(crate) fn decode_file(bytes: &[u8]) -> Option<FileOpened> {
    use std::os::unix::ffi::OsStrExt;
    if bytes.len() < std::mem::size_of::<FileOpenedEvent>() {
        return None;
    }
    // SAFETY: the record holds a FileOpenedEvent written by the kernel program (plain
    // integers and bytes: every bit pattern is valid); read_unaligned copes with alignment.
    let event: FileOpenedEvent = unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast()) };
    let len = (event.name_len as usize).min(FILE_NAME_BYTES);
    Some(FileOpened {
        pid: event.pid,
        fd: event.fd,
        dir: DirKey {
            dev: event.dev,
            _pad: 0,
            ino: event.dir_ino,
        },
        dev: user_dev(event.dev),
        ino: event.ino,
        name: std::ffi::OsStr::from_bytes(&event.name[..len]).to_os_string(),
        time_ns: event.time_ns,
    })
}

/// A container event from a cgroup record, if the cgroup is a container's.
fn decode_cgroup(bytes: &[u8]) -> Option<ContainerEvent> {
    if bytes.len() < std::mem::size_of::<CgroupEvent>() {
        return None;
    }
    // SAFETY: the record holds at least size_of::<CgroupEvent>() bytes written by the kernel
    // program as a CgroupEvent (plain integers and bytes: every bit pattern is valid);
    // read_unaligned copes with the ring buffer's 8-byte alignment.
    let event: CgroupEvent = unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast()) };
    // Only the cgroup2 hierarchy (id 0, `cgrp_dfl_root`): on a hybrid system a container also
    // has a directory in each v1 hierarchy, which would report it once per controller.
    if event.root != CGROUP2_HIERARCHY {
        return None;
    }
    let len = (event.path_len as usize).min(CGROUP_PATH_BYTES);
    let path = String::from_utf8_lossy(&event.path[..len]).into_owned();
    let container_id = container_id(&path)?.to_string();
    match event.kind {
        KIND_CGROUP_MKDIR => Some(ContainerEvent::Started {
            cgroup_id: event.id,
            container_id,
            path,
        }),
        KIND_CGROUP_RMDIR => Some(ContainerEvent::Stopped {
            cgroup_id: event.id,
            container_id,
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn container_ids_come_from_the_runtimes_cgroup_names() {
        for path in [
            format!(
                "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1.slice/cri-containerd-{ID}.scope"
            ),
            format!(
                "/system.slice/containerd.service/kubepods-burstable-pod2.slice:cri-containerd:{ID}"
            ),
            format!("/system.slice/docker-{ID}.scope"),
            format!("/kubepods.slice/crio-{ID}.scope"),
            format!("/kubepods/besteffort/pod3/{ID}"),
        ] {
            assert_eq!(container_id(&path), Some(ID), "{path}");
        }
        for path in [
            "/kubepods.slice/kubepods-besteffort.slice",
            "/user.slice/user-0.slice/session-1.scope",
            &format!("/kubepods.slice/crio-conmon-{ID}.scope"),
            "/ringtail-test-123",
        ] {
            assert_eq!(container_id(path), None, "{path}");
        }
    }
}
