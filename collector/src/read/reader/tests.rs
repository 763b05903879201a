//! The reader's unit tests: rounds of reads against real files, with a rig standing in for
//! discovery and the workers.

use std::io::Write;
use std::path::Path;

use std::fs::File;

use crossbeam::channel::Sender;

use super::*;
use crate::cut::decode::Format;
use crate::file::FileIdentity;
use crate::read::control::{ReaderHandle, channel_sharing};
use crate::read::pread::PreadBackend;
use crate::source::Source;

struct Rig {
    reader: Reader,
    handle: ReaderHandle,
    worker_rx: Receiver<Vec<WorkItem>>,
    _stop: Sender<()>,
}

fn rig(chunk: usize) -> Rig {
    rig_with(chunk, 1024)
}

fn rig_with(chunk: usize, max_open_deleted: usize) -> Rig {
    rig_parking(
        chunk,
        max_open_deleted,
        Duration::from_secs(300),
        &Arc::new(FileBudget::unlimited()),
    )
}

fn rig_parking(
    chunk: usize,
    max_open_deleted: usize,
    close_idle: Duration,
    budget: &Arc<FileBudget>,
) -> Rig {
    let (handle, inbox) = channel_sharing(budget);
    let (worker_tx, worker_rx) = crossbeam::channel::bounded(64);
    let (stop, shutdown) = crossbeam::channel::bounded(0);
    let metrics = Arc::new(Metrics::new());
    let pool = BufferPool::new(chunk, 64 * chunk, Arc::clone(&metrics));
    let worker = metrics.queue_sender("worker:0".to_string(), worker_tx);
    let tracker = Arc::new(AckTracker::new(Arc::clone(&metrics)));
    let reader = Reader::new(
        0,
        Box::new(PreadBackend::default()),
        inbox,
        ReaderShared {
            pool,
            workers: vec![worker],
            shutdown,
            metrics,
            tracker,
            max_open_deleted,
            max_deleted_bytes: u64::MAX,
            dirty_flags: None,
            rearm: false,
            close_idle,
            gone_linger: Duration::ZERO,
            heart: crate::liveness::Heart::detached("reader-0"),
            stall_for_test: false,
        },
    );
    Rig {
        reader,
        handle,
        worker_rx,
        _stop: stop,
    }
}

fn source() -> Arc<Source> {
    let mut source = Source::new(0, "test", Format::Raw);
    source.cut.max_line_bytes = 1024;
    Arc::new(source)
}

fn open(rig: &Rig, id: u64, path: &Path) {
    open_of(rig, id, path, source());
}

/// Like [`open`], for a file of `source`.
fn open_of(rig: &Rig, id: u64, path: &Path, source: Arc<Source>) {
    let ctx = Arc::new(FileCtx {
        id: FileId(id),
        path: path.to_path_buf(),
        identity: FileIdentity { dev: 0, ino: id },
        source,
        meta: Default::default(),
    });
    let file = File::open(path).unwrap();
    rig.reader.tracker.open(
        ctx.id,
        crate::deliver::ack::Registration {
            identity: ctx.identity,
            born: None,
            fingerprint: Fingerprint::of(b""),
            path,
            source: "test",
            offset: 0,
        },
    );
    assert!(rig.handle.send(Control::Open {
        ctx,
        file,
        offset: 0,
        fingerprint_len: 0,
        codec: None,
    }));
}

/// Like [`open`], with the file's real identity (parked files are opened again by it), and
/// its slot taken in the budget as discovery does.
fn open_real(rig: &Rig, id: u64, path: &Path) {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).unwrap();
    assert!(rig.reader.budget.acquire());
    let ctx = Arc::new(FileCtx {
        id: FileId(id),
        path: path.to_path_buf(),
        identity: FileIdentity {
            dev: meta.dev(),
            ino: meta.ino(),
        },
        source: source(),
        meta: Default::default(),
    });
    assert!(rig.handle.send(Control::Open {
        ctx,
        file: File::open(path).unwrap(),
        offset: 0,
        fingerprint_len: 0,
        codec: None,
    }));
}

