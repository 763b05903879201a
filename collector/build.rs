//! Builds the eBPF object with `xtask::build_ebpf` (nightly, bpf-linker) and enables the
//! `ringtail_ebpf` cfg that embeds it. `RINGTAIL_NO_EBPF=1` builds without it (the binary then
//! says so and uses inotify alone).

use std::path::Path;

fn main() {
    println!("cargo:rustc-check-cfg=cfg(ringtail_ebpf)");
    println!("cargo:rerun-if-env-changed=RINGTAIL_NO_EBPF");
    // aya-build watches the eBPF crate; the layouts it shares with user space live here.
    println!("cargo:rerun-if-changed=../ebpf-common");
    if std::env::var_os("RINGTAIL_NO_EBPF").is_some() {
        println!(
            "cargo:warning=RINGTAIL_NO_EBPF is set: building ringtail without its eBPF programs"
        );
        return;
    }
    let manifest = std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default();
    let Some(root) = Path::new(&manifest).parent() else {
        eprintln!("error: CARGO_MANIFEST_DIR has no parent");
        std::process::exit(1);
    };
    // SAFETY: a build script is one thread until here (aya-build starts its own threads after
    // spawning the nested cargo, which inherits this).
    unsafe { std::env::set_var(xtask::QUIET_NESTED_CARGO.0, xtask::QUIET_NESTED_CARGO.1) };
    match xtask::build_ebpf(root) {
        Ok(_) => println!("cargo:rustc-cfg=ringtail_ebpf"),
        Err(e) => {
            eprintln!(
                "error: cannot build the eBPF programs: {e:#}\n\
                 (`cargo xtask setup` installs nightly rust-src and bpf-linker; \
                 RINGTAIL_NO_EBPF=1 builds without eBPF)"
            );
            std::process::exit(1);
        }
    }
}
