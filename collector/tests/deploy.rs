//! The Kubernetes manifests in `deploy/`: the kustomize base and the privileged overlay render
//! with `kubectl kustomize`, every rendered document validates against the Kubernetes schemas
//! (PyPI's `kubernetes-validate`, strict: unknown fields are errors), and the DaemonSet agrees
//! with the configuration file it ships — `ringtail validate` accepts that file, the API port
//! and the probes match, `data_dir` is the writable host mount, every other host mount is
//! read-only, the grace period outlasts the shutdown timeout, the buffers fit the memory
//! limit, and ringtail's own pods are not collected.
//!
//! Needs `kubectl` and the test Python environment that `cargo xtask setup` installs.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use ringtail::config::Config;
use ringtail::cut::decode::Format;
use ringtail::sink::SinkKind;
use ringtail::sink::kafka::KafkaCompression;
use ringtail::sink::template::Template;
use serde_json::Value;

/// The Kubernetes version whose schemas the manifests must satisfy: the oldest one the
/// manifests are meant for.
const KUBERNETES_VERSION: &str = "1.30";
/// The namespace of `deploy/base/kustomization.yaml`.
const NAMESPACE: &str = "ringtail";
/// The image `images:` in `deploy/base/kustomization.yaml` sets.
const IMAGE: &str = "ghcr.io/ringtail/ringtail:0.1.0";
/// Where the DaemonSet mounts the configuration file.
const CONFIG_PATH: &str = "/etc/ringtail/config.yaml";
/// The capabilities of the base DaemonSet, each documented in `deploy/README.md`.
const CAPABILITIES: [&str; 5] = [
    "BPF",
    "PERFMON",
    "SYS_RESOURCE",
    "DAC_READ_SEARCH",
    "SYS_PTRACE",
];
/// Host directories the DaemonSet must mount (besides the runtime directories the
/// configuration names and `data_dir`).
const HOST_DIRS: [&str; 6] = [
    "/var/log/pods",
    "/var/log/containers",
    "/var/lib/docker/containers",
    "/sys/kernel/btf",
    "/sys/kernel/tracing",
    "/sys/fs/cgroup",
];
/// librdkafka's queue of a Kafka sink (`queue.buffering.max.kbytes = 65536` in
/// `sink/kafka.rs`), unless the sink's `properties` change it.
const LIBRDKAFKA_QUEUE_BYTES: u64 = 64 << 20;
/// Time the grace period must leave after `pipeline.shutdown_timeout`: the final checkpoint
/// is written after the sinks stopped.
const CHECKPOINT_MARGIN: Duration = Duration::from_secs(5);

const SETUP: &str = "the deploy test needs the test Python environment with kubernetes-validate: \
                     run `cargo xtask setup` (or `cargo xtask test`)";

/// Reads kustomize's output on stdin, validates every document against the schemas of the
/// Kubernetes version in argv[1] (strict), and prints `{"documents": [...], "errors": [...]}`.
/// A kind without a schema is an error too: every kind in deploy/ is a core one.
const VALIDATE: &str = r#"
import json, sys, yaml, kubernetes_validate
from kubernetes_validate.utils import (ValidationError, SchemaNotFoundError,
                                       VersionNotSupportedError, InvalidSchemaError)
version = sys.argv[1]
docs = [d for d in yaml.safe_load_all(sys.stdin.read()) if d is not None]
errors = []
for d in docs:
    name = "%s/%s" % (d.get("kind"), (d.get("metadata") or {}).get("name"))
    try:
        kubernetes_validate.validate(d, version, strict=True)
    except ValidationError as e:
        errors.append("%s: %s: %s" % (name, ".".join(str(p) for p in e.path), e.message))
    except (SchemaNotFoundError, VersionNotSupportedError, InvalidSchemaError) as e:
        errors.append("%s: %s" % (name, e.message))
