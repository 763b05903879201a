//! The Kubernetes node fixture (`common::cri`): a real containerd with its CRI plugin runs a
//! pod whose containers write real CRI log files — every line there, stdout and stderr
//! apart, a line over 16 KiB split into `P` pieces and an `F`, output without a final newline
//! as a last `P` — and leaves nothing mounted or running once the pod is removed.

#![allow(clippy::unwrap_used, reason = "tests fail loudly on broken invariants")]

use std::path::Path;
use std::time::{Duration, Instant};

mod common;

use common::cri::{CriNode, mounts_under};

/// The printer's script: 1000 numbered stdout lines with every 100th echoed on stderr, an
/// environment variable, a 40 000-byte line, and a last piece of output with no newline.
const SCRIPT: &str = r#"
i=1
while [ $i -le 1000 ]; do
  echo "out $i"
  if [ $((i % 100)) -eq 0 ]; then echo "err $i" >&2; fi
  i=$((i + 1))
done
echo "env $GREETING"
head -c 40000 /dev/zero | tr '\0' x
echo
echo after-long
printf 'no newline at the end'
"#;

const LONG: usize = 40_000;
const CRI_MAX_LINE: usize = 16_384;

/// One record of a CRI log file.
#[derive(Debug)]
struct Record {
    time: String,
    stream: String,
    partial: bool,
    text: String,
}

fn parse(log: &str) -> Vec<Record> {
    let time = regex::Regex::new(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)$")
        .unwrap();
    assert!(log.ends_with('\n'), "every CRI record ends with a newline");
    log.lines()
        .map(|line| {
            let mut fields = line.splitn(4, ' ');
            let record = Record {
                time: fields.next().unwrap().to_owned(),
                stream: fields.next().unwrap().to_owned(),
                partial: match fields.next() {
                    Some("P") => true,
                    Some("F") => false,
                    other => panic!("bad tag {other:?} in {line:?}"),
                },
                text: fields.next().expect("a text field").to_owned(),
            };
            assert!(time.is_match(&record.time), "bad time in {line:.100?}");
            assert!(
                record.stream == "stdout" || record.stream == "stderr",
                "bad stream in {line:.100?}"
            );
            record
        })
        .collect()
}

/// The lines of `stream` with partials joined, the sizes of the pieces of its first line that
/// came in more than one record, and the trailing partial text if the stream ends with one.
fn lines_of(records: &[Record], stream: &str) -> (Vec<String>, Vec<usize>, Option<String>) {
    let mut lines = Vec::new();
    let mut split = Vec::new();
    let mut pending = String::new();
    let mut pieces = Vec::new();
    for record in records.iter().filter(|r| r.stream == stream) {
        pending.push_str(&record.text);
        pieces.push(record.text.len());
        if !record.partial {
            lines.push(std::mem::take(&mut pending));
            if pieces.len() > 1 && split.is_empty() {
                split = pieces.clone();
            }
            pieces.clear();
        }
    }
    (lines, split, (!pieces.is_empty()).then_some(pending))
}

/// What a bundle's `config.json` says that matters for finding containers: annotations,
/// environment, root and cgroup; plus the files in the bundle directory.
fn describe_bundle(bundle: &Path) -> String {
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bundle.join("config.json")).unwrap()).unwrap();
    let mut files: Vec<String> = std::fs::read_dir(bundle)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let kind = e.file_type().unwrap();
            let suffix = if kind.is_dir() {
                "/"
            } else if kind.is_symlink() {
                "@"
            } else {
                ""
            };
            format!("{}{suffix}", e.file_name().to_string_lossy())
        })
        .collect();
    files.sort();
    let mounts: Vec<String> = config["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| format!("{} <- {} ({})", m["destination"], m["source"], m["type"]))
        .collect();
    let mounts = mounts.join("\n    ");
    format!(
        "bundle {}\n  files: {files:?}\n  annotations: {}\n  process.args: {}\n  process.env: {}\n  root.path: {}\n  linux.cgroupsPath: {}\n  mounts:\n    {mounts}",
        bundle.display(),
        serde_json::to_string_pretty(&config["annotations"]).unwrap(),
        config["process"]["args"],
        serde_json::to_string_pretty(&config["process"]["env"]).unwrap(),
        config["root"]["path"],
        config["linux"]["cgroupsPath"],
    )
}

