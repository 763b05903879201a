//! The pod-labels cases' container runtime: a CRI socket that lists one pod sandbox with
//! its labels and annotations, so that `ringtail-labels` (ringtail with
//! `kubernetes.cri_socket`) is measured beside plain ringtail on the same kubelet-layout files.
//!
//! The server is `bench/cri/fake_cri.py` on grpcio (the reference gRPC implementation),
//! installed on first use into `target/tools/bench-cri`; it answers `ListPodSandbox` only —
//! all ringtail asks.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The pod's uid, in its log directory's name and in the runtime's answer.
pub const POD_UID: &str = "0b3c5d7e-9f10-4a2b-8c4d-6e7f8091a2b3";

/// Where a pod-labels case's files are, under the run directory: the kubelet's layout for
/// container `app` of pod `bench/bench-0`.
pub const POD_DIR: &str = "var/log/pods/bench_bench-0_0b3c5d7e-9f10-4a2b-8c4d-6e7f8091a2b3/app";

/// grpcio, pinned.
const GRPCIO: &str = "grpcio==1.85.4";

/// The CRI socket of a run.
pub fn socket(dirs: &crate::collectors::RunDirs) -> PathBuf {
    dirs.state.join("cri.sock")
}

/// The Python with grpcio under `workspace/target/tools/bench-cri`, installed from PyPI when
/// missing.
pub fn python(workspace: &Path) -> std::io::Result<PathBuf> {
    let venv = workspace.join("target/tools/bench-cri");
    let python = venv.join("bin/python");
    let has_grpc = |python: &Path| {
        Command::new(python)
            .args(["-c", "import grpc"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if has_grpc(&python) {
        return Ok(python);
    }
    eprintln!("bench: installing {GRPCIO} into {}", venv.display());
    let status = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .status()?;
    if status.success() {
        Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "-q",
                "--disable-pip-version-check",
                GRPCIO,
            ])
            .status()?;
    }
    if has_grpc(&python) {
        Ok(python)
    } else {
        Err(std::io::Error::other(format!(
            "cannot install {GRPCIO} into {}",
            venv.display()
        )))
    }
}

/// A running CRI server; stopped when dropped.
#[derive(Debug)]
pub struct FakeRuntime {
    child: Child,
}

impl FakeRuntime {
    /// Starts the server on `socket` with `python`; returns once the socket is there.
    pub fn start(python: &Path, socket: &Path) -> std::io::Result<FakeRuntime> {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("cri/fake_cri.py");
        let child = Command::new(python)
            .arg(script)
            .arg(socket)
            .arg(POD_UID)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()?;
        let mut runtime = FakeRuntime { child };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !socket.exists() {
            if let Some(status) = runtime.child.try_wait()? {
                return Err(std::io::Error::other(format!(
                    "the CRI server exited at start: {status}"
                )));
            }
            if Instant::now() > deadline {
                return Err(std::io::Error::other("the CRI server did not start"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(runtime)
    }
}

impl Drop for FakeRuntime {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