/// Runs one round without sleeping in it (a wake-up for a file it does not have).
fn wake_round(rig: &mut Rig) -> (Vec<(u64, u64, usize)>, Vec<String>) {
    rig.handle.mark_dirty([FileId(99)]);
    round(rig)
}

/// Runs one round and returns (file, offset, length) of each chunk it sent, plus the other
/// items by name.
fn round(rig: &mut Rig) -> (Vec<(u64, u64, usize)>, Vec<String>) {
    assert!(rig.reader.round().is_ok());
    let mut data = Vec::new();
    let mut other = Vec::new();
    while let Ok(items) = rig.worker_rx.try_recv() {
        for item in items {
            match item {
                WorkItem::Data {
                    id, offset, bytes, ..
                } => data.push((id.0, offset, bytes.len())),
                WorkItem::Open { ctx, .. } => other.push(format!("open {}", ctx.id.0)),
                WorkItem::Truncated { id } => other.push(format!("truncated {}", id.0)),
                WorkItem::Renamed { ctx } => other.push(format!("renamed {}", ctx.id.0)),
                WorkItem::Close { id } => other.push(format!("close {}", id.0)),
                WorkItem::Hole { id, to } => other.push(format!("hole {} to {to}", id.0)),
                WorkItem::Idle {
                    id,
                    at,
                    unfinished_line,
                    multiline,
                } => other.push(format!(
                    "idle {} at {at}{}{}",
                    id.0,
                    if unfinished_line { " line" } else { "" },
                    if multiline { " multiline" } else { "" }
                )),
            }
        }
    }
    (data, other)
}

#[test]
fn holes_of_a_sparse_file_are_skipped_with_the_zeros_that_pad_their_blocks() {
    use std::io::{Seek, SeekFrom};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sparse.log");
    let mut file = File::create(&path).unwrap();
    file.write_all(b"a\n").unwrap();
    let after = (1 << 20) + 100;
    file.seek(SeekFrom::Start(after)).unwrap();
    file.write_all(b"b\nc").unwrap();
    file.write_all(&[0; 10]).unwrap();
    let mut rig = rig(64 * 1024);
    open(&rig, 1, &path);
    let (mut data, mut other) = (Vec::new(), Vec::new());
    // Each round reads once: the data, the padding and hole, the padding after it, the data.
    for _ in 0..4 {
        let (d, o) = round(&mut rig);
        data.extend(d);
        other.extend(o);
    }
    assert_eq!(
        data,
        vec![(1, 0, 2), (1, after, 13)],
        "the written bytes, zeros that were written included, and nothing of the hole: {other:?}"
    );
    assert_eq!(
        other.iter().rfind(|o| o.starts_with("hole")).unwrap(),
        &format!("hole 1 to {after}"),
        "{other:?}"
    );
    let skipped = rig.reader.files[&FileId(1)].sparse_skipped.get();
    assert_eq!(skipped, after - 2);
}

#[test]
fn a_busy_file_does_not_starve_a_quiet_one() {
    let dir = tempfile::tempdir().unwrap();
    let busy = dir.path().join("busy.log");
    let quiet = dir.path().join("quiet.log");
    std::fs::write(&busy, vec![b'x'; 1 << 20]).unwrap();
    std::fs::write(&quiet, b"hello\n").unwrap();
    let mut rig = rig(64 * 1024);
    open(&rig, 1, &busy);
    open(&rig, 2, &quiet);
    let (data, other) = round(&mut rig);
    assert_eq!(other, vec!["open 1", "open 2"]);
    assert_eq!(
        data,
        vec![(1, 0, 65536), (2, 0, 6)],
        "one chunk (the budget) of each file per round"
    );
    let (data, _) = round(&mut rig);
    assert_eq!(
        data,
        vec![(1, 65536, 65536)],
        "the busy file goes on; the quiet one has caught up"
    );
    let mut total = 2 * 65536;
    while total < 1 << 20 {
        let (data, _) = round(&mut rig);
        total += data.iter().map(|d| d.2).sum::<usize>();
    }
    assert_eq!(total, 1 << 20);
}