/// Whether process `pid` is gone (or a zombie) within 5 s.
fn gone(pid: u32) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => return true,
            Ok(stat)
                if stat
                    .rsplit_once(") ")
                    .is_some_and(|(_, rest)| rest.starts_with('Z')) =>
            {
                return true;
            }
            Ok(_) if Instant::now() > deadline => return false,
            Ok(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// Whether the node's cgroup is gone from every hierarchy.
fn cgroups_gone(cgroup_root: &str) -> bool {
    std::fs::read_dir("/sys/fs/cgroup")
        .unwrap()
        .all(|hierarchy| {
            !hierarchy
                .unwrap()
                .path()
                .join(cgroup_root.trim_start_matches('/'))
                .exists()
        })
}

#[test]
fn pods_write_real_cri_logs() {
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let node_dir = tmp.path().join("node");
    std::fs::create_dir(&node_dir).unwrap();
    let node = CriNode::start(&node_dir);
    eprintln!("node up in {:.2?}", started.elapsed());

    let (namespace, name, uid) = ("default", "printer", "7d3c0c8e-5d1e-4c57-a5e4-0f3a1b2c3d4e");
    let log_dir = tmp
        .path()
        .join(format!("var/log/pods/{namespace}_{name}_{uid}"));
    let pod = node.run_pod(namespace, name, uid, &log_dir);
    let sleeper = node.run_container(
        &pod,
        "sleeper",
        &["/bin/sh", "-c", "echo sleeping; exec sleep 3600"],
        &[("ROLE", "sleeper")],
    );
    let printer = node.run_container(
        &pod,
        "printer",
        &["/bin/sh", "-c", SCRIPT],
        &[("GREETING", "hello from the environment")],
    );
    assert_eq!(printer.log_path, log_dir.join("printer/0.log"));
    let exit = node.wait_exited(&printer, Duration::from_secs(60));
    assert_eq!(exit, 0, "the printer's exit code");
    eprintln!("printer done in {:.2?}", started.elapsed());

    let log = std::fs::read_to_string(&printer.log_path).unwrap();
    let records = parse(&log);
    let (stdout, long_pieces, stdout_tail) = lines_of(&records, "stdout");
    let (stderr, _, stderr_tail) = lines_of(&records, "stderr");
    let mut expected: Vec<String> = (1..=1000).map(|i| format!("out {i}")).collect();
    expected.push("env hello from the environment".to_owned());
    expected.push("x".repeat(LONG));
    expected.push("after-long".to_owned());
    assert_eq!(stdout.len(), expected.len(), "stdout lines");
    for (got, want) in stdout.iter().zip(&expected) {
        assert!(got == want, "stdout line {got:.80?} != {want:.80?}");
    }
    assert_eq!(
        long_pieces.iter().sum::<usize>(),
        LONG,
        "the long line's pieces"
    );
    assert_eq!(
        long_pieces.len(),
        LONG.div_ceil(CRI_MAX_LINE),
        "the long line is cut at {CRI_MAX_LINE} bytes: {long_pieces:?}"
    );
    assert!(
        long_pieces[..long_pieces.len() - 1]
            .iter()
            .all(|n| *n == CRI_MAX_LINE),
        "the long line's partial pieces are {CRI_MAX_LINE} bytes: {long_pieces:?}"
    );
    assert_eq!(stdout_tail.as_deref(), Some("no newline at the end"));
    let last = records.iter().rfind(|r| r.stream == "stdout").unwrap();
    assert!(
        last.partial && last.text == "no newline at the end",
        "{last:?}"
    );
    let expected_err: Vec<String> = (1..=10).map(|i| format!("err {}", i * 100)).collect();
    assert_eq!(stderr, expected_err, "stderr lines");
    assert_eq!(stderr_tail, None);

    // The sleeper runs: its bundle, its process and its cgroup are there.
    let pid = node.container_pid(&sleeper).expect("the sleeper's pid");
    let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert!(
        cgroups.contains(&format!("{}/{}", pod.cgroup_parent, sleeper.id)),
        "the sleeper's cgroups: {cgroups}"
    );
    let sandbox_bundle = node.bundle_dir().join(&pod.id);
    let sleeper_bundle = node.bundle_dir().join(&sleeper.id);
    eprintln!(
        "--- sandbox {}\n{}",
        pod.id,
        describe_bundle(&sandbox_bundle)
    );
    eprintln!(
        "--- container {}\n{}",
        sleeper.id,
        describe_bundle(&sleeper_bundle)
    );
    eprintln!("--- /proc/{pid}/cgroup of the sleeper\n{cgroups}");
    assert!(
        !node.bundle_dir().join(&printer.id).exists(),
        "an exited container's bundle is deleted"
    );
    let sleeper_log = std::fs::read_to_string(&sleeper.log_path).unwrap();
    assert!(
        sleeper_log.ends_with(" stdout F sleeping\n"),
        "{sleeper_log:?}"
    );

    node.remove_pod(&pod);
    assert!(
        !sandbox_bundle.exists() && !sleeper_bundle.exists(),
        "bundles left"
    );
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "the sleeper still runs"
    );
    assert_eq!(
        mounts_under(tmp.path()),
        Vec::<std::path::PathBuf>::new(),
        "mounts left"
    );
    assert!(
        printer.log_path.exists(),
        "log files stay after the pod is removed"
    );
    drop(node);
    assert_eq!(
        mounts_under(tmp.path()),
        Vec::<std::path::PathBuf>::new(),
        "mounts left"
    );
    tmp.close().expect("the node's directory can be removed");
    eprintln!("test done in {:.2?}", started.elapsed());
}

/// A node dropped with its pods still running — a test that failed half-way — or whose
/// containerd died leaves nothing behind: no process, no mount, no cgroup.
#[test]
fn a_dropped_node_leaves_nothing_behind() {
    let tmp = tempfile::tempdir().unwrap();
    for containerd_dies in [false, true] {
        let dir = tmp.path().join(format!("node-{containerd_dies}"));
        std::fs::create_dir(&dir).unwrap();
        let node = CriNode::start(&dir);
        let pod = node.run_pod("default", "left", "0b5e", &dir.join("logs"));
        let sleeper = node.run_container(&pod, "sleeper", &["/bin/sleep", "3600"], &[]);
        let pid = node.container_pid(&sleeper).expect("the sleeper's pid");
        assert!(!mounts_under(&dir).is_empty(), "a running pod has mounts");
        if containerd_dies {
            let containerd = rustix::process::Pid::from_raw(node.containerd_pid() as i32).unwrap();
            rustix::process::kill_process(containerd, rustix::process::Signal::KILL).unwrap();
        }
        let cgroup_root = node.cgroup_root().to_owned();
        drop(node);
        assert!(
            gone(pid),
            "the sleeper still runs (containerd died: {containerd_dies})"
        );
        assert_eq!(
            mounts_under(&dir),
            Vec::<std::path::PathBuf>::new(),
            "mounts left"
        );
        assert!(cgroups_gone(&cgroup_root), "cgroups left");
    }
    tmp.close().expect("the nodes' directory can be removed");
}
