//! Loading the programs into the kernel (tracefs, BTF offsets, tracepoints, the iterator)
//! and the thread that drains their ring buffer.
//!
//! Owns the programs' lifetime; it may not decide what their events mean.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use aya::Ebpf;
use aya::maps::{MapData, PerCpuArray, RingBuf};
use aya::programs::TracePoint;
use ringtail_ebpf_common::{
    BYTES_MAP, COUNTER_CGROUP_MKDIR, COUNTER_CGROUP_RMDIR, COUNTER_FILE_DIRTY, COUNTER_FILE_OPENED,
    COUNTER_IOV_PARTIAL, COUNTER_PROCS_FULL, COUNTER_RESERVE_FAILED, COUNTER_WATCHED_WRITES,
    COUNTERS_MAP, EVENTS_MAP, FILES_MAP, FileOpenedEvent, GLOBAL_CGROUP_ID_OFFSET,
    GLOBAL_CGROUP_LEVEL_OFFSET, GLOBAL_CGROUP_PATH_OFFSET, GLOBAL_CGROUP_ROOT_OFFSET, ITER_PROGRAM,
    PROCS_MAP, PROCS_WORDS, WATCHED_DIRS_MAP, offsets,
};

use crate::ebpf::btf;
use crate::ebpf::events::{
    ContainerEvent, Containers, FileOpened, KernelEvent, decode, decode_file,
};
use crate::ebpf::maps::{DirtyFlags, WatchedDirs};
use crate::metrics::{KindLabel, Metrics};

/// Where tracefs is (or gets) mounted.
const TRACEFS: &str = "/sys/kernel/tracing";

/// Why the eBPF programs could not be used.
#[derive(Debug, thiserror::Error)]
pub enum EbpfError {
    /// This binary was built without its eBPF object (`RINGTAIL_NO_EBPF` at build time).
    #[error("this ringtail was built without its eBPF programs (RINGTAIL_NO_EBPF)")]
    NotBuilt,
    /// tracefs is not mounted and could not be mounted.
    #[error("tracefs is not available at {path} and cannot be mounted: {source}")]
    Tracefs {
        /// Where it was expected.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
    /// The kernel's BTF could not be read or lacks a struct member the programs need.
    #[error("{0}")]
    Btf(#[from] btf::BtfError),
    /// A tracepoint's format file is missing or lacks a field.
    #[error("cannot read the layout of tracepoint {tracepoint}: {reason}")]
    Format {
        /// `category/name`.
        tracepoint: String,
        /// What is wrong.
        reason: String,
    },
    /// The object could not be loaded (verifier, permissions, BTF).
    #[error("cannot load the eBPF object: {source}")]
    Load {
        /// What aya said.
        #[source]
        source: Box<aya::EbpfError>,
    },
    /// A program could not be loaded or attached.
    #[error("cannot {action} eBPF program {program}: {source}")]
    Program {
        /// `load` or `attach`.
        action: &'static str,
        /// The program.
        program: &'static str,
        /// What aya said.
        #[source]
        source: Box<aya::programs::ProgramError>,
    },
    /// A map is missing or has the wrong type.
    #[error("eBPF map {map}: {reason}")]
    Map {
        /// The map.
        map: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// Running the open-files iterator failed.
    #[error("cannot run the open-files iterator: {source}")]
    Iterator {
        /// What the OS said.
        #[source]
        source: io::Error,
    },
    /// Waiting for events failed.
    #[error("cannot wait for eBPF events: {source}")]
    Poll {
        /// What the OS said.
        #[source]
        source: io::Error,
    },
}

/// The loaded programs and the ring buffer they write to.
pub struct Kernel {
    // Owns the programs and links: dropping it detaches everything.
    _ebpf: Ebpf,
    events: RingBuf<MapData>,
    counters: PerCpuArray<MapData, u64>,
    watched: Option<WatchedDirs>,
    dirty: Option<Arc<DirtyFlags>>,
}

impl std::fmt::Debug for Kernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kernel").finish_non_exhaustive()
    }
}

#[cfg(ringtail_ebpf)]
fn object() -> Result<&'static [u8], EbpfError> {
    Ok(aya::include_bytes_aligned!(concat!(
        env!("OUT_DIR"),
        "/ringtail-ebpf"
    )))
}

#[cfg(not(ringtail_ebpf))]
fn object() -> Result<&'static [u8], EbpfError> {
    Err(EbpfError::NotBuilt)
}

