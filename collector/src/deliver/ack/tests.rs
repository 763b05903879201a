//! Tests of the acknowledgement tracker: order, closing, claiming checkpoints, journals.

use super::*;

fn progress(id: u64, seq: u64, offset: u64) -> FileProgress {
    FileProgress {
        id: FileId(id),
        seq,
        offset,
        closed: false,
    }
}

fn tracker_with(ids: &[u64]) -> AckTracker {
    let tracker = AckTracker::new(Arc::new(Metrics::new()));
    for &id in ids {
        tracker.open(
            FileId(id),
            crate::deliver::ack::Registration {
                identity: FileIdentity { dev: 1, ino: id },
                born: None,
                fingerprint: Fingerprint::of(b""),
                path: Path::new("/x.log"),
                source: "s",
                offset: 0,
            },
        );
    }
    tracker
}

#[test]
fn offsets_advance_in_order_when_acks_come_out_of_order() {
    let tracker = tracker_with(&[1, 2]);
    tracker.complete(&[progress(1, 1, 200), progress(2, 0, 50)]);
    assert_eq!(
        tracker.offset(FileId(1)),
        Some(0),
        "batch 0 is still in flight"
    );
    assert_eq!(tracker.offset(FileId(2)), Some(50));
    tracker.complete(&[progress(1, 2, 300)]);
    assert_eq!(tracker.offset(FileId(1)), Some(0));
    tracker.complete(&[progress(1, 0, 100)]);
    assert_eq!(tracker.offset(FileId(1)), Some(300), "0, 1, 2 are all in");
    tracker.complete(&[progress(1, 0, 100)]);
    assert_eq!(
        tracker.offset(FileId(1)),
        Some(300),
        "a repeated ack is ignored"
    );
    // Truncation: offsets start again from 0, and order still decides.
    tracker.complete(&[progress(1, 3, 0)]);
    assert_eq!(tracker.offset(FileId(1)), Some(0));
}

#[test]
fn a_closed_file_leaves_once_its_last_batch_is_acknowledged() {
    let tracker = tracker_with(&[1]);
    let mut last = progress(1, 1, 500);
    last.closed = true;
    tracker.complete(&[last]);
    assert_eq!(tracker.files(), 1, "batch 0 is still in flight");
    tracker.complete(&[progress(1, 0, 100)]);
    assert_eq!(tracker.files(), 0);
    assert!(tracker.snapshot(Duration::from_secs(60)).is_empty());
}

fn loaded(ino: u64, head: &[u8], offset: u64, gone_since: Option<u64>) -> Entry {
    Entry {
        dev: 1,
        born: None,
        ino,
        fingerprint: Fingerprint::of(head),
        offset,
        path: PathBuf::from(format!("/logs/{ino}.log")),
        source: "s".to_string(),
        gone_since,
    }
}

#[test]
fn a_recycled_inode_is_told_apart_by_its_birth_time() {
    let banner = b"=== service banner, the same in every file it writes ===\n";
    let mut first = loaded(1, banner, 500, None);
    first.born = Some(1_000);
    let mut second = loaded(2, banner, 500, None);
    second.born = Some(2_000);
    let tracker = AckTracker::with_checkpoints(Arc::new(Metrics::new()), vec![first, second]);
    let id = |ino| FileIdentity { dev: 1, ino };
    assert_eq!(
        tracker.resume(id(1), Some(1_000), banner, 600),
        Resume::At { offset: 500 },
        "the same file"
    );
    assert_eq!(
        tracker.resume(id(2), Some(3_000), banner, 600),
        Resume::Recycled {
            previous: PathBuf::from("/logs/2.log")
        },
        "same inode and first bytes, born later: another file"
    );
}