#[test]
fn new_data_is_read_when_the_file_is_marked_dirty() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.log");
    std::fs::write(&path, b"one\n").unwrap();
    let mut rig = rig(4096);
    open(&rig, 1, &path);
    let (data, _) = round(&mut rig);
    assert_eq!(data, vec![(1, 0, 4)]);
    std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap()
        .write_all(b"two\n")
        .unwrap();
    rig.handle.mark_dirty([FileId(1)]);
    let (data, _) = round(&mut rig);
    assert_eq!(data, vec![(1, 4, 4)]);
}

#[test]
fn an_idle_notice_goes_out_once_a_file_had_nothing_more_to_read_for_its_partial_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.log");
    std::fs::write(&path, b"whole\nhal").unwrap();
    let mut rig = rig(4096);
    let mut source = Source::new(0, "test", Format::Raw);
    source.cut.partial_timeout = Duration::from_secs(1);
    open_of(&rig, 1, &path, Arc::new(source));
    let (data, _) = round(&mut rig);
    assert_eq!(data, vec![(1, 0, 9)]);
    let append = |bytes: &[u8]| {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(bytes).unwrap();
    };

    // The rest of the line is written before the timeout, and read: the timeout starts again.
    std::thread::sleep(Duration::from_millis(500));
    append(b"f\nnext");
    rig.handle.mark_dirty([FileId(1)]);
    assert_eq!(round(&mut rig), (vec![(1, 9, 6)], vec![]));

    // More is written once the timeout has passed, but the reader has not read it yet (a
    // backlog): it is read, and no notice goes out before it.
    std::thread::sleep(Duration::from_millis(1250));
    append(b" line\nlast");
    rig.handle.mark_dirty([FileId(1)]);
    assert_eq!(round(&mut rig), (vec![(1, 15, 10)], vec![]));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(wake_round(&mut rig), (vec![], vec![]), "not yet");

    // Nothing more for the timeout: one notice at the file's offset, and only one.
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(
        wake_round(&mut rig),
        (vec![], vec!["idle 1 at 25 line".to_string()])
    );
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(wake_round(&mut rig), (vec![], vec![]));
}