json.dump({"documents": docs, "errors": errors}, sys.stdout)
"#;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Python with `kubernetes_validate` and PyYAML: `RINGTAIL_TEST_PYTHON`, else where
/// `cargo xtask setup` puts it (as in tests/common/kafka.rs).
fn python() -> PathBuf {
    if let Some(path) = std::env::var_os("RINGTAIL_TEST_PYTHON") {
        return PathBuf::from(path);
    }
    let path = workspace().join("target/tools/kafka/bin/python");
    assert!(path.is_file(), "{SETUP}");
    path
}

/// `kubectl kustomize deploy/<dir>`, validated; the rendered documents.
fn render_and_validate(dir: &str) -> Vec<Value> {
    let out = Command::new("kubectl")
        .arg("kustomize")
        .arg(workspace().join("deploy").join(dir))
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run kubectl ({e}): it renders deploy/; `cargo xtask setup` installs \
                 Debian's kubernetes-client when there is no kubectl"
            )
        });
    assert!(
        out.status.success(),
        "kubectl kustomize deploy/{dir} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut child = Command::new(python())
        .args(["-c", VALIDATE, KUBERNETES_VERSION])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start the test Python ({e}): {SETUP}"));
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(&out.stdout)
        .expect("write the manifests to the validator");
    let validated = child.wait_with_output().expect("wait for the validator");
    assert!(
        validated.status.success(),
        "the schema validator failed (is kubernetes-validate installed? {SETUP}): {}",
        String::from_utf8_lossy(&validated.stderr)
    );
    let report: Value =
        serde_json::from_slice(&validated.stdout).expect("the validator prints JSON");
    let errors = report["errors"].as_array().expect("errors");
    assert!(
        errors.is_empty(),
        "deploy/{dir} does not validate against the Kubernetes {KUBERNETES_VERSION} schemas:\n{}",
        errors
            .iter()
            .map(|e| format!("  - {}", e.as_str().unwrap_or_default()))
            .collect::<Vec<_>>()
            .join("\n")
    );
    report["documents"].as_array().expect("documents").to_vec()
}

/// The base's rendered documents, rendered and validated once for all tests.
fn base() -> &'static [Value] {
    static DOCS: OnceLock<Vec<Value>> = OnceLock::new();
    DOCS.get_or_init(|| render_and_validate("base"))
}

/// The privileged overlay's rendered documents.
fn privileged() -> &'static [Value] {
    static DOCS: OnceLock<Vec<Value>> = OnceLock::new();
    DOCS.get_or_init(|| render_and_validate("overlays/privileged"))
}

/// The pod-labels overlay's rendered documents (the base with the CRI-socket component).
fn pod_labels() -> &'static [Value] {
    static DOCS: OnceLock<Vec<Value>> = OnceLock::new();
    DOCS.get_or_init(|| render_and_validate("overlays/pod-labels"))
}

fn variants() -> [(&'static str, &'static [Value]); 3] {
    [
        ("base", base()),
        ("overlays/privileged", privileged()),
        ("overlays/pod-labels", pod_labels()),
    ]
}

/// The one document of `kind`.
fn one<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    let found: Vec<&Value> = docs.iter().filter(|d| d["kind"] == kind).collect();
    assert_eq!(found.len(), 1, "expected exactly one {kind}");
    found[0]
}

fn daemonset(docs: &[Value]) -> &Value {
    one(docs, "DaemonSet")
}

fn pod_spec(docs: &[Value]) -> &Value {
    &daemonset(docs)["spec"]["template"]["spec"]
}

/// The collector's container (the only one).
fn container(docs: &[Value]) -> &Value {
    let containers = pod_spec(docs)["containers"].as_array().expect("containers");
    assert_eq!(containers.len(), 1, "one container per pod");
    assert_eq!(containers[0]["name"], "ringtail");
    &containers[0]
}

fn str_of<'a>(value: &'a Value, what: &str) -> &'a str {
    value
        .as_str()
        .unwrap_or_else(|| panic!("{what} is not a string: {value}"))
}

