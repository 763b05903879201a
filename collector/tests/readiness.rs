//! `/readyz` says when ringtail runs but cannot do all of its job: here its checkpoints
//! cannot be written (the data directory made immutable, as a read-only or broken volume
//! would), while `/healthz` — what the liveness probe asks — stays 200 and lines keep being
//! delivered. When writes succeed again, `/readyz` is 200 again. Real binary, real files on the
//! build directory's file system (ext4: `chattr +i` needs one that supports it).
#![allow(clippy::unwrap_used, reason = "tests fail loudly on broken invariants")]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{Collector, append_lines, is_root, wait_for_lines};

fn config(dir: &Path) -> String {
    common::text_sink_config(
        dir,
        "checkpoints:\n  interval: 100ms\n",
        "app",
        "logs/*.log",
    )
}

/// Makes a directory immutable while it lives, so that even root cannot create files in it.
struct Immutable(PathBuf);

impl Immutable {
    fn set(path: &Path) -> Immutable {
        chattr("+i", path);
        Immutable(path.to_path_buf())
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        chattr("-i", &self.0);
    }
}

fn chattr(flag: &str, path: &Path) {
    let status = Command::new("chattr").arg(flag).arg(path).status().unwrap();
    assert!(status.success(), "chattr {flag} {}", path.display());
}

#[test]
fn readyz_reports_checkpoints_that_cannot_be_written_while_delivery_goes_on() {
    if !is_root() {
        eprintln!("skipped: chattr +i needs root");
        return;
    }
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let dir = tmp.path();
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let app = logs.join("app.log");
    append_lines(&app, "", 0..100, 0);
    let out = dir.join("out/out.ndjson");
    let collector = Collector::start(dir, &config(dir));
    assert_eq!(wait_for_lines(&out, 100, Duration::from_secs(10)), 100);
    collector.wait_until(Duration::from_secs(5), "ready", || {
        collector
            .get("/readyz")
            .is_some_and(|b| b.contains(r#""status":"ready""#))
    });
    let data = dir.join("data");
    assert!(data.join("checkpoints.json").exists());

    let immutable = Immutable::set(&data);
    append_lines(&app, "", 100..200, 0);
    assert_eq!(
        wait_for_lines(&out, 200, Duration::from_secs(10)),
        200,
        "delivery goes on while checkpoints cannot be written: {}",
        collector.stderr()
    );
    collector.wait_until(
        Duration::from_secs(5),
        "/readyz names the checkpoints",
        || {
            collector
                .get("/readyz")
                .is_some_and(|b| b.contains(r#""status":"not ready""#) && b.contains("checkpoints"))
        },
    );
    let live: serde_json::Value = serde_json::from_str(&collector.get("/livez").unwrap()).unwrap();
    assert_eq!(
        live["status"], "live",
        "liveness does not fail for a node's disk: {live}"
    );
    assert!(collector.metric("ringtail_checkpoint_errors_total") >= 1.0);

    drop(immutable);
    append_lines(&app, "", 200..210, 0);
    assert_eq!(wait_for_lines(&out, 210, Duration::from_secs(10)), 210);
    collector.wait_until(Duration::from_secs(5), "ready again", || {
        collector
            .get("/readyz")
            .is_some_and(|b| b.contains(r#""status":"ready""#))
    });
    let (status, log) = collector.stop();
    assert!(status.success(), "{log}");
    assert!(log.contains("cannot write checkpoints"), "{log}");
}