/// With multi-line joining, a pause is told twice: at the multi-line `timeout` (the pending
/// records) and at `partial_timeout` (the unfinished line, and the records again: the line
/// joins one). Never before its time, once each per pause, and again after new data.
#[test]
fn a_multiline_file_is_told_of_each_idle_timeout_once_per_pause() {
    use crate::cut::multiline::{MultilineRules, preset};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.log");
    std::fs::write(&path, b"head\n\tat x\nhal").unwrap();
    let mut rig = rig(4096);
    let mut source = Source::new(0, "test", Format::Raw);
    source.cut.partial_timeout = Duration::from_secs(5);
    source.cut.multiline = Some(Arc::new(MultilineRules {
        mode: preset("java").unwrap(),
        end: None,
        max_lines: 100,
        max_bytes: 1 << 20,
        timeout: Duration::from_secs(1),
    }));
    open_of(&rig, 1, &path, Arc::new(source));
    let (data, _) = round(&mut rig);
    assert_eq!(data, vec![(1, 0, 14)]);
    let start = Instant::now();
    let notices_at = |rig: &mut Rig, start: Instant, after_ms: u64| {
        let now = start + Duration::from_millis(after_ms);
        rig.reader.send_idle_notices(now);
        assert!(rig.reader.send_out().is_ok());
        let mut told = Vec::new();
        while let Ok(items) = rig.worker_rx.try_recv() {
            for item in items {
                if let WorkItem::Idle {
                    at,
                    unfinished_line,
                    multiline,
                    ..
                } = item
                {
                    told.push((at, unfinished_line, multiline));
                }
            }
        }
        (told, rig.reader.next_timer(now))
    };
    let (told, timer) = notices_at(&mut rig, start, 900);
    assert!(told.is_empty(), "not before its time: {told:?}");
    let timer = timer.unwrap();
    assert!(
        timer >= Duration::from_millis(100) && timer <= Duration::from_millis(350),
        "due at 1 s, up to a quarter of it late: {timer:?}"
    );
    assert_eq!(notices_at(&mut rig, start, 1100).0, vec![(14, false, true)]);
    assert!(notices_at(&mut rig, start, 3000).0.is_empty(), "once");
    assert_eq!(notices_at(&mut rig, start, 5100).0, vec![(14, true, true)]);
    let (told, timer) = notices_at(&mut rig, start, 60_000);
    assert!(told.is_empty(), "once");
    assert!(
        timer.is_none_or(|t| t > Duration::from_secs(100)),
        "no notice timer left: {timer:?}"
    );

    // New data: a new pause, told again.
    std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap()
        .write_all(b"f\n")
        .unwrap();
    rig.handle.mark_dirty([FileId(1)]);
    assert_eq!(round(&mut rig), (vec![(1, 14, 2)], vec![]));
    let start = Instant::now();
    assert_eq!(notices_at(&mut rig, start, 1100).0, vec![(16, false, true)]);
}

/// A chunk says when its round's reads were started, and whether its read found the file's
/// end: the multi-line timeout counts only from such reads.
#[test]
fn a_chunk_says_whether_its_read_found_the_files_end() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.log");
    std::fs::write(&path, vec![b'y'; 5000]).unwrap();
    let mut rig = rig(4096);
    open(&rig, 1, &path);
    let before = Instant::now();
    let mut seen = Vec::new();
    for _ in 0..2 {
        assert!(rig.reader.round().is_ok());
        while let Ok(items) = rig.worker_rx.try_recv() {
            for item in items {
                if let WorkItem::Data {
                    bytes,
                    read_started,
                    read_done,
                    at_end,
                    ..
                } = item
                {
                    assert!(read_started >= before && read_done >= read_started);
                    seen.push((bytes.len(), at_end));
                }
            }
        }
    }
    assert_eq!(seen, vec![(4096, false), (904, true)]);
}

#[test]
fn a_gone_file_is_drained_then_closed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.log");
    std::fs::write(&path, vec![b'y'; 10_000]).unwrap();
    let mut rig = rig(4096);
    open(&rig, 1, &path);
    std::fs::remove_file(&path).unwrap();
    assert!(rig.handle.send(Control::Gone { id: FileId(1) }));
    let mut data = Vec::new();
    let mut other = Vec::new();
    // Three rounds: two full chunks, then a short read that drains the file.
    for _ in 0..3 {
        let (d, o) = round(&mut rig);
        data.extend(d);
        other.extend(o);
    }
    assert_eq!(data, vec![(1, 0, 4096), (1, 4096, 4096), (1, 8192, 1808)]);
    assert_eq!(other, vec!["open 1", "close 1"]);
    assert_eq!(rig.reader.metrics.files_open.get(), 0);
}