/// The configuration file in the ConfigMap, which must be the one the DaemonSet mounts.
fn config_text(docs: &[Value]) -> &str {
    let map = one(docs, "ConfigMap");
    let name = str_of(&map["metadata"]["name"], "ConfigMap name");
    assert!(
        name.starts_with("ringtail-config-"),
        "the ConfigMap comes from the configMapGenerator (name with a content hash): {name}"
    );
    let volumes = pod_spec(docs)["volumes"].as_array().expect("volumes");
    assert!(
        volumes.iter().any(|v| v["configMap"]["name"] == name),
        "the DaemonSet mounts ConfigMap {name}"
    );
    str_of(&map["data"]["config.yaml"], "config.yaml in the ConfigMap")
}

/// The configuration, parsed as `ringtail run` parses it (without the machine checks).
fn config(docs: &[Value]) -> Config {
    let (config, problems) = ringtail::config::parse(config_text(docs));
    assert!(
        problems.is_empty(),
        "the ConfigMap's config.yaml has problems: {problems:?}"
    );
    config.expect("a configuration")
}

/// Host path of every hostPath volume, by volume name.
fn host_paths(docs: &[Value]) -> BTreeMap<String, (String, String)> {
    pod_spec(docs)["volumes"]
        .as_array()
        .expect("volumes")
        .iter()
        .filter(|v| v.get("hostPath").is_some())
        .map(|v| {
            (
                str_of(&v["name"], "volume name").to_string(),
                (
                    str_of(&v["hostPath"]["path"], "hostPath path").to_string(),
                    v["hostPath"]["type"].as_str().unwrap_or("").to_string(),
                ),
            )
        })
        .collect()
}

/// The container's mounts, by volume name: (mount path, read-only).
fn mounts(docs: &[Value]) -> BTreeMap<String, (String, bool)> {
    let mut mounts = BTreeMap::new();
    for m in container(docs)["volumeMounts"]
        .as_array()
        .expect("volumeMounts")
    {
        let name = str_of(&m["name"], "mount name").to_string();
        let path = str_of(&m["mountPath"], "mountPath").to_string();
        let read_only = m["readOnly"].as_bool().unwrap_or(false);
        assert!(
            mounts.insert(name.clone(), (path, read_only)).is_none(),
            "volume {name} is mounted twice"
        );
    }
    mounts
}

/// A Kubernetes memory quantity in bytes (the binary suffixes the manifests use).
fn bytes(quantity: &str) -> u64 {
    let suffixes = [("Ki", 1u64 << 10), ("Mi", 1 << 20), ("Gi", 1 << 30)];
    for (suffix, factor) in suffixes {
        if let Some(n) = quantity.strip_suffix(suffix) {
            return n.parse::<u64>().expect("a whole number") * factor;
        }
    }
    quantity
        .parse()
        .unwrap_or_else(|_| panic!("unexpected quantity {quantity}"))
}

/// Every `"privileged": true` in `value`, by JSON path.
fn privileged_paths(value: &Value, path: &str, found: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                let here = format!("{path}.{key}");
                if key == "privileged" && *v == Value::Bool(true) {
                    found.push(here.clone());
                }
                privileged_paths(v, &here, found);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                privileged_paths(v, &format!("{path}[{i}]"), found);
            }
        }
        _ => {}
    }
}

#[test]
fn manifests_render_and_validate_against_the_kubernetes_schemas() {
    for (dir, docs) in variants() {
        let kinds: BTreeSet<&str> = docs.iter().map(|d| str_of(&d["kind"], "kind")).collect();
        // No Role, ClusterRole or binding: ringtail makes no API call.
        assert_eq!(
            kinds,
            BTreeSet::from(["ConfigMap", "DaemonSet", "Namespace", "ServiceAccount"]),
            "deploy/{dir}"
        );
        assert_eq!(docs.len(), 4, "deploy/{dir}: one document of each kind");
        for doc in docs {
            if doc["kind"] != "Namespace" {
                assert_eq!(
                    doc["metadata"]["namespace"], NAMESPACE,
                    "deploy/{dir}: {} is in the namespace",
                    doc["kind"]
                );
            }
        }
        let namespace = one(docs, "Namespace");
        assert_eq!(namespace["metadata"]["name"], NAMESPACE);
        assert_eq!(
            namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"], "privileged",
            "deploy/{dir}: hostPID and hostPath are outside the baseline Pod Security level"
        );
        let account = one(docs, "ServiceAccount");
        assert_eq!(
            pod_spec(docs)["serviceAccountName"],
            account["metadata"]["name"]
        );
        assert_eq!(account["automountServiceAccountToken"], false);
        assert_eq!(pod_spec(docs)["automountServiceAccountToken"], false);
        assert_eq!(container(docs)["image"], IMAGE, "deploy/{dir}");
    }
}

