//! `cargo xtask`: the project's own commands.
//!
//! - `setup`: install what building and testing need and a fresh machine lacks (the nightly
//!   `rust-src` component and bpf-linker 0.10.3, see ../shared/TOOLCHAIN.md).
//! - `build-ebpf`: build the eBPF object.
//! - `test`: set up, then every check CI runs: format, clippy, the eBPF build, all tests, and
//!   a compile of the benchmarks.
//! - `run`: build ringtail in release mode and run it (built-in default without arguments).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};

/// The bpf-linker release that links with this toolchain's LLVM (newer ones want LLVM 23).
const BPF_LINKER_VERSION: &str = "0.10.3";

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
        Task::Setup => setup(),
        Task::BuildEbpf => {
            setup()?;
            let object = build_ebpf(&root)?;
            println!("{}", object.display());
            Ok(())
        }
        Task::Test => test(&root),
        Task::Run { args } => {
            // The build embeds the eBPF object, which needs the nightly toolchain parts.
            setup()?;
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
    // aya-build is written for build scripts; give it the variables cargo gives one.
    // SAFETY: xtask has not started any thread, so nothing reads the environment concurrently.
    unsafe {
        std::env::set_var("OUT_DIR", &out_dir);
        std::env::set_var("CARGO_CFG_TARGET_ENDIAN", "little");
        std::env::set_var("CARGO_CFG_TARGET_ARCH", std::env::consts::ARCH);
    }
    xtask::build_ebpf(root)
}

fn setup() -> anyhow::Result<()> {
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

fn test(root: &Path) -> anyhow::Result<()> {
    setup()?;
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
    step("benchmarks compile", || {
        cargo(&["bench", "--workspace", "--no-run"])
    })?;
    eprintln!("xtask: all checks passed");
    Ok(())
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