#[test]
fn past_the_limit_the_oldest_deleted_file_is_closed_and_its_unread_bytes_counted() {
    let dir = tempfile::tempdir().unwrap();
    let mut rig = rig_with(4096, 2);
    for i in 1..=3u64 {
        let path = dir.path().join(format!("{i}.log"));
        std::fs::write(&path, vec![b'z'; 10_000]).unwrap();
        open(&rig, i, &path);
    }
    round(&mut rig);
    for i in 1..=3u64 {
        std::fs::remove_file(dir.path().join(format!("{i}.log"))).unwrap();
        assert!(rig.handle.send(Control::Gone { id: FileId(i) }));
    }
    let (data, other) = round(&mut rig);
    assert_eq!(
        other,
        vec!["close 1"],
        "the oldest of three, with a limit of two"
    );
    let label = Metrics::lost("test", Metrics::LOST_DELETED_LIMIT);
    assert_eq!(
        rig.reader.metrics.lost_bytes.get_or_create(&label).get(),
        10_000 - 4096
    );
    assert!(data.iter().all(|d| d.0 != 1));
    // The other two are drained and closed normally.
    let mut closed = Vec::new();
    for _ in 0..4 {
        if closed.len() == 2 {
            break;
        }
        closed.extend(round(&mut rig).1);
    }
    assert_eq!(closed, vec!["close 2", "close 3"]);
    assert_eq!(rig.reader.metrics.deleted_files_open.get(), 0);
}

#[test]
fn deleted_files_are_read_before_live_ones() {
    let dir = tempfile::tempdir().unwrap();
    let mut rig = rig(4096);
    let live = dir.path().join("live.log");
    let deleted = dir.path().join("deleted.log");
    std::fs::write(&live, vec![b'l'; 100_000]).unwrap();
    std::fs::write(&deleted, vec![b'd'; 100_000]).unwrap();
    open(&rig, 1, &live);
    open(&rig, 2, &deleted);
    round(&mut rig);
    std::fs::remove_file(&deleted).unwrap();
    assert!(rig.handle.send(Control::Gone { id: FileId(2) }));
    let (data, _) = round(&mut rig);
    assert_eq!(
        data[0].0, 2,
        "the deleted file's chunk comes first: {data:?}"
    );
}

#[test]
fn a_short_file_gets_a_longer_fingerprint_as_it_grows() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.log");
    std::fs::write(&path, b"first\n").unwrap();
    let mut rig = rig(4096);
    open(&rig, 1, &path);
    round(&mut rig);
    let fingerprint =
        |rig: &Rig| rig.reader.tracker.snapshot(std::time::Duration::ZERO)[0].fingerprint;
    assert_eq!(fingerprint(&rig), Fingerprint::of(b"first\n"));
    let mut more = b"first\n".to_vec();
    for n in 0..100 {
        let line = format!("line {n}\n");
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(line.as_bytes())
            .unwrap();
        more.extend_from_slice(line.as_bytes());
    }
    rig.handle.mark_dirty([FileId(1)]);
    round(&mut rig);
    assert_eq!(
        fingerprint(&rig),
        Fingerprint::of(&more[..FINGERPRINT_BYTES]),
        "read from offset 7: the head is read again"
    );
}

#[test]
fn truncation_below_the_offset_restarts_at_zero() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.log");
    std::fs::write(&path, b"0123456789\n").unwrap();
    let mut rig = rig(4096);
    open(&rig, 1, &path);
    round(&mut rig);
    std::fs::write(&path, b"").unwrap();
    rig.handle.mark_dirty([FileId(1)]);
    let (data, other) = round(&mut rig);
    assert!(data.is_empty());
    assert_eq!(other, vec!["truncated 1"]);
    std::fs::write(&path, b"new\n").unwrap();
    rig.handle.mark_dirty([FileId(1)]);
    let (data, _) = round(&mut rig);
    assert_eq!(data, vec![(1, 0, 4)]);
}

