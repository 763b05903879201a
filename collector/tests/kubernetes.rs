//! Kubernetes: container metadata, filters and per-container declarations.
//!
//! - On a real node as far as this machine allows: containerd's CRI plugin and runc run pods
//!   whose containers write real CRI log files ([`common::cri`]); ringtail delivers every
//!   line, with the metadata, up to the last one written before the pod is removed.
//! - On a node layout on disk — kubelet log directories, containerd OCI bundles
//!   (`config.json` with the CRI annotations and the process env, `init.pid`) — with real
//!   processes: the declaring container is a real process chrooted into its own root and
//!   placed in its own cgroup.
#![allow(clippy::unwrap_used, reason = "tests fail loudly on broken invariants")]

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::cri::{APP_IMAGE, CriNode};
use common::{Collector, records};

const WAIT: Duration = Duration::from_secs(20);

/// A container id: 64 hex digits made from `n`.
fn id(n: u8) -> String {
    format!("{n:02x}").repeat(32)
}

/// containerd's bundle of a pod sandbox.
fn sandbox(bundles: &Path, sandbox: &str, namespace: &str, pod: &str, log_dir: &Path) {
    bundle(
        bundles,
        sandbox,
        serde_json::json!({
            "io.kubernetes.cri.container-type": "sandbox",
            "io.kubernetes.cri.sandbox-id": sandbox,
            "io.kubernetes.cri.sandbox-name": pod,
            "io.kubernetes.cri.sandbox-namespace": namespace,
            "io.kubernetes.cri.sandbox-log-directory": log_dir.to_str().unwrap(),
        }),
        &[],
    );
}

/// containerd's bundle of an application container in `sandbox`.
fn container(bundles: &Path, id: &str, sandbox: &str, name: &str, image: &str, env: &[&str]) {
    bundle(
        bundles,
        id,
        serde_json::json!({
            "io.kubernetes.cri.container-type": "container",
            "io.kubernetes.cri.container-name": name,
            "io.kubernetes.cri.image-name": image,
            "io.kubernetes.cri.sandbox-id": sandbox,
        }),
        env,
    );
}

fn bundle(bundles: &Path, id: &str, annotations: serde_json::Value, env: &[&str]) {
    let dir = bundles.join("k8s.io").join(id);
    std::fs::create_dir_all(&dir).unwrap();
    let spec = serde_json::json!({
        "ociVersion": "1.0.2-dev",
        "process": {"args": ["/pause"], "env": env, "cwd": "/"},
        "root": {"path": "rootfs"},
        "annotations": annotations,
    });
    // Written and renamed, as containerd does, so a reader never sees half of it.
    let tmp = dir.join(".config.json.tmp");
    std::fs::write(&tmp, spec.to_string()).unwrap();
    std::fs::rename(&tmp, dir.join("config.json")).unwrap();
}

/// Appends CRI lines `<prefix> <i>` for `range` on `stream`.
fn cri_lines(path: &Path, prefix: &str, range: std::ops::Range<u32>, stream: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    for i in range {
        writeln!(f, "2026-11-22T10:00:00.{i:09}Z {stream} F {prefix} {i}").unwrap();
    }
}

/// A process chrooted into `root`, in a cgroup of its own named like a containerd
/// container's (`cri-containerd-<id>.scope`); killed and its cgroup removed on drop.
struct FakeContainer {
    child: Child,
    cgroup: PathBuf,
}