/// Mounts tracefs at [`TRACEFS`] unless it is there.
fn ensure_tracefs() -> Result<(), EbpfError> {
    if Path::new(TRACEFS).join("events").is_dir() {
        return Ok(());
    }
    rustix::mount::mount(
        "nodev",
        TRACEFS,
        "tracefs",
        rustix::mount::MountFlags::empty(),
        None,
    )
    .map_err(|e| EbpfError::Tracefs {
        path: PathBuf::from(TRACEFS),
        source: e.into(),
    })
}

/// Offsets of `fields` in a tracepoint record, from its `format` file.
fn field_offsets(category: &str, name: &str, fields: &[&str]) -> Result<Vec<u32>, EbpfError> {
    let tracepoint = format!("{category}/{name}");
    let path = Path::new(TRACEFS)
        .join("events")
        .join(category)
        .join(name)
        .join("format");
    let text = std::fs::read_to_string(&path).map_err(|e| EbpfError::Format {
        tracepoint: tracepoint.clone(),
        reason: format!("{}: {e}", path.display()),
    })?;
    parse_offsets(&text, fields).map_err(|reason| EbpfError::Format { tracepoint, reason })
}

/// The `offset:` of each field (by name, the last word before `;`) in a format file.
fn parse_offsets(text: &str, fields: &[&str]) -> Result<Vec<u32>, String> {
    fields
        .iter()
        .map(|field| {
            text.lines()
                .find_map(|line| {
                    let decl = line.trim().strip_prefix("field:")?;
                    let (decl, rest) = decl.split_once(';')?;
                    let name = decl.rsplit(' ').next()?;
                    if name != *field {
                        return None;
                    }
                    rest.split(';')
                        .find_map(|part| part.trim().strip_prefix("offset:"))
                        .and_then(|n| n.parse().ok())
                })
                .ok_or_else(|| format!("no field `{field}`"))
        })
        .collect()
}