#[test]
fn an_idle_file_is_parked_and_opened_again_on_its_next_write() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.log");
    std::fs::write(&path, "a\n").unwrap();
    let budget = Arc::new(FileBudget::new(8));
    let mut rig = rig_parking(4096, 16, Duration::from_millis(20), &budget);
    open_real(&rig, 1, &path);
    let (data, _) = round(&mut rig);
    assert_eq!(data, vec![(1, 0, 2)]);
    assert_eq!(budget.open(), 1);
    // Nothing to do: the reader sleeps until the file's idle deadline, then parks it.
    let started = std::time::Instant::now();
    while !rig.reader.files[&FileId(1)].parked {
        wake_round(&mut rig);
        assert!(started.elapsed() < Duration::from_secs(5), "never parked");
    }
    assert_eq!(budget.open(), 0, "its slot is given back");
    assert_eq!(rig.reader.metrics.files_parked.get(), 1);
    assert_eq!(rig.reader.metrics.files_open.get(), 0);
    assert!(rig.handle.is_parked(FileId(1)), "discovery sees it parked");

    // Its next write opens it again, at its offset.
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    file.write_all(b"bb\n").unwrap();
    rig.handle.mark_dirty([FileId(1)]);
    let (data, _) = round(&mut rig);
    assert_eq!(data, vec![(1, 2, 3)]);
    assert!(!rig.reader.files[&FileId(1)].parked);
    assert!(!rig.handle.is_parked(FileId(1)));
    assert_eq!(budget.open(), 1);

    // Parked again, then renamed away before its next write: it stays parked (the rename's
    // event brings its new path), and opens again once it has it.
    while !rig.reader.files[&FileId(1)].parked {
        wake_round(&mut rig);
    }
    let moved = dir.path().join("b.log");
    std::fs::rename(&path, &moved).unwrap();
    file.write_all(b"ccc\n").unwrap();
    rig.handle.mark_dirty([FileId(1)]);
    let (data, _) = round(&mut rig);
    assert!(data.is_empty());
    assert!(rig.reader.files[&FileId(1)].parked);
    assert!(rig.handle.send(Control::Renamed {
        id: FileId(1),
        path: moved.clone(),
    }));
    let mut data = Vec::new();
    for _ in 0..2 {
        data.extend(round(&mut rig).0);
    }
    assert_eq!(data, vec![(1, 5, 4)]);

    // Gone while parked: closed, its state handed on.
    while !rig.reader.files[&FileId(1)].parked {
        wake_round(&mut rig);
    }
    assert!(rig.handle.send(Control::Gone { id: FileId(1) }));
    let (_, other) = wake_round(&mut rig);
    assert_eq!(other, vec!["close 1"]);
    assert_eq!(rig.reader.metrics.files_parked.get(), 0);
    assert_eq!(budget.open(), 0);
    assert!(!rig.handle.is_parked(FileId(1)));
    assert_eq!(
        gone_while_parked(&rig),
        0,
        "nothing was written since it was parked"
    );
}

fn gone_while_parked(rig: &Rig) -> u64 {
    rig.reader
        .metrics
        .files_gone_while_parked
        .get_or_create(&Metrics::source("test"))
        .get()
}

/// A parked file written and deleted before its reader could open it again: the write is
/// lost, and counted — whether the reader tried to open it, or the write's mark still waited
/// when the deletion came.
#[test]
fn a_write_to_a_parked_file_deleted_before_it_is_opened_again_is_counted() {
    for taken in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        std::fs::write(&path, "a\n").unwrap();
        let budget = Arc::new(FileBudget::new(8));
        let mut rig = rig_parking(4096, 16, Duration::from_millis(20), &budget);
        open_real(&rig, 1, &path);
        round(&mut rig);
        while !rig.reader.files[&FileId(1)].parked {
            wake_round(&mut rig);
        }
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        file.write_all(b"lost\n").unwrap();
        std::fs::remove_file(&path).unwrap();
        rig.handle.mark_dirty([FileId(1)]);
        if taken {
            let (data, _) = round(&mut rig);
            assert!(data.is_empty(), "nothing reaches it any more");
        }
        assert!(rig.handle.send(Control::Gone { id: FileId(1) }));
        let (_, other) = wake_round(&mut rig);
        assert_eq!(other, vec!["close 1"], "taken: {taken}");
        assert_eq!(gone_while_parked(&rig), 1, "taken: {taken}");
    }
}

