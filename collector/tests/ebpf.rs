//! The real eBPF programs loaded into this kernel (root only; CI runs as root): a cgroup
//! created and removed under the cgroup2 hierarchy comes back as container started/stopped
//! events with the right cgroup id and container id.

#![allow(clippy::unwrap_used, reason = "tests fail loudly on broken invariants")]

use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

mod common;

use ringtail::ebpf::{ContainerEvent, Containers, Kernel, KernelEvent};
use ringtail::metrics::Metrics;

/// Whether to skip a test that loads eBPF programs (it needs root; CI runs as root).
fn skip_without_root() -> bool {
    let skip = !common::is_root();
    if skip {
        println!("skipped: loading eBPF programs needs root (CI runs as root)");
    }
    skip
}

/// A thread running [`Kernel::run`], passing the events `pick` keeps to `rx`.
struct Events<T> {
    rx: crossbeam::channel::Receiver<T>,
    containers: Arc<Containers>,
    metrics: Arc<Metrics>,
    stop: std::os::fd::OwnedFd,
    thread: std::thread::JoinHandle<Result<(), ringtail::ebpf::EbpfError>>,
}

impl<T: Send + 'static> Events<T> {
    fn start(kernel: Kernel, pick: fn(KernelEvent) -> Option<T>) -> Events<T> {
        let (stop_read, stop) = rustix::pipe::pipe().unwrap();
        let (tx, rx) = crossbeam::channel::unbounded();
        let containers = Arc::new(Containers::default());
        let metrics = Arc::new(Metrics::new());
        let thread = {
            let (containers, metrics) = (Arc::clone(&containers), Arc::clone(&metrics));
            std::thread::spawn(move || {
                // Counters every second, as with the write hook: the tests read them.
                let every = Some(std::time::Duration::from_secs(1));
                kernel.run(stop_read, containers, metrics, every, move |event| {
                    if let Some(event) = pick(event) {
                        let _ = tx.send(event);
                    }
                })
            })
        };
        Events {
            rx,
            containers,
            metrics,
            stop,
            thread,
        }
    }

    /// Stops the thread; it must have ended without an error.
    fn stop(self) {
        drop(self.stop);
        self.thread.join().unwrap().unwrap();
    }
}

/// The cgroup2 mount point (`/sys/fs/cgroup` on unified systems, `/sys/fs/cgroup/unified` on
/// hybrid ones).
fn cgroup2_root() -> PathBuf {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
    mounts
        .lines()
        .find_map(|l| {
            let mut f = l.split(' ');
            let (_, point, kind) = (f.next()?, f.next()?, f.next()?);
            (kind == "cgroup2").then(|| PathBuf::from(point))
        })
        .expect("a cgroup2 mount")
}

#[test]
fn cgroup_lifecycle_events_name_the_container() {
    if skip_without_root() {
        return;
    }
    let events = Events::start(Kernel::load().unwrap(), |event| match event {
        KernelEvent::Container(event) => Some(event),
        _ => None,
    });
    let (rx, containers, metrics) = (
        events.rx.clone(),
        Arc::clone(&events.containers),
        Arc::clone(&events.metrics),
    );

    let id = format!("{:064x}", u128::from(std::process::id()) << 64 | 0xfeed);
    let parent = cgroup2_root().join(format!("ringtail-test-{}", std::process::id()));
    let scope = parent.join(format!("docker-{id}.scope"));
    std::fs::create_dir(&parent).unwrap();
    std::fs::create_dir(&scope).unwrap();
    let cgroup_id = std::fs::metadata(&scope).unwrap().ino();
    // Other tests create container cgroups too: look at this test's container only.
    let ours = |event: &ContainerEvent| match event {
        ContainerEvent::Started { container_id, .. }
        | ContainerEvent::Stopped { container_id, .. } => *container_id == id,
    };
    let next = || loop {
        let event = rx.recv_timeout(Duration::from_secs(5)).unwrap();
        if ours(&event) {
            return event;
        }
    };
    let started = next();
    assert_eq!(
        started,
        ContainerEvent::Started {
            cgroup_id,
            container_id: id.clone(),
            path: format!("/ringtail-test-{}/docker-{id}.scope", std::process::id()),
        },
        "the parent is not a container: one event"
    );
    assert_eq!(containers.get(cgroup_id), Some(id.clone()));
    std::fs::remove_dir(&scope).unwrap();
    std::fs::remove_dir(&parent).unwrap();
    let stopped = next();
    assert_eq!(
        stopped,
        ContainerEvent::Stopped {
            cgroup_id,
            container_id: id
        }
    );
    assert_eq!(containers.get(cgroup_id), None);
    let text = metrics.render();
    assert!(
        text.contains("ringtail_ebpf_events_total{kind=\"container_started\"}"),
        "{text}"
    );
    assert!(
        text.contains("ringtail_ebpf_ringbuf_drops_total 0"),
        "{text}"
    );
    events.stop();
}

