//! A pod log directory swapped for a symlink to a host directory (what anyone who can write
//! under `/var/log/pods` can do) must never get the host's files read: before the start, at
//! runtime, during the wait for a container's bundle, and between an event and the open. Real
//! binary, real files; every host file holds `SECRET`, and none may reach the output.
#![allow(clippy::unwrap_used, reason = "tests fail loudly on broken invariants")]

mod common;

use std::io::Write;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::time::Duration;

use common::{Collector, records, wait_for_lines};

fn config(root: &Path) -> String {
    let runtime = format!(
        "kubernetes:\n  runtime_dirs: [\"{}/run/task\"]\n",
        root.display()
    );
    common::file_sink_config(root, &runtime, "pods", "var/log/pods/**/*.log", "json")
}

/// A host directory with a `0.log` (and `1.log`) that must never be read.
fn host_dir(root: &Path, name: &str) -> std::path::PathBuf {
    let dir = root.join("host").join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("0.log"), format!("SECRET {name} 0\n")).unwrap();
    std::fs::write(dir.join("1.log"), format!("SECRET {name} 1\n")).unwrap();
    dir
}

fn append(path: &Path, line: &str) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    writeln!(f, "{line}").unwrap();
}

#[test]
fn a_directory_swapped_for_a_symlink_never_gets_host_files_read() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let pods = root.join("var/log/pods");
    // A runtime directory without bundles: empty container logs wait for theirs (500 ms).
    std::fs::create_dir_all(root.join("run/task")).unwrap();

    // Before the start: one legitimate pod, one whose container directory is a link.
    std::fs::create_dir_all(pods.join("ns_legit_uid1/app")).unwrap();
    append(&pods.join("ns_legit_uid1/app/0.log"), "legit before start");
    std::fs::create_dir_all(pods.join("ns_early_uid2")).unwrap();
    symlink(host_dir(root, "early"), pods.join("ns_early_uid2/app")).unwrap();
    // And a pod directory that is itself a link.
    symlink(host_dir(root, "podlink"), pods.join("ns_podlink_uid3")).unwrap();

    let collector = Collector::start(root, &config(root));
    let out = root.join("out/out.ndjson");
    assert_eq!(wait_for_lines(&out, 1, Duration::from_secs(10)), 1);

    // At runtime: a pod that was read, its container directory renamed away and replaced by
    // a link; the host's files grow and new ones appear.
    std::fs::create_dir_all(pods.join("ns_runtime_uid4/app")).unwrap();
    append(&pods.join("ns_runtime_uid4/app/0.log"), "legit at runtime");
    assert_eq!(wait_for_lines(&out, 2, Duration::from_secs(10)), 2);
    let runtime_host = host_dir(root, "runtime");
    std::fs::rename(
        pods.join("ns_runtime_uid4/app"),
        pods.join("ns_runtime_uid4/app.old"),
    )
    .unwrap();
    symlink(&runtime_host, pods.join("ns_runtime_uid4/app")).unwrap();
    append(&runtime_host.join("0.log"), "SECRET runtime grows");
    append(&runtime_host.join("2.log"), "SECRET runtime new");
    // The real file, under its directory's new name, is still the pod's.
    append(
        &pods.join("ns_runtime_uid4/app.old/0.log"),
        "legit after the swap",
    );

    // During the wait for the bundle: an empty container log, its directory swapped within
    // the 500 ms it waits.
    let bundle_host = host_dir(root, "bundle");
    std::fs::create_dir_all(pods.join("ns_bundle_uid5/app")).unwrap();
    std::fs::File::create(pods.join("ns_bundle_uid5/app/0.log")).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    std::fs::rename(
        pods.join("ns_bundle_uid5/app"),
        pods.join("ns_bundle_uid5/app.old"),
    )
    .unwrap();
    symlink(&bundle_host, pods.join("ns_bundle_uid5/app")).unwrap();

    // Between the event and the open: created and swapped at once, many times over.
    let race_host = host_dir(root, "race");
    for i in 0..30 {
        let pod = pods.join(format!("ns_race{i}_uid{i}"));
        std::fs::create_dir_all(pod.join("app")).unwrap();
        append(&pod.join("app/0.log"), &format!("legit race {i}"));
        std::fs::rename(pod.join("app"), pod.join("app.old")).unwrap();
        symlink(&race_host, pod.join("app")).unwrap();
    }

    // Give every deferred open and retry its time, then look at what came out.
    std::thread::sleep(Duration::from_secs(2));
    let refused = collector.metric("ringtail_symlinks_refused_total{source=\"pods\"}");
    let (status, log) = collector.stop();
    assert!(status.success(), "{log}");
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(
        !text.contains("SECRET"),
        "a host file was read through a symlinked directory:\n{text}"
    );
    let messages: Vec<String> = records(&out)
        .iter()
        .map(|r| r["message"].as_str().unwrap().to_string())
        .collect();
    for legit in [
        "legit before start",
        "legit at runtime",
        "legit after the swap",
    ] {
        assert!(
            messages.iter().any(|m| m == legit),
            "{legit:?} missing: {messages:?}"
        );
    }
    assert!(refused >= 1.0, "refusals are counted ({refused}):\n{log}");
    assert!(
        log.contains("refusing a path with a symlink below its glob root"),
        "refusals are logged:\n{log}"
    );
}