#[test]
fn when_new_files_wait_for_the_budget_the_least_recently_active_idle_files_are_parked() {
    let dir = tempfile::tempdir().unwrap();
    let budget = Arc::new(FileBudget::new(4));
    let mut rig = rig_parking(4096, 16, Duration::from_secs(300), &budget);
    for id in 1..=4 {
        let path = dir.path().join(format!("{id}.log"));
        std::fs::write(&path, "x\n").unwrap();
        open_real(&rig, id, &path);
        round(&mut rig);
    }
    assert_eq!(budget.open(), 4);
    assert!(!budget.acquire(), "spent");
    // Files are parked to make room once idle for a second.
    assert!(rig.handle.send(Control::MakeRoom { open: 2 }));
    wake_round(&mut rig);
    assert_eq!(budget.open(), 4, "none idle long enough yet");
    std::thread::sleep(Duration::from_millis(1100));
    assert!(rig.handle.send(Control::MakeRoom { open: 2 }));
    wake_round(&mut rig);
    assert_eq!(budget.open(), 2, "down to half the budget");
    let parked: Vec<bool> = (1..=4)
        .map(|id| rig.reader.files[&FileId(id)].parked)
        .collect();
    assert_eq!(parked, vec![true, true, false, false], "oldest first");
}

/// Opens `path` as a compressed rotation in `codec`, from uncompressed `offset`.
fn open_compressed(rig: &Rig, id: u64, path: &Path, codec: crate::compressed::Codec, offset: u64) {
    let ctx = Arc::new(FileCtx {
        id: FileId(id),
        path: path.to_path_buf(),
        identity: FileIdentity { dev: 0, ino: id },
        source: source(),
        meta: Default::default(),
    });
    assert!(rig.handle.send(Control::Open {
        ctx,
        file: File::open(path).unwrap(),
        offset,
        fingerprint_len: 0,
        codec: Some(codec),
    }));
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// Rounds until file `id` is closed: its chunks' bytes, and the other items.
fn read_until_closed(rig: &mut Rig, id: u64) -> (Vec<(u64, u64, usize)>, Vec<String>) {
    let (mut data, mut other) = (Vec::new(), Vec::new());
    for _ in 0..100 {
        let (d, o) = wake_round(rig);
        data.extend(d);
        other.extend(o);
        if other.contains(&format!("close {id}")) {
            break;
        }
    }
    (data, other)
}

#[test]
fn a_compressed_rotation_is_read_decoded_from_its_offset_then_closed() {
    let dir = tempfile::tempdir().unwrap();
    let text: Vec<u8> = (0..10_000)
        .flat_map(|i| format!("line {i:05}\n").into_bytes())
        .collect();
    let path = dir.path().join("a.log.1.gz");
    std::fs::write(&path, gzip(&text)).unwrap();
    let mut rig = rig(16 * 1024);
    open_compressed(&rig, 1, &path, crate::compressed::Codec::Gzip, 1100);
    let (data, other) = read_until_closed(&mut rig, 1);
    assert!(other.contains(&"close 1".to_string()), "{other:?}");
    assert_eq!(data.first().map(|d| d.1), Some(1100));
    let read: usize = data.iter().map(|d| d.2).sum();
    assert_eq!(read as u64, text.len() as u64 - 1100, "{data:?}");
    // Contiguous, in uncompressed offsets.
    for pair in data.windows(2) {
        assert_eq!(pair[0].1 + pair[0].2 as u64, pair[1].1);
    }
    assert_eq!(rig.reader.metrics.deleted_files_open.get(), 0);
}

#[test]
fn a_damaged_compressed_rotation_delivers_what_decodes_and_counts_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let text: Vec<u8> = (0..200_000)
        .flat_map(|i| format!("line {i:06} {}\n", i * 7919 % 100_003).into_bytes())
        .collect();
    let bytes = gzip(&text);
    let path = dir.path().join("a.log.1.gz");
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let mut rig = rig(64 * 1024);
    open_compressed(&rig, 1, &path, crate::compressed::Codec::Gzip, 0);
    let (data, other) = read_until_closed(&mut rig, 1);
    assert!(other.contains(&"close 1".to_string()), "{other:?}");
    let read: u64 = data.iter().map(|d| d.2 as u64).sum();
    assert!(read > 0 && read < text.len() as u64, "{read}");
    let lost = rig
        .reader
        .metrics
        .lost_bytes
        .get_or_create(&Metrics::lost("test", Metrics::LOST_DAMAGED_ARCHIVE))
        .get();
    assert!(lost > 0 && lost <= bytes.len() as u64 / 2, "{lost}");
}