#[test]
fn a_journal_advances_the_checkpoint_of_the_file_it_finds() {
    let head = b"first line of the file, longer than the old fingerprint\n";
    // Checkpoints: file 1 at 100 (fingerprint of 10 bytes: saved while it was short),
    // file 2 at 50; the journal: file 1 at 300 (longer fingerprint), file 2 at 80 (same
    // fingerprint), file 3 (no checkpoint) at 40, file 4 at 70 on an inode whose
    // checkpoint is another file's.
    let tracker = AckTracker::with_checkpoints(
        Arc::new(Metrics::new()),
        vec![
            loaded(1, &head[..10], 100, None),
            loaded(2, head, 50, None),
            loaded(4, b"another file", 20, None),
        ],
    );
    tracker.journaled(vec![
        loaded(1, head, 300, None),
        loaded(2, head, 80, None),
        loaded(3, head, 40, None),
        loaded(4, head, 70, None),
    ]);
    let id = |ino| FileIdentity { dev: 1, ino };
    assert_eq!(
        tracker.resume(id(1), None, head, 1000),
        Resume::At { offset: 300 }
    );
    assert_eq!(
        tracker.resume(id(2), None, head, 1000),
        Resume::At { offset: 80 }
    );
    assert_eq!(
        tracker.resume(id(3), None, head, 1000),
        Resume::At { offset: 40 }
    );
    assert_eq!(
        tracker.resume(id(4), None, head, 1000),
        Resume::At { offset: 70 }
    );
    // Neither matches a recycled inode.
    tracker.journaled(vec![loaded(5, head, 70, None)]);
    assert!(matches!(
        tracker.resume(id(5), None, b"a new file", 1000),
        Resume::Recycled { .. }
    ));
}

#[test]
fn a_checkpoint_is_claimed_by_the_same_file_only() {
    let metrics = Arc::new(Metrics::new());
    let tracker = AckTracker::with_checkpoints(
        metrics,
        vec![
            loaded(1, b"first line\n", 11, None),
            loaded(2, b"first line\n", 500, None),
            loaded(3, b"first line\n", 11, None),
            loaded(4, b"first line\n", 900, None),
        ],
    );
    let id = |ino| FileIdentity { dev: 1, ino };
    assert_eq!(
        tracker.carried_source(id(1)).as_deref(),
        Some("s"),
        "known before it is claimed"
    );
    assert_eq!(
        tracker.resume(id(1), None, b"first line\nsecond\n", 18),
        Resume::At { offset: 11 }
    );
    assert_eq!(
        tracker.resume(id(1), None, b"first line\n", 11),
        Resume::New,
        "claimed once"
    );
    assert_eq!(
        tracker.resume(id(2), None, b"first line\n", 11),
        Resume::Truncated {
            offset: 500,
            size: 11
        }
    );
    assert!(matches!(
        tracker.resume(id(3), None, b"other file\n", 11),
        Resume::Recycled { .. }
    ));
    assert_eq!(tracker.resume(id(9), None, b"x", 1), Resume::New);
    assert!(tracker.has_carried(), "ino 4 was never seen");
    let snapshot = tracker.snapshot(Duration::from_secs(3600));
    assert_eq!(snapshot.len(), 1);
    assert_eq!(snapshot[0].ino, 4);
    assert!(snapshot[0].gone_since.is_some());
}

#[test]
fn unclaimed_checkpoints_are_forgotten_after_the_grace_period() {
    let now = unix_now();
    let tracker = AckTracker::with_checkpoints(
        Arc::new(Metrics::new()),
        vec![
            loaded(1, b"a", 1, Some(now - 7200)),
            loaded(2, b"b", 1, Some(now - 60)),
        ],
    );
    let snapshot = tracker.snapshot(Duration::from_secs(3600));
    assert_eq!(snapshot.iter().map(|e| e.ino).collect::<Vec<_>>(), vec![2]);
    assert_eq!(tracker.metrics.checkpoints_forgotten.get(), 1);
}

#[test]
fn a_batch_completes_only_when_every_sink_has_acknowledged_it() {
    let tracker = Arc::new(AckTracker::new(Arc::new(Metrics::new())));
    let progress = vec![FileProgress {
        id: FileId(1),
        offset: 100,
        seq: 0,
        closed: false,
    }];
    tracker.open(
        FileId(1),
        crate::deliver::ack::Registration {
            identity: FileIdentity { dev: 1, ino: 1 },
            born: None,
            fingerprint: Fingerprint::of(b""),
            path: std::path::Path::new("/a.log"),
            source: "s",
            offset: 0,
        },
    );
    let handle = AckHandle::new(2, progress, Arc::clone(&tracker));
    let for_second_sink = handle.clone();
    handle.ack();
    assert_eq!(tracker.offset(FileId(1)), Some(0));
    for_second_sink.ack();
    assert_eq!(tracker.offset(FileId(1)), Some(100));
}
