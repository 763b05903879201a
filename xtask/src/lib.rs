//! Project tasks shared by `cargo xtask` and build scripts.
//!
//! [`build_ebpf`] is the one way the eBPF object is built: `cargo xtask build-ebpf` calls it,
//! and so does the collector's build script, which embeds the object in the binary.

use std::path::{Path, PathBuf};

/// The environment variable (and value) that keeps the nested cargo of the eBPF build from
/// printing its progress. aya-build relays every line the nested cargo writes as a
/// `cargo:warning`, so without it each build of ringtail shows dozens of `warning:
/// ringtail@0.1.0: Compiling …` lines; compiler warnings and errors still come through. Set it
/// in the process before calling [`build_ebpf`] (the environment is process-wide).
pub const QUIET_NESTED_CARGO: (&str, &str) = ("CARGO_TERM_QUIET", "true");

/// Name of the eBPF package (and of the object file it produces).
pub const EBPF_PACKAGE: &str = "ringtail-ebpf";

/// Builds the eBPF programs with aya-build (nightly, `bpfel-unknown-none`, `-Z build-std=core`,
/// BTF) into `OUT_DIR`, and returns the object's path. Needs the environment cargo gives a
/// build script (`OUT_DIR`, `CARGO_CFG_TARGET_ENDIAN`, `CARGO_CFG_TARGET_ARCH`) and the
/// current directory inside the workspace.
pub fn build_ebpf(workspace_root: &Path) -> anyhow::Result<PathBuf> {
    let root_dir = workspace_root.join("collector-ebpf");
    let root_dir = root_dir.to_str().ok_or_else(|| {
        anyhow::anyhow!("workspace path {} is not UTF-8", workspace_root.display())
    })?;
    aya_build::build_ebpf(
        [aya_build::Package {
            name: EBPF_PACKAGE,
            root_dir,
            ..Default::default()
        }],
        aya_build::Toolchain::Nightly,
    )?;
    let out_dir =
        std::env::var_os("OUT_DIR").ok_or_else(|| anyhow::anyhow!("OUT_DIR is not set"))?;
    Ok(PathBuf::from(out_dir).join(EBPF_PACKAGE))
}
