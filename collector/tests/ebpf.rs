//! The real eBPF programs loaded into this kernel (root only; CI runs as root): a cgroup
//! created and removed under the cgroup2 hierarchy comes back as container started/stopped
//! events with the right cgroup id and container id.

#![allow(clippy::unwrap_used, reason = "tests fail loudly on broken invariants")]

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

mod common;

use ringtail::ebpf::{ContainerEvent, Containers, Kernel};
use ringtail::metrics::Metrics;

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
    if !rustix::process::geteuid().is_root() {
        println!("skipped: loading eBPF programs needs root (CI runs as root)");
        return;
    }
    let kernel = Kernel::load().unwrap();
    let (stop_read, stop_write) = rustix::pipe::pipe().unwrap();
    let (tx, rx) = crossbeam::channel::unbounded();
    let containers = Arc::new(Containers::default());
    let metrics = Arc::new(Metrics::new());
    let thread = {
        let (containers, metrics) = (Arc::clone(&containers), Arc::clone(&metrics));
        std::thread::spawn(move || {
            kernel.run(stop_read, containers, metrics, move |event| {
                let _ = tx.send(event);
            })
        })
    };

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
    drop(stop_write);
    thread.join().unwrap().unwrap();
}

#[test]
fn the_binary_says_which_discovery_mode_runs_and_counts_containers() {
    if !rustix::process::geteuid().is_root() {
        println!("skipped: loading eBPF programs needs root (CI runs as root)");
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