#[test]
fn the_binary_says_which_discovery_mode_runs_and_counts_containers() {
    if skip_without_root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let config = |mode: &str| {
        format!(
            "discovery: {mode}\ndata_dir: {dir}/data\napi:\n  listen: 127.0.0.1:{{port}}\nsources:\n  - name: logs\n    paths: [\"{dir}/logs/*.log\"]\nsinks:\n  - name: out\n    type: blackhole\n",
            dir = dir.path().display()
        )
    };
    let collector = common::Collector::start(dir.path(), &config("ebpf"));
    let id = format!("{:064x}", u128::from(std::process::id()) << 64 | 0xbeef);
    let scope = cgroup2_root().join(format!("cri-containerd-{id}.scope"));
    std::fs::create_dir(&scope).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while collector.metric("ringtail_containers_running") != 1.0 {
        assert!(
            std::time::Instant::now() < deadline,
            "{}",
            collector.stderr()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::fs::remove_dir(&scope).unwrap();
    while collector.metric("ringtail_containers_running") != 0.0 {
        assert!(
            std::time::Instant::now() < deadline,
            "{}",
            collector.stderr()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let (status, log) = collector.stop();
    assert!(status.success(), "{log}");
    assert!(log.contains("mode=\"ebpf\""), "{log}");
    assert!(
        log.contains(&format!("container started container={id}")),
        "{log}"
    );

    std::fs::remove_file(dir.path().join("ringtail.stderr")).unwrap();
    let collector = common::Collector::start(dir.path(), &config("inotify"));
    let (status, log) = collector.stop();
    assert!(status.success(), "{log}");
    assert!(log.contains("mode=\"inotify\""), "{log}");
    assert!(!log.contains("mode=\"ebpf\""), "{log}");
}

#[test]
fn opens_for_writing_are_reported_in_watched_directories_only() {
    if skip_without_root() {
        return;
    }
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let watched = dir.path().join("watched");
    let other = dir.path().join("other");
    std::fs::create_dir(&watched).unwrap();
    std::fs::create_dir(&other).unwrap();
    let mut kernel = Kernel::load().unwrap();
    let mut dirs = kernel.take_watched_dirs().unwrap();
    let key = dirs
        .insert(std::fs::File::open(&watched).unwrap().as_fd())
        .unwrap();
    let events = Events::start(kernel, |event| match event {
        KernelEvent::FileOpened(f) => Some(f),
        _ => None,
    });
    let (rx, metrics) = (events.rx.clone(), Arc::clone(&events.metrics));

    // Not for writing, or not in a watched directory: nothing.
    std::fs::write(other.join("b.log"), b"x\n").unwrap();
    std::fs::write(watched.join("a.log"), b"").unwrap();
    let seen = rx.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(seen.name, "a.log");
    let _read_only = std::fs::File::open(watched.join("a.log")).unwrap();
    let _elsewhere = std::fs::OpenOptions::new()
        .append(true)
        .open(other.join("b.log"))
        .unwrap();
    let file = std::fs::OpenOptions::new()
        .append(true)
        .open(watched.join("a.log"))
        .unwrap();
    let event = rx.recv_timeout(Duration::from_secs(5)).unwrap();
    let meta = std::fs::metadata(watched.join("a.log")).unwrap();
    assert_eq!(event.name, "a.log");
    assert_eq!(event.pid, std::process::id());
    assert_eq!(event.ino, meta.ino());
    assert_eq!(event.dev, meta.dev());
    assert_eq!(event.dir, key);
    // The reported descriptor is the writer's.
    use std::os::fd::AsRawFd;
    assert_eq!(event.fd as i32, file.as_raw_fd());
    assert!(
        rx.recv_timeout(Duration::from_millis(200)).is_err(),
        "nothing else"
    );
    let text = metrics.render();
    assert!(
        text.contains("ringtail_ebpf_events_total{kind=\"file_opened\"} 2"),
        "two opens for writing in the watched directory, none elsewhere:\n{text}"
    );
    // Unwatched again: silent.
    dirs.remove(&key);
    std::fs::write(watched.join("c.log"), b"x\n").unwrap();
    assert!(rx.recv_timeout(Duration::from_millis(200)).is_err());
    events.stop();
}

/// A file-sink configuration reading `logs/*.log` under `dir`, with discovery `mode` and
/// readers woken by `wake`.
fn logs_config(dir: &std::path::Path, mode: &str, wake: &str) -> String {
    format!(
        "discovery: {mode}\nreader:\n  wake: {wake}\ndata_dir: {dir}/data\napi:\n  listen: 127.0.0.1:{{port}}\nsources:\n  - name: logs\n    paths: [\"{dir}/logs/*.log\"]\nsinks:\n  - name: out\n    type: file\n    path: {dir}/out/out.ndjson\n    sync_interval: 10ms\n",
        dir = dir.display()
    )
}

#[test]
fn a_short_lived_writer_is_read_whole_and_fast() {
    if skip_without_root() {
        return;
    }
    short_lived_writers("ebpf", "inotify");
}

#[test]
fn a_short_lived_writer_is_read_whole_and_fast_when_the_write_hook_wakes_readers() {
    if skip_without_root() {
        return;
    }
    short_lived_writers("ebpf", "write_hook");
}

#[test]
fn a_short_lived_writer_is_read_whole_and_fast_with_inotify_alone() {
    short_lived_writers("inotify", "inotify");
}

/// New files' first lines reach the sink fast; a writer that exits and whose file is deleted
/// 50 ms later is read whole; with eBPF, so is a file unlinked while its writer holds it
/// (inotify cannot open a file that has no name by the time it looks).
fn short_lived_writers(mode: &str, wake: &str) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("logs")).unwrap();
    let collector = common::Collector::start(dir.path(), &logs_config(dir.path(), mode, wake));
    let out = dir.path().join("out");
    // Latency of a new file's first line, five times (the median is asserted: these
    // machines are noisy).
    let mut latencies = Vec::new();
    let mut expected = std::collections::BTreeMap::new();
    for f in 0..5 {
        let stream = format!("first{f}");
        let path = dir.path().join(format!("logs/{stream}.log"));
        let written = std::time::Instant::now();
        common::append_lines(&path, &stream, 0..1, 10);
        expected.insert(stream, 1);
        loop {
            if common::Delivered::read(&out).missing(&expected).is_empty() {
                break;
            }
            assert!(
                written.elapsed() < Duration::from_secs(5),
                "{}",
                collector.stderr()
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        latencies.push(written.elapsed());
    }
    latencies.sort();
    println!("a new file's first line reached the sink after {latencies:?}");
    assert!(latencies[2] < Duration::from_millis(100), "{latencies:?}");

    // A writer process: creates a file, writes 1,000 lines, exits; the file is deleted 50 ms
    // later.
    let short = dir.path().join("logs/short.log");
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "i=0; while [ $i -lt 1000 ]; do printf 'short %08d xxxxxxxxxx\\n' $i; i=$((i+1)); done > {}",
            short.display()
        ))
        .status()
        .unwrap();
    assert!(status.success());
    std::thread::sleep(Duration::from_millis(50));
    std::fs::remove_file(&short).unwrap();

    expected.insert("short".to_string(), 1000);
    if mode == "ebpf" {
        unlinked_while_held(dir.path());
        expected.insert("unlinked".to_string(), 1000);
    }
    let delivered = common::wait_delivered(&out, &expected, Duration::from_secs(20));
    let (status, log) = collector.stop();
    assert!(status.success(), "{log}");
    let missing = delivered.missing(&expected);
    assert!(
        missing.is_empty(),
        "{} missing, e.g. {:?}\n{log}",
        missing.len(),
        missing.first()
    );
    assert_eq!(delivered.duplicates(), 0);
}

/// A file unlinked right after it was written, while its writer still holds it: only the
/// writer's descriptor leads to it.
fn unlinked_while_held(dir: &std::path::Path) {
    let unlinked = dir.join("logs/unlinked.log");
    let file = std::fs::File::create(&unlinked).unwrap();
    {
        use std::io::Write;
        let mut text = String::new();
        for n in 0..1000 {
            text.push_str(&format!("unlinked {n:08} yyyyyyyyyy\n"));
        }
        (&file).write_all(text.as_bytes()).unwrap();
    }
    std::fs::remove_file(&unlinked).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    drop(file);
}

#[test]
fn the_write_hook_wakes_once_per_idle_to_dirty_and_ignores_other_writes() {
    if skip_without_root() {
        return;
    }
    use std::io::Write;
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let watched = dir.path().join("watched");
    let other = dir.path().join("other");
    std::fs::create_dir(&watched).unwrap();
    std::fs::create_dir(&other).unwrap();
    let mut kernel = Kernel::load().unwrap();
    let mut dirs = kernel.take_watched_dirs().unwrap();
    dirs.insert(std::fs::File::open(&watched).unwrap().as_fd())
        .unwrap();
    let flags = kernel.dirty_flags().unwrap();
    let events = Events::start(kernel, Some);
    let (rx, metrics) = (events.rx.clone(), Arc::clone(&events.metrics));
    let mut outside = std::fs::File::create(other.join("x.log")).unwrap();
    let mut file = std::fs::File::create(watched.join("a.log")).unwrap();
    let meta = std::fs::metadata(watched.join("a.log")).unwrap();
    assert!(matches!(
        rx.recv_timeout(Duration::from_secs(5)).unwrap(),
        KernelEvent::FileOpened(_)
    ));
    // Opened dirty (user space has not read it yet): writes wake nobody until cleared.
    for _ in 0..100 {
        file.write_all(b"0123456789\n").unwrap();
        outside.write_all(b"0123456789\n").unwrap();
    }
    assert!(rx.recv_timeout(Duration::from_millis(200)).is_err());
    assert!(flags.clear(meta.dev(), meta.ino()), "it was dirty");
    assert!(!flags.clear(meta.dev(), meta.ino()), "now it is not");
    // Idle → dirty: one event for many writes.
    for _ in 0..100 {
        file.write_all(b"0123456789\n").unwrap();
        outside.write_all(b"0123456789\n").unwrap();
    }
    let event = rx.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(
        event,
        KernelEvent::FileDirty {
            dev: meta.dev(),
            ino: meta.ino()
        }
    );
    assert!(rx.recv_timeout(Duration::from_millis(200)).is_err(), "once");
    assert_eq!(
        flags.bytes_written(meta.dev(), meta.ino()),
        Some(200 * 11),
        "the kernel counted every byte written to the watched file"
    );
    events.stop();
    let text = metrics.render();
    assert!(
        text.contains("ringtail_ebpf_events_total{kind=\"file_dirty\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("ringtail_ebpf_events_total{kind=\"file_opened\"} 1"),
        "writes to other/x.log produced nothing:\n{text}"
    );
}

#[test]
fn a_name_reused_right_after_its_file_was_renamed_away_loses_nothing() {
    if skip_without_root() {
        return;
    }
    for (mode, wake) in [("ebpf", "inotify"), ("ebpf", "write_hook")] {
        rename_and_reopen(mode, wake);
    }
}

/// A writer rotates `a.log` 300 times as fast as it can: write, close, rename to
/// `a.log.<n>` (outside the glob), open a new `a.log`. The kernel reports each new `a.log`
/// while inotify still holds the old one's events under the same name: handled out of order,
/// the old file's last lines were never read.
fn rename_and_reopen(mode: &str, wake: &str) {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let collector = common::Collector::start(dir.path(), &logs_config(dir.path(), mode, wake));
    let script = r#"
import os
for k in range(300):
    fd = os.open(PATH + '/a.log', os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    for i in range(20):
        os.write(fd, b'rot %08d r\n' % (k * 20 + i))
    os.close(fd)
    os.rename(PATH + '/a.log', PATH + '/a.log.%d' % k)
"#;
    assert!(python(script, &logs).wait().unwrap().success());
    let expected = std::collections::BTreeMap::from([("rot".to_string(), 6000)]);
    let out = dir.path().join("out");
    let delivered = common::wait_delivered(&out, &expected, Duration::from_secs(20));
    let (status, log) = collector.stop();
    assert!(status.success(), "{log}");
    let missing = delivered.missing(&expected);
    assert!(
        missing.is_empty(),
        "{mode}/{wake}: {} missing, e.g. {:?}\n{log}",
        missing.len(),
        missing.first()
    );
    assert_eq!(delivered.duplicates(), 0);
}

#[test]
fn bytes_written_and_read_are_counted_per_container() {
    if skip_without_root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let pods = dir.path().join("var/log/pods");
    let nginx = pods.join("shop_web-1_0f1e2d3c-0000-0000-0000-000000000001/nginx");
    let sidecar = pods.join("shop_web-1_0f1e2d3c-0000-0000-0000-000000000001/sidecar");
    std::fs::create_dir_all(&nginx).unwrap();
    std::fs::create_dir_all(&sidecar).unwrap();
    let config = format!(
        "discovery: ebpf\ndata_dir: {d}/data\napi:\n  listen: 127.0.0.1:{{port}}\nsources:\n  - name: pods\n    paths: [\"{d}/var/log/pods/*/*/*.log\"]\nsinks:\n  - name: out\n    type: file\n    path: {d}/out/out.ndjson\n    sync_interval: 10ms\n",
        d = dir.path().display()
    );
    let collector = common::Collector::start(dir.path(), &config);
    let script = r#"
import os
for name, n in (('nginx', 3000), ('sidecar', 1000)):
    fd = os.open(PATH + '/../' + name + '/0.log', os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    for i in range(n):
        os.write(fd, b'%s %08d w\n' % (name.encode(), i))
    os.close(fd)
"#;
    assert!(python(script, &nginx).wait().unwrap().success());
    let expected = std::collections::BTreeMap::from([
        ("nginx".to_string(), 3000),
        ("sidecar".to_string(), 1000),
    ]);
    let out = dir.path().join("out");
    let delivered = common::wait_delivered(&out, &expected, Duration::from_secs(20));
    assert!(
        delivered.missing(&expected).is_empty(),
        "{}",
        collector.stderr()
    );
    for (container, path) in [("nginx", &nginx), ("sidecar", &sidecar)] {
        let size = std::fs::metadata(path.join("0.log")).unwrap().len() as f64;
        let label = format!("{{container=\"shop/web-1/{container}\"}}");
        // Published as readers catch up: wait for both to settle.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let written =
                collector.metric(&format!("ringtail_container_written_bytes_total{label}"));
            let read = collector.metric(&format!("ringtail_container_read_bytes_total{label}"));
            if (written, read) == (size, size) {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{container}: written {written}, read {read}, file {size}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let (status, log) = collector.stop();
    assert!(status.success(), "{log}");
}

/// Runs `script` with python3, `path` bound to `PATH`; returns the child.
fn python(script: &str, path: &std::path::Path) -> std::process::Child {
    std::process::Command::new("python3")
        .arg("-c")
        .arg(format!("PATH = {:?}\n{script}", path.display().to_string()))
        .spawn()
        .unwrap()
}

#[test]
fn the_write_hook_follows_descriptors_through_dup_fcntl_fork_and_exec() {
    if skip_without_root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let watched = dir.path().join("watched");
    std::fs::create_dir(&watched).unwrap();
    let mut kernel = Kernel::load().unwrap();
    let mut dirs = kernel.take_watched_dirs().unwrap();
    dirs.insert(std::fs::File::open(&watched).unwrap().as_fd())
        .unwrap();
    let flags = kernel.dirty_flags().unwrap();
    let events = Events::start(kernel, Some);
    let path = watched.join("a.log");
    // Every way a process comes to write through another descriptor than the one `open`
    // returned; the last write goes to another file through a reused descriptor number.
    let script = r#"
import os, fcntl, subprocess
fd = os.open(PATH, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
os.write(fd, b'open\n')
d = fcntl.fcntl(fd, fcntl.F_DUPFD, 100)
os.write(d, b'fcntl F_DUPFD\n')
os.dup2(fd, 50)
os.write(50, b'dup2\n')
os.pwrite(os.dup(fd), b'pwrite after dup\n', 0)
os.writev(fd, [b'writev ', b'in two parts\n'])
pid = os.fork()
if pid == 0:
    os.write(fd, b'forked child\n')
    os._exit(0)
os.waitpid(pid, 0)
subprocess.run(['sh', '-c', 'printf "exec child\n" >&%d' % fd], pass_fds=[fd], check=True)
os.close(fd)
null = os.open('/dev/null', os.O_WRONLY)
assert null == fd, (null, fd)
os.write(null, b'not the watched file: reused descriptor number\n')
"#;
    assert!(python(script, &path).wait().unwrap().success());
    let size = std::fs::metadata(&path).unwrap().len();
    let meta = std::fs::metadata(&path).unwrap();
    assert_eq!(
        flags.bytes_written(meta.dev(), meta.ino()),
        Some(size),
        "every byte through every descriptor, and nothing through the reused number"
    );
    events.stop();
}

#[test]
fn the_iterator_finds_files_open_before_the_start_even_unlinked() {
    if skip_without_root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let watched = dir.path().join("watched");
    std::fs::create_dir(&watched).unwrap();
    let (kept, unlinked) = (watched.join("kept.log"), watched.join("unlinked.log"));
    // Both opened before the programs are loaded; one is unlinked before ringtail looks.
    let script = r#"
import os, sys, time
kept = os.open(PATH + '/kept.log', os.O_WRONLY | os.O_CREAT)
gone = os.open(PATH + '/unlinked.log', os.O_WRONLY | os.O_CREAT)
os.write(gone, b'only through the descriptor\n')
os.unlink(PATH + '/unlinked.log')
print(kept, gone, flush=True)
sys.stdin.readline()
os.write(kept, b'after the start\n')
"#;
    let mut writer = std::process::Command::new("python3")
        .arg("-c")
        .arg(format!(
            "PATH = {:?}\n{script}",
            watched.display().to_string()
        ))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    use std::io::BufRead;
    std::io::BufReader::new(writer.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let fds: Vec<u32> = line
        .split_whitespace()
        .map(|n| n.parse().unwrap())
        .collect();
    let kept_meta = std::fs::metadata(&kept).unwrap();
    assert!(!unlinked.exists());

    let mut kernel = Kernel::load().unwrap();
    let mut dirs = kernel.take_watched_dirs().unwrap();
    dirs.insert(std::fs::File::open(&watched).unwrap().as_fd())
        .unwrap();
    let flags = kernel.dirty_flags().unwrap();
    let mut open = kernel.open_files().unwrap();
    open.sort_by(|a, b| a.name.cmp(&b.name));
    let named: Vec<(String, u32, u32)> = open
        .iter()
        .map(|f| (f.name.to_string_lossy().into_owned(), f.pid, f.fd))
        .collect();
    assert_eq!(
        named,
        vec![
            ("kept.log".to_string(), writer.id(), fds[0]),
            ("unlinked.log".to_string(), writer.id(), fds[1]),
        ]
    );
    assert_eq!(
        (open[0].dev, open[0].ino),
        (kept_meta.dev(), kept_meta.ino())
    );
    // The unlinked one is still readable through the writer's descriptor.
    assert_eq!(
        std::fs::read(format!("/proc/{}/fd/{}", open[1].pid, open[1].fd)).unwrap(),
        b"only through the descriptor\n"
    );
    // Its writer is followed from now on.
    use std::io::Write;
    writer.stdin.take().unwrap().write_all(b"go\n").unwrap();
    assert!(writer.wait().unwrap().success());
    assert_eq!(
        flags.bytes_written(kept_meta.dev(), kept_meta.ino()),
        Some(b"after the start\n".len() as u64)
    );
    drop(kernel);
}

#[test]
fn writers_from_before_the_start_and_in_a_fresh_cgroup_are_followed() {
    if skip_without_root() {
        return;
    }
    early_and_fresh_writers("ebpf", "inotify");
}

#[test]
fn writers_from_before_the_start_and_in_a_fresh_cgroup_wake_readers_through_the_write_hook() {
    if skip_without_root() {
        return;
    }
    early_and_fresh_writers("ebpf", "write_hook");
}

#[test]
fn writers_from_before_the_start_and_in_a_fresh_cgroup_with_inotify_alone() {
    if skip_without_root() {
        return;
    }
    early_and_fresh_writers("inotify", "inotify");
}

/// A writer that opened its file before ringtail started and writes after, and a process in
/// a fresh cgroup that creates a file and writes 10,000 lines: all delivered, the first line
/// fast; with eBPF, the kernel's byte counts match what was read.
fn early_and_fresh_writers(mode: &str, wake: &str) {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    // A writer that opens its file before ringtail starts and writes after.
    let early = logs.join("early.log");
    let mut writer = std::process::Command::new("python3")
        .arg("-c")
        .arg(format!(
            "import os, time\n\
             fd = os.open({path:?}, os.O_WRONLY | os.O_APPEND | os.O_CREAT)\n\
             os.write(fd, b'early 00000000 z\\n')\n\
             time.sleep(2)\n\
             for i in range(1, 1000):\n    os.write(fd, b'early %08d z\\n' % i)\n",
            path = early.display().to_string()
        ))
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let collector = common::Collector::start(dir.path(), &logs_config(dir.path(), mode, wake));

    // A process in a fresh cgroup creates a file and writes 10,000 lines.
    let cgroup = cgroup2_root().join(format!(
        "ringtail-writer-{}-{mode}-{wake}",
        std::process::id()
    ));
    std::fs::create_dir(&cgroup).unwrap();
    let fresh = logs.join("fresh.log");
    let spawned = std::time::Instant::now();
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "echo $$ > {procs}; printf 'fresh %08d q\\n' 0 > {f}; sleep 0.3; \
             i=1; while [ $i -lt 10000 ]; do printf 'fresh %08d q\\n' $i; i=$((i+1)); done >> {f}",
            procs = cgroup.join("cgroup.procs").display(),
            f = fresh.display()
        ))
        .spawn()
        .unwrap();
    let out = dir.path().join("out");
    let first = std::collections::BTreeMap::from([("fresh".to_string(), 1)]);
    while !common::Delivered::read(&out).missing(&first).is_empty() {
        assert!(
            spawned.elapsed() < Duration::from_secs(5),
            "{}",
            collector.stderr()
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    println!(
        "first line of the fresh cgroup's file at the sink {:?} after the writer was spawned",
        spawned.elapsed()
    );
    // Spawning the shell and joining the cgroup are inside the measurement: 100 ms for the
    // line itself, as the issue asks, plus as much again for them.
    assert!(spawned.elapsed() < Duration::from_millis(200));
    let mut status = status;
    assert!(status.wait().unwrap().success());
    assert!(writer.wait().unwrap().success());
    std::fs::remove_dir(&cgroup).unwrap();

    let expected = std::collections::BTreeMap::from([
        ("fresh".to_string(), 10_000),
        ("early".to_string(), 1000),
    ]);
    let delivered = common::wait_delivered(&out, &expected, Duration::from_secs(30));
    let dirty = collector.metric("ringtail_ebpf_events_total{kind=\"file_dirty\"}");
    let modify = collector.metric("ringtail_discovery_events_total{kind=\"modify\"}");
    let written = collector.metric("ringtail_kernel_written_bytes_total{source=\"logs\"}");
    let read = collector.metric("ringtail_read_bytes_total{source=\"logs\"}");
    let (status, log) = collector.stop();
    assert!(status.success(), "{log}");
    let missing = delivered.missing(&expected);
    assert!(
        missing.is_empty(),
        "{} missing, e.g. {:?}\n{log}",
        missing.len(),
        missing.first()
    );
    assert_eq!(delivered.duplicates(), 0);
    if mode != "ebpf" {
        return;
    }
    if wake == "write_hook" {
        assert_eq!(modify, 0.0, "inotify was not asked for modify events");
        assert!(
            dirty > 1.0,
            "the write hook woke the readers again and again"
        );
    }
    // The iterator found the early writer's file.
    let registered: u32 = log
        .split("followed by the write hook files=")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(registered >= 1, "{log}");
    assert!(
        dirty >= 1.0,
        "the write hook woke discovery for the early writer's lines"
    );
    // Every byte was written through a followed descriptor (the shell's `>>` is a dup2 to
    // stdout, then `printf` runs in forked subshells) except the early writer's first line,
    // written before ringtail started.
    let sizes: u64 = ["early.log", "fresh.log"]
        .iter()
        .map(|f| std::fs::metadata(logs.join(f)).unwrap().len())
        .sum();
    let before_start = "early 00000000 z\n".len() as u64;
    assert_eq!(read as u64, sizes, "{log}");
    assert_eq!(
        written as u64,
        sizes - before_start,
        "kernel-counted bytes written"
    );
}