#[test]
fn a_gone_file_lingers_at_its_end_and_is_read_once_more_before_it_is_closed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("replaced.log");
    std::fs::write(&path, "line 1\n").unwrap();
    let mut rig = rig(4096);
    rig.reader.gone_linger = Duration::from_millis(50);
    open(&rig, 1, &path);
    let (data, _) = round(&mut rig);
    assert_eq!(data, vec![(1, 0, 7)]);
    // Replaced: its writer goes on with it.
    let mut writer = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    std::fs::remove_file(&path).unwrap();
    assert!(rig.handle.send(Control::Gone { id: FileId(1) }));
    let (_, other) = wake_round(&mut rig);
    assert!(!other.contains(&"close 1".to_string()), "{other:?}");
    writer.write_all(b"line 2\n").unwrap();
    std::thread::sleep(Duration::from_millis(60));
    let (data, other) = wake_round(&mut rig);
    assert_eq!(data, vec![(1, 7, 7)], "the writer's last line: {other:?}");
    assert!(
        other.contains(&"close 1".to_string()),
        "then closed: {other:?}"
    );
}

/// A burst of new files takes a buffer each; once the reader has been idle for
/// `TRIM_AFTER`, the free ones beyond two are unmapped, with a single timer for the idle spell
/// and none after it until something is read again.
#[test]
fn an_idle_reader_gives_back_the_buffers_a_burst_took() {
    let dir = tempfile::tempdir().unwrap();
    let mut rig = rig(4096);
    for id in 1..=10 {
        let path = dir.path().join(format!("{id}.log"));
        std::fs::write(&path, b"one line\n").unwrap();
        open(&rig, id, &path);
    }
    let (data, _) = round(&mut rig);
    assert_eq!(data.len(), 10, "{data:?}");
    // The work items are gone: every buffer is back in the pool, still mapped.
    assert_eq!(rig.reader.metrics.buffer_bytes.get(), 10 * 4096);

    let now = Instant::now();
    rig.reader.trim_when_idle(now);
    let timer = rig
        .reader
        .next_timer(now)
        .expect("one timer for the idle spell");
    assert!(timer > Duration::from_secs(1), "{timer:?}");
    assert_eq!(rig.reader.metrics.buffer_bytes.get(), 10 * 4096, "not yet");

    // The files' idle notices (their `partial_timeout` is the same 5 s) go out in the same
    // wake-up.
    rig.reader.send_idle_notices(now + timer);
    rig.reader.trim_when_idle(now + timer);
    assert_eq!(rig.reader.metrics.buffer_bytes.get(), 2 * 4096);
    // What is left is the idle files' own deadline (`close_idle`, 300 s here), once.
    assert!(rig.reader.trim_at.is_none());
    let left = rig.reader.next_timer(now + timer).unwrap();
    assert!(left > Duration::from_secs(200), "{left:?}");
    rig.reader.trim_when_idle(now + 2 * timer);
    assert!(
        rig.reader.trim_at.is_none(),
        "nothing read since: no new trim timer"
    );

    // Reading again maps what it needs.
    std::fs::write(dir.path().join("1.log"), b"one line\ntwo\n").unwrap();
    rig.handle.mark_dirty([FileId(1)]);
    let (data, _) = round(&mut rig);
    assert_eq!(data, vec![(1, 9, 4)]);
}