impl Kernel {
    /// Loads and attaches the programs.
    pub fn load() -> Result<Kernel, EbpfError> {
        // aya's loader parses the kernel's whole BTF when it is created (about 17 MiB at its
        // peak here), needed only for relocations, which these programs have none of
        // (Rust eBPF emits no CO-RE relocations). So it is created first, while the process
        // is smallest, and that parse is freed at once; the loader is given a stand-in
        // later, holding only the iterator's function (a relocation, should one appear,
        // would find no types there and fail to load rather than load wrong). Our own reader
        // runs after, one parse at a time: the start-up peak fell from 46 to 33 MiB.
        let object = object()?;
        let mut loader = aya::EbpfLoader::new();
        loader.btf(None);
        ensure_tracefs()?;
        const FIELDS: [&str; 4] = ["level", "id", "path", "root"];
        let offsets = field_offsets("cgroup", "cgroup_mkdir", &FIELDS)?;
        // rmdir must have the same layout: one set of globals serves both programs.
        let rmdir = field_offsets("cgroup", "cgroup_rmdir", &FIELDS)?;
        if rmdir != offsets {
            return Err(EbpfError::Format {
                tracepoint: "cgroup/cgroup_rmdir".to_string(),
                reason: format!("layout {rmdir:?} differs from cgroup_mkdir's {offsets:?}"),
            });
        }
        let ret = field_offsets("syscalls", "sys_exit_openat", &["ret"])?[0];
        let btf = btf::Btf::kernel()?;
        let kernel_offsets = [
            (offsets::TASK_FILES, btf.offset("task_struct", &["files"])?),
            (offsets::FILES_FDT, btf.offset("files_struct", &["fdt"])?),
            (offsets::FDT_FD, btf.offset("fdtable", &["fd"])?),
            (offsets::FDT_MAX_FDS, btf.offset("fdtable", &["max_fds"])?),
            (offsets::FILE_MODE, btf.offset("file", &["f_mode"])?),
            (offsets::FILE_INODE, btf.offset("file", &["f_inode"])?),
            (offsets::TASK_TGID, btf.offset("task_struct", &["tgid"])?),
            (
                offsets::FILE_DENTRY,
                btf.offset("file", &["f_path", "dentry"])?,
            ),
            (offsets::DENTRY_PARENT, btf.offset("dentry", &["d_parent"])?),
            (offsets::DENTRY_INODE, btf.offset("dentry", &["d_inode"])?),
            (
                offsets::DENTRY_NAME,
                btf.offset("dentry", &["d_name", "name"])?,
            ),
            (offsets::INODE_INO, btf.offset("inode", &["i_ino"])?),
            (offsets::INODE_SB, btf.offset("inode", &["i_sb"])?),
            (offsets::SB_DEV, btf.offset("super_block", &["s_dev"])?),
            (offsets::SYS_EXIT_RET, ret),
            // x86_64: the first and third syscall arguments.
            (offsets::REGS_ARG0, btf.offset("pt_regs", &["di"])?),
            (offsets::REGS_ARG1, btf.offset("pt_regs", &["si"])?),
            (offsets::REGS_ARG2, btf.offset("pt_regs", &["dx"])?),
        ];
        // The iterator reads its context at fixed offsets (the verifier wants constants).
        for (member, expected) in ITER_CONTEXT {
            let found = btf.offset("bpf_iter__task_file", &[member])?;
            if found != expected {
                return Err(EbpfError::Format {
                    tracepoint: "iter/task_file".to_string(),
                    reason: format!(
                        "bpf_iter__task_file.{member} is at {found}, the program reads it at {expected}"
                    ),
                });
            }
        }
        let iter_func = format!("bpf_iter_{ITER_TYPE}");
        let iter_func_id = btf.func_id(&iter_func)?;
        drop(btf);
        let stand_in = aya::Btf::parse(
            &btf::stand_in(&iter_func, iter_func_id),
            aya::Endianness::Little,
        )
        .map_err(|e| EbpfError::Map {
            map: "BTF",
            reason: format!("cannot parse the stand-in BTF: {e}"),
        })?;
        loader.btf(Some(&stand_in));
        // One bit per possible process id.
        loader.map_max_entries(PROCS_MAP, pid_max().div_ceil(64));
        loader
            .override_global(GLOBAL_CGROUP_LEVEL_OFFSET, &offsets[0], true)
            .override_global(GLOBAL_CGROUP_ID_OFFSET, &offsets[1], true)
            .override_global(GLOBAL_CGROUP_PATH_OFFSET, &offsets[2], true)
            .override_global(GLOBAL_CGROUP_ROOT_OFFSET, &offsets[3], true);
        for (name, value) in &kernel_offsets {
            loader.override_global(name, value, true);
        }
        let mut ebpf = loader.load(object).map_err(|source| EbpfError::Load {
            source: Box::new(source),
        })?;
        let attach: [(&'static str, &'static str, bool); 6] = [
            ("cgroup", "cgroup_mkdir", true),
            ("cgroup", "cgroup_rmdir", true),
            ("syscalls", "sys_exit_openat", true),
            // Not every kernel and architecture has these; openat is what libc uses.
            ("syscalls", "sys_exit_openat2", false),
            ("syscalls", "sys_exit_open", false),
            ("syscalls", "sys_exit_creat", false),
        ];
        for (category, program, required) in attach {
            if !required
                && !Path::new(TRACEFS)
                    .join("events")
                    .join(category)
                    .join(program)
                    .exists()
            {
                tracing::debug!(tracepoint = program, "not in this kernel; skipped");
                continue;
            }
            let program_error = |action, source| EbpfError::Program {
                action,
                program,
                source: Box::new(source),
            };
            let tracepoint: &mut TracePoint = program_mut(&mut ebpf, program)?
                .try_into()
                .map_err(|e| program_error("load", e))?;
            tracepoint.load().map_err(|e| program_error("load", e))?;
            tracepoint
                .attach(category, program)
                .map_err(|e| program_error("attach", e))?;
        }
        for program in ["sys_enter", "sched_process_fork", "sched_process_exit"] {
            let program_error = |action, source| EbpfError::Program {
                action,
                program,
                source: Box::new(source),
            };
            let raw: &mut aya::programs::RawTracePoint = program_mut(&mut ebpf, program)?
                .try_into()
                .map_err(|e| program_error("load", e))?;
            raw.load().map_err(|e| program_error("load", e))?;
            raw.attach(program)
                .map_err(|e| program_error("attach", e))?;
        }
        {
            let program_error = |action, source| EbpfError::Program {
                action,
                program: ITER_PROGRAM,
                source: Box::new(source),
            };
            let iter: &mut aya::programs::Iter = program_mut(&mut ebpf, ITER_PROGRAM)?
                .try_into()
                .map_err(|e| program_error("load", e))?;
            iter.load(ITER_TYPE, &stand_in)
                .map_err(|e| program_error("load", e))?;
        }
        let events: RingBuf<MapData> = take_map(&mut ebpf, EVENTS_MAP)?;
        let counters: PerCpuArray<MapData, u64> = take_map(&mut ebpf, COUNTERS_MAP)?;
        let files = take_map(&mut ebpf, FILES_MAP)?;
        let bytes = take_map(&mut ebpf, BYTES_MAP)?;
        let watched = take_map(&mut ebpf, WATCHED_DIRS_MAP)?;
        Ok(Kernel {
            _ebpf: ebpf,
            events,
            counters,
            watched: Some(WatchedDirs { map: watched }),
            dirty: Some(Arc::new(DirtyFlags {
                files: Mutex::new(files),
                bytes: Mutex::new(bytes),
            })),
        })
    }