#[test]
fn the_configmap_holds_a_configuration_ringtail_validate_accepts() {
    for (dir, docs) in variants() {
        let text = config_text(docs);
        let mut file = tempfile::NamedTempFile::new().expect("a temporary file");
        file.write_all(text.as_bytes()).expect("write the config");
        // `validate` also checks that data_dir (/var/lib/ringtail) is writable here, as
        // `run` does on the node: the tests run as root.
        let out = Command::new(env!("CARGO_BIN_EXE_ringtail"))
            .arg("validate")
            .arg("--config")
            .arg(file.path())
            .output()
            .expect("run ringtail validate");
        assert!(
            out.status.success(),
            "deploy/{dir}: ringtail validate refuses the ConfigMap's config.yaml:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );

        let config = config(docs);
        assert_eq!(config.sources.len(), 2);
        // Containers may declare their own logs (RINGTAIL_LOGS_*); ours may not.
        let declared = &config.sources[1];
        assert!(
            declared.declared,
            "deploy/{dir}: the second source reads declarations"
        );
        let container = |namespace: &str| ringtail::container::Container {
            namespace: Some(namespace.to_string()),
            ..Default::default()
        };
        assert!(!declared.containers.admits(Some(&container(NAMESPACE))));
        assert!(declared.containers.admits(Some(&container("default"))));
        let pods = &config.sources[0];
        assert_eq!(pods.cut.format, Format::Cri);
        let ours = format!("/var/log/pods/{NAMESPACE}_ringtail-x7k2p_0c6f/ringtail/0.log");
        assert!(
            !pods.matches(Path::new(&ours)),
            "deploy/{dir}: ringtail's own pod logs must not be collected: {ours}"
        );
        for other in [
            "/var/log/pods/default_web-5d9c_1a2b/nginx/0.log",
            "/var/log/pods/kube-system_coredns-7db6_3c4d/coredns/12.log",
            // A namespace whose name merely starts like ours.
            "/var/log/pods/ringtail-demo_app-1_5e6f/app/0.log",
        ] {
            assert!(
                pods.matches(Path::new(other)),
                "deploy/{dir}: {other} must be collected"
            );
        }

        assert_eq!(config.sinks.len(), 1);
        let SinkKind::Kafka(kafka) = &config.sinks[0].kind else {
            panic!("deploy/{dir}: the sink is Kafka");
        };
        assert_eq!(kafka.brokers, "kafka.kafka.svc:9092");
        assert_eq!(
            kafka.topic,
            Template::parse("logs-{k8s.namespace}").expect("template")
        );
        assert_eq!(
            kafka.key,
            Some(Template::parse("{identity}").expect("template"))
        );
        assert_eq!(kafka.acks, "all");
        assert_eq!(kafka.compression, KafkaCompression::Zstd);
    }
}

#[test]
fn the_daemonset_mounts_what_the_configuration_reads() {
    for (dir, docs) in variants() {
        let config = config(docs);
        let volumes = host_paths(docs);
        let mounts = mounts(docs);
        let data_dir = config.data_dir.to_str().expect("UTF-8 data_dir");
        let mut mounted_host_paths = Vec::new();
        for (name, (host_path, kind)) in &volumes {
            let (mount_path, read_only) = mounts
                .get(name)
                .unwrap_or_else(|| panic!("deploy/{dir}: hostPath volume {name} is not mounted"));
            // ringtail follows host paths (kubelet's symlinks, bundle paths): same path inside.
            assert_eq!(
                mount_path, host_path,
                "deploy/{dir}: volume {name} must be mounted at its host path"
            );
            if host_path == data_dir {
                assert!(
                    !read_only,
                    "deploy/{dir}: data_dir {data_dir} must be writable"
                );
                assert_eq!(kind, "DirectoryOrCreate", "deploy/{dir}: data_dir");
            } else {
                assert!(
                    read_only,
                    "deploy/{dir}: host path {host_path} (volume {name}) must be read-only"
                );
            }
            mounted_host_paths.push(PathBuf::from(host_path));
        }
        assert!(
            volumes.values().any(|(path, _)| path == data_dir),
            "deploy/{dir}: data_dir {data_dir} is a hostPath volume (checkpoints survive restarts)"
        );
        let under_a_mount = |path: &Path| {
            mounted_host_paths
                .iter()
                .any(|mount| path.starts_with(mount))
        };
        let runtime_dirs = config.kubernetes.runtime_dirs.iter().map(PathBuf::as_path);
        for needed in HOST_DIRS.iter().map(Path::new).chain(runtime_dirs) {
            assert!(
                mounted_host_paths.iter().any(|m| m == needed),
                "deploy/{dir}: host directory {} is not mounted",
                needed.display()
            );
        }
        for source in &config.sources {
            for pattern in &source.paths {
                assert!(
                    under_a_mount(&pattern.root),
                    "deploy/{dir}: source {} reads {} outside the host mounts",
                    source.name,
                    pattern.glob
                );
            }
        }

        // The configuration file: the generated ConfigMap, mounted as a directory (so updates
        // reach the pod), passed to `run --config`.
        let (config_mount, read_only) = &mounts["config"];
        assert!(read_only);
        assert_eq!(
            Path::new(config_mount).join("config.yaml"),
            Path::new(CONFIG_PATH)
        );
        let args: Vec<&str> = container(docs)["args"]
            .as_array()
            .expect("args")
            .iter()
            .map(|a| str_of(a, "arg"))
            .collect();
        assert_eq!(args, ["run", "--config", CONFIG_PATH], "deploy/{dir}");
        assert!(
            container(docs)["volumeMounts"]
                .as_array()
                .expect("volumeMounts")
                .iter()
                .all(|m| m.get("subPath").is_none()),
            "deploy/{dir}: no subPath mounts (they never see ConfigMap updates)"
        );
    }
}

#[test]
fn the_base_uses_capabilities_and_the_overlay_is_privileged() {
    let docs = base();
    let mut found = Vec::new();
    for doc in docs {
        privileged_paths(doc, "", &mut found);
    }
    assert!(found.is_empty(), "privileged in deploy/base: {found:?}");
    assert_eq!(pod_spec(docs)["hostPID"], true);
    assert!(pod_spec(docs)["hostNetwork"] != true);
    let security = &container(docs)["securityContext"];
    assert_eq!(security["runAsUser"], 0);
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(security["allowPrivilegeEscalation"], false);
    assert_eq!(security["capabilities"]["drop"], serde_json::json!(["ALL"]));
    let added: BTreeSet<&str> = security["capabilities"]["add"]
        .as_array()
        .expect("capabilities.add")
        .iter()
        .map(|c| str_of(c, "capability"))
        .collect();
    assert_eq!(added, BTreeSet::from(CAPABILITIES));

    let overlay = privileged();
    let security = &container(overlay)["securityContext"];
    assert_eq!(security["privileged"], true);
    assert_eq!(security["runAsUser"], 0);
    assert_eq!(security["readOnlyRootFilesystem"], true);
    // Kubernetes refuses `privileged: true` with `allowPrivilegeEscalation: false`.
    assert!(security["allowPrivilegeEscalation"] != false);
    // The overlay changes the container's securityContext and nothing else.
    let without_security = |docs: &[Value]| -> Vec<Value> {
        let mut docs = docs.to_vec();
        for doc in &mut docs {
            if doc["kind"] == "DaemonSet" {
                let container = &mut doc["spec"]["template"]["spec"]["containers"][0];
                container
                    .as_object_mut()
                    .expect("a container")
                    .remove("securityContext");
            }
        }
        docs
    };
    assert_eq!(without_security(overlay), without_security(docs));
}

#[test]
fn the_daemonset_probes_lifecycle_and_resources_match_the_configuration() {
    for (dir, docs) in variants() {
        let config = config(docs);
        let spec = pod_spec(docs);
        let container = container(docs);

        let node_name = container["env"]
            .as_array()
            .expect("env")
            .iter()
            .find(|e| e["name"] == "NODE_NAME")
            .unwrap_or_else(|| panic!("deploy/{dir}: NODE_NAME is set"));
        assert_eq!(
            node_name["valueFrom"]["fieldRef"]["fieldPath"], "spec.nodeName",
            "deploy/{dir}: NODE_NAME comes from the downward API"
        );

        // The API listens where the kubelet's probes reach it: the pod's IP, the named port.
        let listen: SocketAddr = config.api.listen;
        assert!(
            listen.ip().is_unspecified(),
            "deploy/{dir}: api.listen {listen} is not reachable from the kubelet's probes"
        );
        let ports = container["ports"].as_array().expect("ports");
        let port_of = |port: &Value| -> u64 {
            match port {
                Value::Number(n) => n.as_u64().expect("a port number"),
                Value::String(name) => ports
                    .iter()
                    .find(|p| p["name"] == name.as_str())
                    .and_then(|p| p["containerPort"].as_u64())
                    .unwrap_or_else(|| panic!("deploy/{dir}: no container port named {name}")),
                other => panic!("deploy/{dir}: unexpected probe port {other}"),
            }
        };
        // A backend outage makes pods unready, never restarts them: liveness asks /livez.
        for (probe, path) in [("livenessProbe", "/livez"), ("readinessProbe", "/readyz")] {
            let get = &container[probe]["httpGet"];
            assert_eq!(get["path"], path, "deploy/{dir}: {probe}");
            assert_eq!(
                port_of(&get["port"]),
                u64::from(listen.port()),
                "deploy/{dir}: {probe} must use api.listen's port"
            );
        }
        let scrape_port =
            &daemonset(docs)["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"];
        assert_eq!(
            str_of(scrape_port, "prometheus.io/port"),
            listen.port().to_string()
        );

        let grace = spec["terminationGracePeriodSeconds"]
            .as_u64()
            .expect("terminationGracePeriodSeconds");
        assert!(
            Duration::from_secs(grace) >= config.pipeline.shutdown_timeout + CHECKPOINT_MARGIN,
            "deploy/{dir}: terminationGracePeriodSeconds {grace} must outlast \
             pipeline.shutdown_timeout {:?} (and leave time for the final checkpoint)",
            config.pipeline.shutdown_timeout
        );

        assert!(
            spec["tolerations"]
                .as_array()
                .expect("tolerations")
                .iter()
                .any(|t| t["operator"] == "Exists"
                    && t.get("key").is_none()
                    && t.get("effect").is_none()),
            "deploy/{dir}: a toleration for every taint"
        );
        assert_eq!(spec["priorityClassName"], "system-node-critical");
        let strategy = &daemonset(docs)["spec"]["updateStrategy"];
        assert_eq!(strategy["type"], "RollingUpdate");
        assert!(strategy["rollingUpdate"]["maxUnavailable"].is_number());
        // Two pods on one node would share data_dir.
        assert_eq!(strategy["rollingUpdate"]["maxSurge"], 0);

        // Memory: the configured in-process buffers take at most half the limit; the rest is
        // per-file state, eBPF maps and the process itself.
        let resources = &container["resources"];
        let limit = bytes(str_of(&resources["limits"]["memory"], "memory limit"));
        assert_eq!(limit, 512 << 20, "deploy/{dir}: memory limit");
        let request = bytes(str_of(&resources["requests"]["memory"], "memory request"));
        assert!(request <= limit);
        let batch = config.pipeline.batch_bytes as u64;
        let kafka_queues: u64 = config
            .sinks
            .iter()
            .map(|sink| match &sink.kind {
                SinkKind::Kafka(kafka) => kafka
                    .properties
                    .get("queue.buffering.max.kbytes")
                    .map_or(LIBRDKAFKA_QUEUE_BYTES, |kb| {
                        kb.parse::<u64>().expect("kbytes") << 10
                    }),
                _ => 0,
            })
            .sum();
        let buffers = config.reader.buffer_memory as u64
            + config.sinks.len() as u64 * config.pipeline.queue_batches as u64 * batch
            + (config.pipeline.workers
                * ringtail::work::route::parts(&config.sources, &config.sinks)
                * ringtail::work::output::held_per_part(config.pipeline.batch_bytes))
                as u64
            + kafka_queues;
        assert!(
            buffers <= limit / 2,
            "deploy/{dir}: buffers of {} MiB do not fit well under the {} MiB limit",
            buffers >> 20,
            limit >> 20
        );
    }
}

/// `deploy/sidecar`: the example validates against the schemas; ringtail runs as a native
/// sidecar (an init container with `restartPolicy: Always`, stopped after the app), without
/// privileges or host paths, reading the shared emptyDir the app writes to, in sidecar mode,
/// within the pod's grace period; `ringtail validate` accepts its configuration.
/// The base mounts no runtime socket; the pod-labels component mounts containerd's, read-only,
/// where the configuration's `kubernetes.cri_socket` looks for it, and changes nothing else.
#[test]
fn only_the_pod_labels_component_mounts_the_cri_socket_where_ringtail_looks() {
    let socket = ringtail::container::cri::DEFAULT_SOCKETS[0];
    for (dir, docs) in [("base", base()), ("overlays/privileged", privileged())] {
        assert!(
            host_paths(docs)
                .values()
                .all(|(path, _)| !path.ends_with(".sock")),
            "deploy/{dir} mounts no runtime socket"
        );
    }
    let docs = pod_labels();
    let volumes = host_paths(docs);
    assert_eq!(
        volumes.get("cri-socket"),
        Some(&(socket.to_string(), "Socket".to_string()))
    );
    assert_eq!(
        mounts(docs).get("cri-socket"),
        Some(&(socket.to_string(), true))
    );
    let config = config(docs);
    match &config.kubernetes.cri_socket {
        ringtail::container::resolver::CriSocket::Auto => {}
        ringtail::container::resolver::CriSocket::At(path) => assert_eq!(path, Path::new(socket)),
        other => panic!("the configuration does not ask the runtime: {other:?}"),
    }
    // Otherwise the base: the same volumes but the socket.
    let mut base_volumes = host_paths(base());
    base_volumes.insert(
        "cri-socket".to_string(),
        (socket.to_string(), "Socket".to_string()),
    );
    assert_eq!(volumes, base_volumes);
}

#[test]
fn the_sidecar_example_is_a_native_sidecar_in_sidecar_mode() {
    let docs = render_and_validate("sidecar");
    let deployment = one(&docs, "Deployment");
    let spec = &deployment["spec"]["template"]["spec"];
    let sidecar = &spec["initContainers"][0];
    assert_eq!(sidecar["name"], "ringtail");
    assert_eq!(sidecar["restartPolicy"], "Always");
    assert_eq!(sidecar["securityContext"]["privileged"], Value::Null);
    assert_eq!(
        sidecar["securityContext"]["capabilities"]["drop"],
        serde_json::json!(["ALL"])
    );
    let volumes = spec["volumes"].as_array().unwrap();
    assert!(volumes.iter().all(|v| v.get("hostPath").is_none()));
    let logs = sidecar["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "logs")
        .expect("the shared log volume");
    let app_mount = spec["containers"][0]["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "logs")
        .expect("the app writes to the shared volume");
    assert_eq!(logs["mountPath"], app_mount["mountPath"]);
    let map = one(&docs, "ConfigMap");
    let text = str_of(&map["data"]["config.yaml"], "config.yaml");
    let (config, problems) = ringtail::config::parse(text);
    assert_eq!(problems, vec![], "{text}");
    let config = config.unwrap();
    let sidecar_mode = config.sidecar.expect("sidecar mode");
    let grace = spec["terminationGracePeriodSeconds"].as_u64().unwrap();
    assert!(sidecar_mode.drain_max.as_secs() < grace);
    let mount = logs["mountPath"].as_str().unwrap();
    assert!(
        config.sources[0].matches(&Path::new(mount).join("access.log")),
        "the source reads the shared volume"
    );
}
