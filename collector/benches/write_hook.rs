//! What the eBPF programs add to a `write(2)` (issue #5's benchmark; needs root and a build
//! with the eBPF object, otherwise only the baseline runs).
//!
//! Every group writes 100 bytes per call with `write(2)`, rewinding the file every 4096
//! writes so that it stays small (the rewind is inside the timing, ~0.01 ns per write).
//! In order, because a process joins the hook's followed processes for good once it opens a
//! watched file for writing:
//! 1. `baseline`: no program attached;
//! 2. `outside`: programs attached, a process that holds no watched file writes elsewhere —
//!    the fast path (syscall-number check, one map lookup);
//! 3. `watched`: the same process has opened a file in a watched directory and writes to it
//!    — the fd-table walk, the file lookup and the byte count (the dirty flag stays set, as
//!    for a hot file whose reader has not caught up);
//! 4. `followed_elsewhere`: that process writes to the unwatched file again — the walk
//!    without a match, what a followed writer pays for its other descriptors.
#![allow(clippy::unwrap_used, reason = "benchmark set-up")]

use std::hint::black_box;
use std::os::fd::AsFd;
use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};

const LINE: &[u8; 100] = &[b'x'; 100];

/// Times `iters` writes of [`LINE`] to `file`.
fn writes(file: &std::fs::File, iters: u64) -> Duration {
    let fd = file.as_fd();
    let start = Instant::now();
    for i in 0..iters {
        if i % 4096 == 0 {
            rustix::fs::seek(fd, rustix::fs::SeekFrom::Start(0)).unwrap();
        }
        black_box(rustix::io::write(fd, LINE).unwrap());
    }
    start.elapsed()
}

fn open(path: &Path) -> std::fs::File {
    std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(path)
        .unwrap()
}

fn write_hook(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let watched_dir = dir.path().join("watched");
    std::fs::create_dir(&watched_dir).unwrap();
    let elsewhere = open(&dir.path().join("elsewhere.log"));
    let mut group = c.benchmark_group("write_100_bytes");
    group.bench_function("baseline", |b| b.iter_custom(|n| writes(&elsewhere, n)));

    let mut kernel = match ringtail::ebpf::Kernel::load() {
        Ok(kernel) => kernel,
        Err(e) => {
            eprintln!("eBPF programs not loaded ({e}): only the baseline was measured");
            return;
        }
    };
    let mut dirs = kernel.take_watched_dirs().unwrap();
    dirs.insert(std::fs::File::open(&watched_dir).unwrap().as_fd())
        .unwrap();
    group.bench_function("outside", |b| b.iter_custom(|n| writes(&elsewhere, n)));
    let watched = open(&watched_dir.join("a.log"));
    group.bench_function("watched", |b| b.iter_custom(|n| writes(&watched, n)));
    group.bench_function("followed_elsewhere", |b| {
        b.iter_custom(|n| writes(&elsewhere, n))
    });
    group.finish();
    let (hooked, _) = kernel.write_counts();
    assert!(hooked > 0, "the hook saw the watched writes");
}

criterion_group!(benches, write_hook);
criterion_main!(benches);