    /// Every file open for writing in a watched directory, in any process, found by running
    /// the `iter/task_file` iterator once — the writers that opened their files before the
    /// open hook watched their directories. Each writer is followed by the write hook from
    /// now on. Run at start-up, after discovery has registered its directories, and again
    /// after kernel events were lost.
    pub fn open_files(&mut self) -> Result<Vec<FileOpened>, EbpfError> {
        use std::io::Read;
        let program_error = |action, source| EbpfError::Program {
            action,
            program: ITER_PROGRAM,
            source: Box::new(source),
        };
        let iter: &mut aya::programs::Iter = program_mut(&mut self._ebpf, ITER_PROGRAM)?
            .try_into()
            .map_err(|e| program_error("load", e))?;
        let link = iter.attach().map_err(|e| program_error("attach", e))?;
        let link = iter
            .take_link(link)
            .map_err(|e| program_error("attach", e))?;
        let mut output = link.into_file().map_err(|e| EbpfError::Iterator {
            source: io::Error::other(e.to_string()),
        })?;
        let mut bytes = Vec::new();
        output
            .read_to_end(&mut bytes)
            .map_err(|source| EbpfError::Iterator { source })?;
        Ok(bytes
            .chunks_exact(std::mem::size_of::<FileOpenedEvent>())
            .filter_map(decode_file)
            .collect())
    }

    /// The write hook's dirty flags, for the readers.
    pub fn dirty_flags(&self) -> Option<Arc<DirtyFlags>> {
        self.dirty.clone()
    }

    /// Writes to watched files seen by the write hook, and idle→dirty wake-ups it sent.
    pub fn write_counts(&self) -> (u64, u64) {
        (
            self.counter(COUNTER_WATCHED_WRITES),
            self.counter(COUNTER_FILE_DIRTY),
        )
    }

    /// The watched-directories map, for discovery (once).
    pub fn take_watched_dirs(&mut self) -> Option<WatchedDirs> {
        self.watched.take()
    }

    /// Files opened for writing in watched directories, counted in the kernel.
    pub fn files_opened(&self) -> u64 {
        self.counter(COUNTER_FILE_OPENED)
    }

    /// The sum over CPUs of counter `index`.
    fn counter(&self, index: u32) -> u64 {
        self.counters
            .get(&index, 0)
            .map(|values| values.iter().sum())
            .unwrap_or(0)
    }

