//! Sidecar mode with the real binary: ringtail beside an app in its pod, sharing the app's
//! log directory. The pod is being stopped: ringtail gets SIGTERM while the app still writes
//! its last lines, and no later run will read them. With `sidecar`, it reads until every file
//! is delivered and quiet, then exits 0 with every line delivered; as a DaemonSet it would
//! stop at once and leave them to its next start.
//!
//! The last test runs it as a real native sidecar: a containerd pod (CRI fixture) whose app
//! container writes into an emptyDir (a host directory mounted into both containers) and
//! exits; the pod is then stopped as the kubelet stops it, with the grace period.
#![allow(clippy::unwrap_used, reason = "tests fail loudly on broken invariants")]

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use common::cri::CriNode;
use common::{Collector, Delivered, append_lines, free_port};

fn config(dir: &Path, sidecar: &str) -> String {
    format!(
        r#"data_dir: {dir}/data
discovery: inotify
api:
  listen: 127.0.0.1:{{port}}
sources:
  - name: app
    paths: ["{dir}/shared/*.log"]
sinks:
  - name: out
    type: file
    path: {dir}/out/out.ndjson
{sidecar}"#,
        dir = dir.display()
    )
}

/// The app writes 20,000 lines into two files; ringtail gets SIGTERM when 15,000 are written
/// and the app goes on for another second (its own shutdown: flushing buffers, last words).
/// Returns what was delivered, how ringtail exited, and its log.
fn stopped_while_the_app_writes(sidecar: &str) -> (Delivered, bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let shared = dir.path().join("shared");
    std::fs::create_dir_all(&shared).unwrap();
    let mut collector = Collector::start(dir.path(), &config(dir.path(), sidecar));
    let files = [shared.join("app.log"), shared.join("audit.log")];
    for chunk in 0..15u64 {
        for (f, path) in files.iter().enumerate() {
            append_lines(path, &format!("s{f}"), chunk * 500..(chunk + 1) * 500, 40);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(collector.child.id() as i32).unwrap(),
        rustix::process::Signal::TERM,
    )
    .unwrap();
    let started = Instant::now();
    for chunk in 15..20u64 {
        for (f, path) in files.iter().enumerate() {
            append_lines(path, &format!("s{f}"), chunk * 500..(chunk + 1) * 500, 40);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let status = collector.wait_exit(Duration::from_secs(60));
    println!("stopped {:?} after SIGTERM", started.elapsed());
    let log = collector.stderr();
    let delivered = Delivered::read(&dir.path().join("out"));
    (delivered, status.success(), log)
}

#[test]
fn a_sidecar_delivers_what_the_app_wrote_after_sigterm_and_exits_0() {
    let (delivered, success, log) =
        stopped_while_the_app_writes("sidecar:\n  drain_quiet: 1s\n  drain_max: 20s\n");
    assert!(success, "{log}");
    let expected = BTreeMap::from([("s0".to_string(), 10_000), ("s1".to_string(), 10_000)]);
    let missing = delivered.missing(&expected);
    assert!(
        missing.is_empty(),
        "{} lines lost, e.g. {:?}\n{log}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    assert_eq!(delivered.duplicates(), 0);
    assert!(
        log.contains("every file is delivered to its end and none has grown since"),
        "{log}"
    );
}

/// Without `sidecar`, a SIGTERM stops reading at once (a DaemonSet's next start resumes from
/// the checkpoints): the lines the app wrote after it are not delivered by this run — what
/// sidecar mode is for.
#[test]
fn without_sidecar_mode_the_last_lines_wait_for_the_next_start() {
    let (delivered, success, log) = stopped_while_the_app_writes("");
    assert!(success, "{log}");
    let expected = BTreeMap::from([("s0".to_string(), 10_000), ("s1".to_string(), 10_000)]);
    assert!(!delivered.missing(&expected).is_empty(), "{log}");
}

/// Where this machine's (Debian, x86-64) dynamic loader and shared libraries are: mounted
/// read-only into the sidecar container, so the test binary runs in the busybox image.
const HOST_LIBS: &str = "/usr/lib/x86_64-linux-gnu";

/// The app of the pod: 20,000 numbered lines into the emptyDir, as fast as the shell goes,
/// then it exits.
const APP: &str = r#"
i=0
while [ $i -lt 20000 ]; do
  printf 'app %08d xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n' $i
  i=$((i + 1))
done >> /var/log/app/app.log
"#;

/// Whether ringtail's API on the host network answers `/healthz`.
fn healthy(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let mut response = String::new();
    write!(stream, "GET /healthz HTTP/1.0\r\nHost: localhost\r\n\r\n").is_ok()
        && stream.read_to_string(&mut response).is_ok()
        && response.split_whitespace().nth(1) == Some("200")
}

#[test]
fn a_native_sidecar_in_a_real_pod_delivers_every_line_when_the_pod_is_stopped() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().canonicalize().unwrap();
    assert!(
        Path::new(HOST_LIBS).join("ld-linux-x86-64.so.2").exists(),
        "this test runs the host's binary in a container with the host's loader from {HOST_LIBS}"
    );
    let node = CriNode::start(&dir);
    let shared = dir.join("emptydir");
    let out = dir.join("out");
    std::fs::create_dir_all(&shared).unwrap();
    std::fs::create_dir_all(&out).unwrap();
    let port = free_port();
    // deploy/sidecar's configuration, with a file sink the test can read.
    let config = dir.join("ringtail.yaml");
    std::fs::write(
        &config,
        format!(
            "data_dir: /tmp/ringtail\ndiscovery: inotify\napi:\n  listen: 127.0.0.1:{port}\n\
             sidecar:\n  drain_quiet: 2s\n  drain_max: 25s\nsources:\n  - name: app\n    \
             paths: [\"/var/log/app/*.log\"]\nsinks:\n  - name: out\n    type: file\n    \
             path: /out/out.ndjson\n"
        ),
    )
    .unwrap();

    let uid = "7c1d2e3f-2222-4b11-9c0d-5e6f7a8b9c0d";
    let pod = node.run_pod(
        "shop",
        "web-1",
        uid,
        &dir.join(format!("var/log/pods/shop_web-1_{uid}")),
    );
    // The native sidecar starts first (an init container with restartPolicy: Always).
    let binary = Path::new(common::binary());
    let sidecar = node.run_container_with_mounts(
        &pod,
        "ringtail",
        &[
            "/host-libs/ld-linux-x86-64.so.2",
            "--library-path",
            "/host-libs",
            "/ringtail",
            "run",
            "--config",
            "/etc/ringtail/ringtail.yaml",
        ],
        &[("RINGTAIL_LOG", "info")],
        &[
            (Path::new(HOST_LIBS), "/host-libs", true),
            (binary, "/ringtail", true),
            (&config, "/etc/ringtail/ringtail.yaml", true),
            (&shared, "/var/log/app", false),
            (&out, "/out", false),
        ],
    );
    let sidecar_log = || std::fs::read_to_string(&sidecar.log_path).unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !healthy(port) {
        assert!(
            Instant::now() < deadline,
            "the sidecar did not start:\n{}\n{}",
            sidecar_log(),
            node.log_tail()
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    let app = node.run_container_with_mounts(
        &pod,
        "app",
        &["/bin/sh", "-c", APP],
        &[],
        &[(&shared, "/var/log/app", false)],
    );
    assert_eq!(node.wait_exited(&app, Duration::from_secs(60)), 0);
    // The pod is deleted at once: the kubelet stops the app's containers, then the sidecar,
    // each with the grace period (SIGTERM, SIGKILL when it is over), then the sandbox.
    let stopping = Instant::now();
    node.stop_container(&sidecar, Duration::from_secs(30));
    let code = node.wait_exited(&sidecar, Duration::from_secs(5));
    println!("the sidecar stopped {:?} after SIGTERM", stopping.elapsed());
    node.stop_pod(&pod);

    let log = sidecar_log();
    assert_eq!(code, 0, "the sidecar's exit code\n{log}");
    assert!(
        stopping.elapsed() < Duration::from_secs(30),
        "not stopped within the grace period\n{log}"
    );
    let delivered = Delivered::read(&out);
    let missing = delivered.missing(&BTreeMap::from([("app".to_string(), 20_000)]));
    assert!(
        missing.is_empty(),
        "{} lines lost, e.g. {:?}\n{log}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    assert_eq!(delivered.duplicates(), 0, "{log}");
    assert_eq!(delivered.fragments, 0, "{log}");
    // On this machine the sidecar has usually read everything by the time the app's exit is
    // seen, so what tells sidecar mode apart here is that it waited for the files to be
    // delivered and quiet (the host test above shows the lines a plain SIGTERM leaves).
    assert!(
        log.contains("every file is delivered to its end and none has grown since"),
        "{log}"
    );
}
