//! A new file on a recycled inode is not taken for the file the inode held, even when its first
//! 256 bytes are the same (a fixed banner): a raw log deleted while ringtail is down and
//! created again — ext4 hands the new file the old inode — is read from its start, not from
//! the old file's checkpoint. Real binary, real files on the build directory's file system.
#![allow(clippy::unwrap_used, reason = "tests fail loudly on broken invariants")]

mod common;

use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use common::{Collector, wait_for_lines};

fn config(dir: &Path) -> String {
    common::text_sink_config(dir, "", "app", "logs/*.log")
}

/// A log that starts with the same 300-byte banner every time, then `lines` lines.
fn write_log(path: &Path, tag: &str, lines: usize) {
    let mut f = std::fs::File::create(path).unwrap();
    writeln!(f, "BANNER {}", "=".repeat(292)).unwrap();
    for i in 0..lines {
        writeln!(f, "{tag} {i}").unwrap();
    }
}

/// Creates `path` on inode `inode`, freed just before. ext4 hands a new file in the same
/// directory the lowest free inode of its group, which is usually the one just freed; another
/// file created on the machine meanwhile (CI builds in parallel) may take it first, so files
/// are created until one gets it (each new file takes the next free inode), then the others
/// are removed.
fn reuse_inode(dir: &Path, path: &Path, inode: u64) {
    let mut others = Vec::new();
    let mut found = false;
    for i in 0..2_000 {
        let candidate = dir.join(format!("candidate-{i}.tmp"));
        std::fs::File::create(&candidate).unwrap();
        if std::fs::metadata(&candidate).unwrap().ino() == inode {
            std::fs::rename(&candidate, path).unwrap();
            found = true;
            break;
        }
        others.push(candidate);
    }
    for other in others {
        std::fs::remove_file(other).unwrap();
    }
    assert!(
        found,
        "the scenario needs the inode reused (ext4 does it at once)"
    );
}

#[test]
fn a_file_on_a_recycled_inode_with_the_same_first_bytes_is_read_whole() {
    // The build directory's file system (ext4 here), where freed inodes are reused at once.
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let dir = tmp.path();
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let app = logs.join("app.log");
    write_log(&app, "old", 100);
    let inode = std::fs::metadata(&app).unwrap().ino();
    let out = dir.join("out/out.ndjson");
    let collector = Collector::start(dir, &config(dir));
    assert_eq!(wait_for_lines(&out, 101, Duration::from_secs(10)), 101);
    let (status, log) = collector.stop();
    assert!(status.success(), "{log}");

    // While ringtail is down: deleted, and written again with the same banner, on the same
    // inode.
    std::fs::remove_file(&app).unwrap();
    reuse_inode(&logs, &app, inode);
    write_log(&app, "new", 300);
    assert_eq!(std::fs::metadata(&app).unwrap().ino(), inode);

    let collector = Collector::start(dir, &config(dir));
    let total = 101 + 301;
    assert_eq!(
        wait_for_lines(&out, total, Duration::from_secs(10)),
        total,
        "{}",
        collector.stderr()
    );
    std::thread::sleep(Duration::from_millis(300));
    let (status, log) = collector.stop();
    assert!(status.success(), "{log}");
    let text = std::fs::read_to_string(&out).unwrap();
    for i in 0..300 {
        assert!(text.contains(&format!("\nnew {i}\n")), "new {i} missing");
    }
    assert!(
        log.contains("inode reused by another file"),
        "the recycled inode is said:\n{log}"
    );
}