    /// Handles events until `stop` becomes readable (its write end is closed), updating
    /// `containers` and the metrics, and passing each container event to `on_event`. The
    /// kernel's counters (ring-buffer drops, write-hook misses) are published after each
    /// batch of events, and also every `counters_every` when given — without it an idle
    /// collector's thread sleeps until the next event (a miss is then counted with it).
    pub fn run(
        mut self,
        stop: OwnedFd,
        containers: Arc<Containers>,
        metrics: Arc<Metrics>,
        counters_every: Option<std::time::Duration>,
        mut on_event: impl FnMut(KernelEvent),
    ) -> Result<(), EbpfError> {
        let kind = |kind| metrics.ebpf_events.get_or_create_owned(&KindLabel { kind });
        let (started, stopped, cgroups) = (
            kind("container_started"),
            kind("container_stopped"),
            kind("cgroup"),
        );
        let opened = kind("file_opened");
        let dirtied = kind("file_dirty");
        let (mut drops_seen, mut procs_full_seen, mut iov_partial_seen) = (0, 0, 0);
        loop {
            while let Some(item) = self.events.next() {
                let event = match decode(&item) {
                    Some(KernelEvent::Container(event)) => event,
                    Some(other) => {
                        match other {
                            KernelEvent::FileDirty { .. } => {
                                dirtied.inc();
                            }
                            _ => {
                                opened.inc();
                            }
                        }
                        on_event(other);
                        continue;
                    }
                    None => continue,
                };
                cgroups.inc();
                match &event {
                    ContainerEvent::Started {
                        cgroup_id,
                        container_id,
                        ..
                    } => {
                        started.inc();
                        containers.lock().insert(*cgroup_id, container_id.clone());
                    }
                    ContainerEvent::Stopped { cgroup_id, .. } => {
                        stopped.inc();
                        containers.lock().remove(cgroup_id);
                    }
                }
                metrics.containers_running.set(containers.len() as i64);
                on_event(KernelEvent::Container(event));
            }
            let drops = self.counter(COUNTER_RESERVE_FAILED);
            if drops > drops_seen {
                tracing::warn!(
                    lost = drops - drops_seen,
                    "the eBPF ring buffer was full; kernel events were lost"
                );
                metrics.ebpf_ringbuf_drops.inc_by(drops - drops_seen);
                on_event(KernelEvent::Lost {
                    events: drops - drops_seen,
                });
                drops_seen = drops;
                // Lost opens: the writers are found again (the rescan that `Lost` asks for
                // finds the files).
                match self.open_files() {
                    Ok(files) => files
                        .into_iter()
                        .for_each(|f| on_event(KernelEvent::FileOpened(f))),
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot list open files after lost events")
                    }
                }
            }
            for (index, kind, seen) in [
                (COUNTER_PROCS_FULL, "procs_full", &mut procs_full_seen),
                (COUNTER_IOV_PARTIAL, "iov_partial", &mut iov_partial_seen),
            ] {
                let now = self.counter(index);
                if now > *seen {
                    if kind == "procs_full" {
                        tracing::warn!(
                            processes = now - *seen,
                            "processes with ids beyond pid_max as read at start-up are not followed by the write hook: their writes wake readers through inotify only"
                        );
                    }
                    metrics
                        .ebpf_hook_misses
                        .get_or_create(&KindLabel { kind })
                        .inc_by(now - *seen);
                    *seen = now;
                }
            }
            let mut fds = [
                rustix::event::PollFd::new(&self.events, rustix::event::PollFlags::IN),
                rustix::event::PollFd::new(&stop, rustix::event::PollFlags::IN),
            ];
            let timeout = counters_every.map(|every| rustix::time::Timespec {
                tv_sec: every.as_secs() as i64,
                tv_nsec: i64::from(every.subsec_nanos()),
            });
            match rustix::event::poll(&mut fds, timeout.as_ref()) {
                Ok(_) => {}
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(EbpfError::Poll { source: e.into() }),
            }
            if !fds[1].revents().is_empty() {
                return Ok(());
            }
        }
    }

    /// cgroups created and removed since the programs were attached (kernel counters).
    pub fn cgroup_counts(&self) -> (u64, u64) {
        (
            self.counter(COUNTER_CGROUP_MKDIR),
            self.counter(COUNTER_CGROUP_RMDIR),
        )
    }
}

impl AsFd for Kernel {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.events.as_fd()
    }
}

/// The kernel's largest process id plus one (`/proc/sys/kernel/pid_max`; the 64-bit default
/// when unreadable).
fn pid_max() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(PROCS_WORDS * 64)
}

/// The kernel iterator the open-files program runs as (`bpf_iter_task_file`).
const ITER_TYPE: &str = "task_file";

/// Offsets of the members of `struct bpf_iter__task_file` that the iterator program reads.
const ITER_CONTEXT: [(&str, u32); 4] = [("meta", 0), ("task", 8), ("fd", 16), ("file", 24)];

/// Program `name` of the object.
fn program_mut<'a>(
    ebpf: &'a mut Ebpf,
    name: &'static str,
) -> Result<&'a mut aya::programs::Program, EbpfError> {
    ebpf.program_mut(name).ok_or_else(|| EbpfError::Map {
        map: "programs",
        reason: format!("program {name} is missing from the object"),
    })
}

/// Takes map `name` out of the object as a typed map.
fn take_map<T>(ebpf: &mut Ebpf, name: &'static str) -> Result<T, EbpfError>
where
    T: TryFrom<aya::maps::Map>,
    T::Error: std::fmt::Display,
{
    let map = ebpf.take_map(name).ok_or_else(|| EbpfError::Map {
        map: name,
        reason: "missing from the object".to_string(),
    })?;
    T::try_from(map).map_err(|e| EbpfError::Map {
        map: name,
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_are_read_from_a_format_file() {
        let format = "name: cgroup_mkdir\nformat:\n\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\n\tfield:int root;\toffset:8;\tsize:4;\tsigned:1;\n\tfield:int level;\toffset:12;\tsize:4;\tsigned:1;\n\tfield:u64 id;\toffset:16;\tsize:8;\tsigned:0;\n\tfield:__data_loc char[] path;\toffset:24;\tsize:4;\tsigned:0;\n";
        assert_eq!(
            parse_offsets(format, &["level", "id", "path"]),
            Ok(vec![12, 16, 24])
        );
        assert_eq!(
            parse_offsets(format, &["missing"]),
            Err("no field `missing`".to_string())
        );
    }
}