impl FakeContainer {
    fn start(root: &Path, id: &str) -> FakeContainer {
        std::fs::create_dir_all(root.join("bin")).unwrap();
        std::fs::copy("/usr/bin/busybox", root.join("bin/busybox")).unwrap();
        let child = Command::new("chroot")
            .arg(root)
            .args(["/bin/busybox", "sleep", "600"])
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let cgroup = PathBuf::from(format!(
            "/sys/fs/cgroup/ringtail-kubernetes-test-{}/cri-containerd-{id}.scope",
            std::process::id()
        ));
        std::fs::create_dir_all(&cgroup).unwrap();
        std::fs::write(cgroup.join("cgroup.procs"), child.id().to_string()).unwrap();
        // Like runc, whose pid file is written once the process is inside its root.
        let proc_root = PathBuf::from(format!("/proc/{}/root", child.id()));
        let deadline = std::time::Instant::now() + WAIT;
        while std::fs::read_link(&proc_root).ok().as_deref() != Some(root) {
            assert!(
                std::time::Instant::now() < deadline,
                "chroot did not happen"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        FakeContainer { child, cgroup }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for FakeContainer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir(&self.cgroup);
        if let Some(parent) = self.cgroup.parent() {
            let _ = std::fs::remove_dir(parent);
        }
    }
}

/// Waits until `out` holds at least `n` records; on a timeout, fails with how many came from
/// each file and the collector's log.
fn wait_records(collector: &Collector, out: &Path, n: usize) {
    let deadline = std::time::Instant::now() + WAIT;
    while records(out).len() < n {
        if std::time::Instant::now() > deadline {
            let mut by_file = std::collections::BTreeMap::<String, usize>::new();
            for r in records(out) {
                *by_file
                    .entry(format!("{} {}", r["file"], r["stream"]))
                    .or_default() += 1;
            }
            panic!(
                "expected {n} records, got {:#?}\n{}",
                by_file,
                collector.stderr()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The `message`s of the records whose `source` is `source`, for the file ending in `file`.
fn messages(records: &[serde_json::Value], file: &str) -> Vec<String> {
    records
        .iter()
        .filter(|r| r["file"].as_str().is_some_and(|f| f.ends_with(file)))
        .map(|r| r["message"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn records_carry_metadata_filters_select_and_declared_files_are_collected() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let pods = dir.join("var/log/pods");
    let bundles = dir.join("run/containerd/io.containerd.runtime.v2.task");
    std::fs::create_dir_all(bundles.join("k8s.io")).unwrap();

    // shop/web-1: read by `shop`, with everything its bundle says.
    let web_dir = pods.join("shop_web-1_uid-web");
    sandbox(&bundles, &id(1), "shop", "web-1", &web_dir);
    container(
        &bundles,
        &id(2),
        &id(1),
        "nginx",
        "registry.local/nginx:1.27",
        &["PATH=/bin", "TEAM=payments"],
    );
    cri_lines(&web_dir.join("nginx/0.log"), "web", 0..100, "stdout");
    // shop/vault-1: `shop` excludes TEAM=secret; it falls through to `rest`.
    let vault_dir = pods.join("shop_vault-1_uid-vault");
    sandbox(&bundles, &id(3), "shop", "vault-1", &vault_dir);
    container(
        &bundles,
        &id(4),
        &id(3),
        "vault",
        "vault:1",
        &["TEAM=secret"],
    );
    cri_lines(&vault_dir.join("vault/0.log"), "vault", 0..50, "stderr");
    // kube-system/coredns-1: read by no source.
    let dns_dir = pods.join("kube-system_coredns-1_uid-dns");
    sandbox(&bundles, &id(5), "kube-system", "coredns-1", &dns_dir);
    container(&bundles, &id(6), &id(5), "coredns", "coredns:1", &[]);
    cri_lines(&dns_dir.join("coredns/0.log"), "dns", 0..50, "stdout");
    // A pod whose bundle is gone already (removed before ringtail started): path metadata.
    let old_dir = pods.join("shop_old-1_uid-old");
    cri_lines(&old_dir.join("app/3.log"), "old", 0..10, "stdout");

    let out = dir.join("out.ndjson");
    let config = format!(
        r#"data_dir: {dir}/data
api:
  listen: 127.0.0.1:{{port}}
kubernetes:
  node_name: node-test-1
  runtime_dirs: ["{bundles}"]
sources:
  - name: declared
    declared: true
    tags: {{cluster: test}}
    containers:
      exclude:
        - namespace: '^kube-system$'
  - name: shop
    paths: ["{pods}/*/*/*.log"]
    format: cri
    containers:
      include:
        - namespace: '^shop$'
      exclude:
        - env: {{TEAM: '^secret$'}}
  - name: rest
    paths: ["{pods}/*/*/*.log"]
    format: cri
    containers:
      exclude:
        - namespace: '^kube-system$'
sinks:
  - name: out
    type: file
    path: {out}
    sync_interval: 100ms
"#,
        dir = dir.display(),
        bundles = bundles.display(),
        pods = pods.display(),
        out = out.display(),
    );
    let collector = Collector::start(dir, &config);
    let expected_static = 100 + 50 + 10;
    wait_records(&collector, &out, expected_static);

    // A container that declares its logs starts now: created (bundle, no pid yet), then
    // running (init.pid), as containerd does it.
    let app_dir = pods.join("shop_app-1_uid-app");
    let rootfs = dir.canonicalize().unwrap().join("rootfs-app");
    std::fs::create_dir_all(rootfs.join("logs")).unwrap();
    std::fs::create_dir_all(rootfs.join("etc")).unwrap();
    // Files the host has too, with other contents: links must find the container's.
    std::fs::write(rootfs.join("etc/hostname"), "the container's hostname\n").unwrap();
    std::fs::write(rootfs.join("etc/passwd"), "the container's passwd\n").unwrap();
    sandbox(&bundles, &id(7), "shop", "app-1", &app_dir);
    container(
        &bundles,
        &id(8),
        &id(7),
        "app",
        "app:2",
        &[
            "RINGTAIL_LOGS_FILES=/logs/*.log",
            "RINGTAIL_LOGS_FILES_TAGS=team=app,kind=file",
            "RINGTAIL_LOGS_CONSOLE=stdout",
            "RINGTAIL_LOGS_BROKEN_FORMAT=xml",
            "RINGTAIL_LOGS_BROKEN=/other/*.log",
        ],
    );
    let app = FakeContainer::start(&rootfs, &id(8));
    std::fs::write(
        bundles.join("k8s.io").join(id(8)).join("init.pid"),
        app.pid().to_string(),
    )
    .unwrap();
    collector.wait_until(WAIT, "the declarations", || {
        collector.metric("ringtail_declarations_active") >= 2.0
    });
    // Written inside the container's root; links planted to escape it resolve inside it.
    let mut app_log = std::fs::File::create(rootfs.join("logs/app.log")).unwrap();
    for i in 0..200 {
        writeln!(app_log, "app file {i}").unwrap();
    }
    std::os::unix::fs::symlink("/etc/hostname", rootfs.join("logs/abs-link.log")).unwrap();
    std::os::unix::fs::symlink(
        "../../../../../../etc/passwd",
        rootfs.join("logs/rel-link.log"),
    )
    .unwrap();
    cri_lines(&app_dir.join("app/0.log"), "console", 0..30, "stdout");
    let expected = expected_static + 200 + 1 + 1 + 30;
    wait_records(&collector, &out, expected);
    std::thread::sleep(Duration::from_millis(300));
    let all = records(&out);
    assert_eq!(all.len(), expected, "nothing more, nothing twice");

    // Metadata from the path and the bundle.
    let web: Vec<&serde_json::Value> = all
        .iter()
        .filter(|r| r["file"].as_str().unwrap().ends_with("nginx/0.log"))
        .collect();
    assert_eq!(web.len(), 100);
    for r in &web {
        assert_eq!(r["source"], "shop");
        assert_eq!(
            r["k8s"],
            serde_json::json!({"namespace": "shop", "pod": "web-1", "pod_uid": "uid-web",
                "container": "nginx", "restart": 0})
        );
        assert_eq!(r["container_id"], id(2).as_str());
        assert_eq!(r["image"], "registry.local/nginx:1.27");
        assert_eq!(r["node"], "node-test-1");
        assert!(r.get("env").is_none() && !r.to_string().contains("payments"));
    }
    assert_eq!(
        messages(&all, "nginx/0.log"),
        (0..100).map(|i| format!("web {i}")).collect::<Vec<_>>()
    );
    // Filters: vault fell through to `rest`; coredns was read by nobody.
    let vault: Vec<&serde_json::Value> = all
        .iter()
        .filter(|r| r["file"].as_str().unwrap().ends_with("vault/0.log"))
        .collect();
    assert_eq!(vault.len(), 50);
    assert!(vault.iter().all(|r| r["source"] == "rest"
        && r["container_id"] == id(4).as_str()
        && r["stream"] == "stderr"));
    assert!(messages(&all, "coredns/0.log").is_empty());
    assert!(collector.metric("ringtail_files_filtered_total{source=\"shop\"}") >= 1.0);
    // A pod removed before ringtail saw its bundle: what its path says.
    let old: Vec<&serde_json::Value> = all
        .iter()
        .filter(|r| r["file"].as_str().unwrap().ends_with("app/3.log"))
        .collect();
    assert_eq!(old.len(), 10);
    assert_eq!(old[0]["k8s"]["restart"], 3);
    assert_eq!(old[0]["k8s"]["pod"], "old-1");
    assert!(old[0].get("container_id").is_none());

    // Declared: in-container files through the container's root, with its tags.
    let declared_file = format!("/proc/{}/root/logs/app.log", app.pid());
    let files: Vec<&serde_json::Value> = all
        .iter()
        .filter(|r| r["file"] == declared_file.as_str())
        .collect();
    assert_eq!(files.len(), 200);
    for r in &files {
        assert_eq!(r["source"], "declared");
        assert_eq!(
            r["tags"],
            serde_json::json!({"cluster": "test", "team": "app", "kind": "file"})
        );
        assert_eq!(r["k8s"]["pod"], "app-1");
        assert_eq!(r["container_id"], id(8).as_str());
        assert_eq!(r["image"], "app:2");
    }
    for (link, file) in [("abs-link.log", "hostname"), ("rel-link.log", "passwd")] {
        assert_eq!(
            messages(&all, link),
            vec![format!("the container's {file}")],
            "{link} resolves inside the container's root"
        );
    }
    // Declared stdout: the container's CRI log, by the declaration, not by `shop`.
    let console: Vec<&serde_json::Value> = all
        .iter()
        .filter(|r| r["file"].as_str().unwrap().ends_with("app/0.log"))
        .collect();
    assert_eq!(console.len(), 30);
    for r in &console {
        assert_eq!(r["source"], "declared", "{r}");
        assert_eq!(r["tags"], serde_json::json!({"cluster": "test"}), "{r}");
        assert_eq!(r["k8s"]["container"], "app", "{r}");
        assert_eq!(r["stream"], "stdout", "{r}");
    }
    assert_eq!(collector.metric("ringtail_declarations_refused_total"), 1.0);
    assert!(collector.stderr().contains("RINGTAIL_LOGS_BROKEN_FORMAT"));

    // The container goes away: its declared sources are dropped, files read already stay.
    drop(app);
    std::fs::remove_dir_all(bundles.join("k8s.io").join(id(8))).unwrap();
    collector.wait_until(WAIT, "the declarations to be dropped", || {
        collector.metric("ringtail_declarations_active") == 0.0
    });
    let (status, log) = collector.stop();
    assert!(status.success(), "{log}");
}

/// The printer's script: numbered lines on stdout with every 100th echoed on stderr, a line
/// over 16 KiB (split by the runtime into `P` pieces and an `F`), and output without a final
/// newline, written right before the container exits.
const PRINTER: &str = r#"
i=1
while [ $i -le 2000 ]; do
  echo "out $i"
  if [ $((i % 100)) -eq 0 ]; then echo "err $i" >&2; fi
  i=$((i + 1))
done
head -c 40000 /dev/zero | tr '\0' x
echo
printf 'no newline at the end'
"#;

/// A container that declares a file of its own and writes it.
const DECLARER: &str = r#"
mkdir -p /data
i=1
while [ $i -le 500 ]; do echo "declared $i" >> /data/app.log; i=$((i + 1)); done
sleep 1
"#;

/// A real containerd node in a fresh directory, with kubelet's pod log directory made.
struct RealNode {
    dir: PathBuf,
    node: CriNode,
    pods: PathBuf,
    /// Last, so that it is removed after the node stopped.
    _tmp: tempfile::TempDir,
}

impl RealNode {
    fn start() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().canonicalize().unwrap();
        let node = CriNode::start(&dir);
        let pods = dir.join("var/log/pods");
        std::fs::create_dir_all(&pods).unwrap();
        Self {
            dir,
            node,
            pods,
            _tmp: tmp,
        }
    }

    /// The configuration's first lines: the data directory, the API, and a `kubernetes:`
    /// section with the node's runtime directory (and its CRI socket, with `socket`), to
    /// which a test adds more `kubernetes` keys, its sources and its sinks.
    fn config_head(&self, socket: bool) -> String {
        let mut head = format!(
            "data_dir: {dir}/data\napi:\n  listen: 127.0.0.1:{{port}}\nkubernetes:\n  \
             runtime_dirs: [\"{runtime}\"]\n",
            dir = self.dir.display(),
            runtime = self.node.bundle_dir().parent().unwrap().display(),
        );
        if socket {
            head += &format!("  cri_socket: {}\n", self.node.socket().display());
        }
        head
    }
}

#[test]
fn a_real_pod_is_delivered_whole_with_its_metadata_after_removal() {
    let real = RealNode::start();
    let (dir, node, pods) = (&real.dir, &real.node, &real.pods);
    let out = dir.join("out.ndjson");
    let config = format!(
        r#"{head}  node_name: node-cri
sources:
  - name: declared
    declared: true
  - name: pods
    paths: ["{pods}/*/*/*.log"]
    format: cri
    partial_timeout: 1s
sinks:
  - name: out
    type: file
    path: {out}
    sync_interval: 100ms
"#,
        head = real.config_head(false),
        pods = pods.display(),
        out = out.display(),
    );
    let collector = Collector::start(dir, &config);

    let uid = "5f0c9a3e-1111-4c57-a5e4-0f3a1b2c3d4e";
    let pod = node.run_pod(
        "shop",
        "printer-1",
        uid,
        &pods.join(format!("shop_printer-1_{uid}")),
    );
    let declarer = node.run_container(
        &pod,
        "declarer",
        &["/bin/sh", "-c", DECLARER],
        &[
            ("RINGTAIL_LOGS_APP", "/data/*.log"),
            ("RINGTAIL_LOGS_APP_TAGS", "kind=declared"),
        ],
    );
    let printer = node.run_container(&pod, "printer", &["/bin/sh", "-c", PRINTER], &[]);
    assert_eq!(node.wait_exited(&printer, WAIT), 0);
    assert_eq!(node.wait_exited(&declarer, WAIT), 0);
    // Stopped and removed at once: the last lines were written milliseconds ago.
    node.stop_pod(&pod);
    node.remove_pod(&pod);

    let expected = 2000 + 20 + 1 + 1 + 500;
    wait_records(&collector, &out, expected);
    std::thread::sleep(Duration::from_millis(300));
    let all = records(&out);
    assert_eq!(all.len(), expected, "nothing twice");

    let of = |name: &str| -> Vec<&serde_json::Value> {
        all.iter()
            .filter(|r| r["k8s"]["container"] == name)
            .collect()
    };
    let printed = of("printer");
    assert_eq!(printed.len(), 2000 + 20 + 1 + 1);
    for r in &printed {
        assert_eq!(r["source"], "pods", "{r}");
        assert_eq!(
            r["k8s"],
            serde_json::json!({"namespace": "shop", "pod": "printer-1", "pod_uid": uid,
                "container": "printer", "restart": 0}),
            "{r}"
        );
        assert_eq!(r["container_id"], printer.id.as_str(), "{r}");
        assert_eq!(r["image"], APP_IMAGE, "{r}");
        assert_eq!(r["node"], "node-cri", "{r}");
    }
    let stream = |name: &str| -> Vec<String> {
        printed
            .iter()
            .filter(|r| r["stream"] == name)
            .map(|r| r["message"].as_str().unwrap().to_string())
            .collect()
    };
    let mut stdout: Vec<String> = (1..=2000).map(|i| format!("out {i}")).collect();
    stdout.push("x".repeat(40_000));
    stdout.push("no newline at the end".to_string());
    assert_eq!(stream("stdout"), stdout);
    assert_eq!(
        collector.metric("ringtail_partial_lines_flushed_total{source=\"pods\"}"),
        1.0,
        "the last output, without a newline, came after partial_timeout"
    );
    assert_eq!(
        stream("stderr"),
        (1..=20)
            .map(|i| format!("err {}", i * 100))
            .collect::<Vec<_>>()
    );

    // The declared file, read inside the container's root while it ran.
    let declared = of("declarer");
    assert_eq!(declared.len(), 500);
    let messages: Vec<&str> = declared
        .iter()
        .map(|r| r["message"].as_str().unwrap())
        .collect();
    assert_eq!(
        messages,
        (1..=500)
            .map(|i| format!("declared {i}"))
            .collect::<Vec<_>>()
    );
    for r in &declared {
        assert_eq!(r["source"], "declared");
        assert_eq!(r["tags"], serde_json::json!({"kind": "declared"}));
        assert_eq!(r["container_id"], declarer.id.as_str());
        assert!(
            r["file"].as_str().unwrap().ends_with("/root/data/app.log"),
            "{r}"
        );
    }
    let (status, log) = collector.stop();
    assert!(status.success(), "{log}");
}

/// Pod labels and annotations come from the runtime's CRI socket: a pod created after
/// ringtail started (its files are found, the runtime is asked again) and removed right after
/// its last line; every record carries its labels and annotations, kubelet's `io.kubernetes.*`
/// keys left out.
#[test]
fn records_carry_the_pod_labels_and_annotations_the_runtime_holds() {
    let real = RealNode::start();
    let (dir, node, pods) = (&real.dir, &real.node, &real.pods);
    let out = dir.join("out.ndjson");
    let config = format!(
        r#"{head}sources:
  - name: pods
    paths: ["{pods}/*/*/*.log"]
    format: cri
sinks:
  - name: out
    type: file
    path: {out}
    sync_interval: 100ms
"#,
        head = real.config_head(true),
        pods = pods.display(),
        out = out.display(),
    );
    let collector = Collector::start(dir, &config);
    let uid = "7a1c2b3d-2222-4c57-a5e4-0f3a1b2c3d4e";
    let pod = node.run_pod_with(
        "shop",
        "web-0",
        uid,
        &pods.join(format!("shop_web-0_{uid}")),
        &[("app", "web"), ("team", "payments")],
        &[
            ("example.com/owner", "payments-team"),
            ("note", "say \"hi\""),
        ],
    );
    let app = node.run_container(
        &pod,
        "app",
        &[
            "/bin/sh",
            "-c",
            "i=1; while [ $i -le 200 ]; do echo line $i; i=$((i+1)); done",
        ],
        &[],
    );
    assert_eq!(node.wait_exited(&app, WAIT), 0);
    node.stop_pod(&pod);
    node.remove_pod(&pod);
    wait_records(&collector, &out, 200);
    let all = records(&out);
    assert_eq!(all.len(), 200);
    for r in &all {
        assert_eq!(
            r["k8s"]["labels"],
            serde_json::json!({"app": "web", "team": "payments"}),
            "{r}"
        );
        let annotations = r["k8s"]["annotations"].as_object().unwrap();
        assert_eq!(annotations["example.com/owner"], "payments-team", "{r}");
        assert_eq!(annotations["note"], "say \"hi\"", "{r}");
        assert!(
            annotations.keys().all(|k| !k.starts_with("io.kubernetes.")),
            "{r}"
        );
        assert_eq!(r["k8s"]["pod"], "web-0", "{r}");
    }
    let (status, log) = collector.stop();
    assert!(status.success(), "{log}");
    assert!(
        log.contains("pod labels and annotations come from the runtime's CRI socket"),
        "{log}"
    );
}

/// No CRI socket: said once at start-up; records carry no labels, nothing else changes.
#[test]
fn without_a_cri_socket_records_carry_no_labels() {
    let dir = tempfile::tempdir().unwrap();
    let uid = "0b1c2d3e-3333-4c57-a5e4-0f3a1b2c3d4e";
    let container = dir
        .path()
        .join(format!("var/log/pods/shop_web-0_{uid}/app"));
    std::fs::create_dir_all(&container).unwrap();
    let out = dir.path().join("out.ndjson");
    let config = format!(
        r#"data_dir: {dir}/data
api:
  listen: 127.0.0.1:{{port}}
kubernetes:
  cri_socket: {dir}/no-such.sock
sources:
  - name: pods
    paths: ["{dir}/var/log/pods/*/*/*.log"]
    format: cri
sinks:
  - name: out
    type: file
    path: {out}
    sync_interval: 100ms
"#,
        dir = dir.path().display(),
        out = out.display(),
    );
    std::fs::write(
        container.join("0.log"),
        "2026-12-06T10:00:00.000000000Z stdout F hello\n",
    )
    .unwrap();
    let collector = Collector::start(dir.path(), &config);
    wait_records(&collector, &out, 1);
    std::fs::write(
        container.join("1.log"),
        "2026-12-06T10:00:01.000000000Z stdout F again\n",
    )
    .unwrap();
    wait_records(&collector, &out, 2);
    let all = records(&out);
    for r in &all {
        assert_eq!(
            r["k8s"],
            serde_json::json!({"namespace": "shop", "pod": "web-0", "pod_uid": uid,
                "container": "app", "restart": r["k8s"]["restart"]}),
            "{r}"
        );
    }
    let (status, log) = collector.stop();
    assert!(status.success(), "{log}");
    assert_eq!(
        log.matches("pod labels and annotations are not known while the runtime does not answer")
            .count(),
        1,
        "said once: {log}"
    );
}

/// Pods picked and routed by their labels: a source takes the pods that have a `team` label
/// but not `team=search`, and a Kafka topic is named after the team; a pod annotated
/// `ringtail.io/exclude: "true"` is not read at all.
#[test]
fn label_filters_pick_pods_and_a_topic_routes_by_team() {
    let real = RealNode::start();
    let (dir, node, pods) = (&real.dir, &real.node, &real.pods);
    let broker = common::kafka::broker();
    let config = format!(
        r#"{head}sources:
  - name: teams
    paths: ["{pods}/*/*/*.log"]
    format: cri
    containers:
      include:
        - labels: {{team: '.'}}
      exclude:
        - labels: {{team: '^search$'}}
sinks:
  - name: kafka
    type: kafka
    brokers: {brokers}
    topic: "logs-{{k8s.labels.team}}"
"#,
        head = real.config_head(true),
        pods = pods.display(),
        brokers = broker.address,
    );
    let collector = Collector::start(dir, &config);
    let print = "i=1; while [ $i -le 50 ]; do echo line $i; i=$((i+1)); done";
    let mut containers = Vec::new();
    for (n, team, excluded) in [
        (1, Some("payments"), false),
        (2, Some("checkout"), false),
        (3, Some("search"), false),
        (4, None, false),
        (5, Some("payments"), true),
    ] {
        let uid = format!("0000000{n}-4444-4c57-a5e4-0f3a1b2c3d4e");
        let name = format!("app-{n}");
        let labels: Vec<(&str, &str)> = team.map(|t| ("team", t)).into_iter().collect();
        let annotations: &[(&str, &str)] = if excluded {
            &[("ringtail.io/exclude", "true")]
        } else {
            &[]
        };
        let pod = node.run_pod_with(
            "shop",
            &name,
            &uid,
            &pods.join(format!("shop_{name}_{uid}")),
            &labels,
            annotations,
        );
        let c = node.run_container(&pod, "app", &["/bin/sh", "-c", print], &[]);
        containers.push((pod, c));
    }
    for (_, c) in &containers {
        assert_eq!(node.wait_exited(c, WAIT), 0);
    }
    collector.wait_until(WAIT, "100 records sent", || {
        collector.metric("ringtail_kafka_delivered_total{sink=\"kafka\"}") >= 100.0
    });
    // Anything else would have been read by now too.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        collector.metric("ringtail_kafka_delivered_total{sink=\"kafka\"}"),
        100.0,
        "{}",
        collector.stderr()
    );
    let messages = common::kafka::consume(
        &broker,
        &[
            "logs-payments",
            "logs-checkout",
            "logs-search",
            "logs-unknown",
        ],
        100,
        Duration::from_secs(3),
    );
    let mut by_topic = std::collections::BTreeMap::<String, Vec<String>>::new();
    for m in &messages {
        let r: serde_json::Value = serde_json::from_str(&m.value).unwrap();
        by_topic
            .entry(m.topic.clone())
            .or_default()
            .push(r["k8s"]["pod"].as_str().unwrap().to_string());
    }
    assert_eq!(
        by_topic.keys().collect::<Vec<_>>(),
        ["logs-checkout", "logs-payments"]
    );
    assert!(by_topic["logs-payments"].iter().all(|p| p == "app-1"));
    assert!(by_topic["logs-checkout"].iter().all(|p| p == "app-2"));
    assert_eq!(by_topic["logs-payments"].len(), 50);
    assert_eq!(by_topic["logs-checkout"].len(), 50);
    let (status, log) = collector.stop();
    assert!(status.success(), "{log}");
}

/// A pod declares a log file inside one of its containers with annotations (no access to the
/// node's configuration): the file is read from that container only, its records go to the
/// declared Kafka topic with the declared tags and the pod's labels; a malformed declaration
/// is logged with its annotation and counted, and the rest still works.
#[test]
fn a_pod_declares_its_logs_with_annotations() {
    let real = RealNode::start();
    let (dir, node, pods) = (&real.dir, &real.node, &real.pods);
    let broker = common::kafka::broker();
    let config = format!(
        r#"{head}sources:
  - name: declared
    declared: true
sinks:
  - name: kafka
    type: kafka
    brokers: {brokers}
    topic: logs
"#,
        head = real.config_head(true),
        brokers = broker.address,
    );
    let collector = Collector::start(dir, &config);
    let uid = "5a5a5a5a-5555-4c57-a5e4-0f3a1b2c3d4e";
    let pod = node.run_pod_with(
        "shop",
        "web-0",
        uid,
        &pods.join(format!("shop_web-0_{uid}")),
        &[("team", "payments")],
        &[
            ("ringtail.io/logs.access", "/data/*.log"),
            ("ringtail.io/logs.access.target", "access-logs"),
            ("ringtail.io/logs.access.tags", "kind=access"),
            ("ringtail.io/logs.access.container", "declarer"),
            ("ringtail.io/logs.bad", "relative/*.log"),
        ],
    );
    let declarer = node.run_container(&pod, "declarer", &["/bin/sh", "-c", DECLARER], &[]);
    let other = node.run_container(&pod, "other", &["/bin/sh", "-c", DECLARER], &[]);
    assert_eq!(node.wait_exited(&declarer, WAIT), 0);
    assert_eq!(node.wait_exited(&other, WAIT), 0);
    collector.wait_until(WAIT, "500 records sent", || {
        collector.metric("ringtail_kafka_delivered_total{sink=\"kafka\"}") >= 500.0
    });
    std::thread::sleep(Duration::from_millis(500));
    let messages = common::kafka::consume(
        &broker,
        &["access-logs", "logs"],
        500,
        Duration::from_secs(3),
    );
    assert_eq!(messages.len(), 500, "{}", collector.stderr());
    for (i, m) in messages.iter().enumerate() {
        let r: serde_json::Value = serde_json::from_str(&m.value).unwrap();
        assert_eq!(m.topic, "access-logs", "{r}");
        assert_eq!(r["message"], format!("declared {}", i + 1), "{r}");
        assert_eq!(r["k8s"]["container"], "declarer", "{r}");
        assert_eq!(r["tags"], serde_json::json!({"kind": "access"}), "{r}");
        assert_eq!(
            r["k8s"]["labels"],
            serde_json::json!({"team": "payments"}),
            "{r}"
        );
    }
    assert!(collector.metric("ringtail_declarations_refused_total") >= 1.0);
    let (status, log) = collector.stop();
    assert!(status.success(), "{log}");
    assert!(
        log.contains("annotation ringtail.io/logs.bad"),
        "the malformed declaration is named: {log}"
    );
}
