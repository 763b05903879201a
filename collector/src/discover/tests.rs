//! Discovery's tests: real directories, real inotify, a reader inbox as the other end.

use std::io::Write;
use std::time::Duration;

use super::*;
use crate::container::resolver::KubernetesSettings;
use crate::cut::decode::Format;
use crate::file::FileId;
use crate::read::control::{self, Control, ReaderInbox};
use crate::source::glob::{ExcludePattern, PathPattern};

const WAIT: Duration = Duration::from_secs(5);

fn source(globs: &[String], exclude: &[&str]) -> Arc<Source> {
    let mut source = Source {
        paths: globs.iter().map(|g| PathPattern::new(g).unwrap()).collect(),
        exclude: exclude
            .iter()
            .map(|g| ExcludePattern::new(g).unwrap())
            .collect(),
        ..Source::new(0, "test", Format::Raw)
    };
    source.cut.max_line_bytes = 1024;
    Arc::new(source)
}

struct Running {
    inbox: ReaderInbox,
    stop: Option<OwnedFd>,
    thread: Option<std::thread::JoinHandle<Result<(), DiscoveryError>>>,
}

impl Running {
    /// Discovery for `source` (its start-up scan done), not yet running.
    fn create(source: Arc<Source>) -> (Discovery, ReaderInbox, OwnedFd) {
        Self::create_with(source, &Arc::new(Metrics::new()))
    }

    /// As [`create`](Self::create), counting in `metrics`.
    fn create_with(
        source: Arc<Source>,
        metrics: &Arc<Metrics>,
    ) -> (Discovery, ReaderInbox, OwnedFd) {
        let (handle, inbox) = control::channel();
        let (stop_read, stop_write) = rustix::pipe::pipe().unwrap();
        let tracker = Arc::new(AckTracker::new(Arc::clone(metrics)));
        let discovery = Discovery::new(
            vec![source],
            vec![handle],
            stop_read,
            metrics,
            tracker,
            None,
            &KubernetesSettings::default(),
            Arc::default(),
            Arc::default(),
        )
        .unwrap();
        (discovery, inbox, stop_write)
    }

    fn start(source: Arc<Source>) -> (Running, usize) {
        let (discovery, inbox, stop_write) = Self::create(source);
        let files = discovery.files();
        (Self::run(discovery, inbox, stop_write), files)
    }

    fn run(discovery: Discovery, inbox: ReaderInbox, stop: OwnedFd) -> Running {
        Running {
            inbox,
            stop: Some(stop),
            thread: Some(std::thread::spawn(move || discovery.run())),
        }
    }

    fn next(&self) -> Control {
        self.inbox
            .next_control(WAIT)
            .expect("a control message within 5 s")
    }

    fn quiet(&self) -> bool {
        self.inbox
            .next_control(Duration::from_millis(300))
            .is_none()
    }

    fn stop(mut self) {
        drop(self.stop.take());
        let result = self.thread.take().unwrap().join().unwrap();
        assert!(result.is_ok(), "{result:?}");
    }
}

fn opened(control: Control) -> (FileId, PathBuf) {
    match control {
        Control::Open { ctx, offset, .. } => {
            assert_eq!(offset, 0);
            (ctx.id, ctx.path.clone())
        }
        other => panic!("expected Open, got {other:?}"),
    }
}

#[test]
fn existing_new_renamed_and_deleted_files() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    std::fs::write(logs.join("a.log"), b"x\n").unwrap();
    let glob = format!("{}/**/*.log", logs.display());
    let (d, files) = Running::start(source(&[glob], &["*.gz"]));
    assert_eq!(files, 1);
    let (_, path) = opened(d.next());
    assert_eq!(path, logs.join("a.log"));

    // A new directory and a file in it.
    std::fs::create_dir_all(logs.join("pod/app")).unwrap();
    std::fs::write(logs.join("pod/app/0.log"), b"y\n").unwrap();
    let (id, path) = opened(d.next());
    assert_eq!(path, logs.join("pod/app/0.log"));

    // Rotation by rename keeps the file, although the new name does not match the glob.
    std::fs::rename(
        logs.join("pod/app/0.log"),
        logs.join("pod/app/0.log.20240101"),
    )
    .unwrap();
    match d.next() {
        Control::Renamed { id: renamed, path } => {
            assert_eq!(renamed, id);
            assert_eq!(path, logs.join("pod/app/0.log.20240101"));
        }
        other => panic!("expected Renamed, got {other:?}"),
    }
    std::fs::OpenOptions::new()
        .append(true)
        .open(logs.join("pod/app/0.log.20240101"))
        .unwrap()
        .write_all(b"more\n")
        .unwrap();
    let deadline = std::time::Instant::now() + WAIT;
    while !d.inbox.dirty_ids().contains(&id) {
        assert!(
            std::time::Instant::now() < deadline,
            "a write to the rotated file marks it dirty"
        );
        std::thread::sleep(Duration::from_millis(10));
    }

    // Deleted: gone (the reader drains it).
    std::fs::remove_file(logs.join("pod/app/0.log.20240101")).unwrap();
    assert!(matches!(d.next(), Control::Gone { id: gone } if gone == id));

    // Not matching, or excluded: nothing.
    std::fs::write(logs.join("notes.txt"), b"z\n").unwrap();
    std::fs::write(logs.join("old.log.gz"), b"z\n").unwrap();
    assert!(d.quiet());
    d.stop();
}

#[test]
fn a_root_created_after_start_is_watched() {
    let dir = tempfile::tempdir().unwrap();
    let glob = format!("{}/later/deep/*.log", dir.path().display());
    let (d, files) = Running::start(source(&[glob], &[]));
    assert_eq!(files, 0);
    std::fs::create_dir_all(dir.path().join("later/deep")).unwrap();
    std::fs::write(dir.path().join("later/deep/x.log"), b"x\n").unwrap();
    let (_, path) = opened(d.next());
    assert_eq!(path, dir.path().join("later/deep/x.log"));
    // Deeper than the glob allows: not watched, not read.
    std::fs::create_dir_all(dir.path().join("later/deep/deeper")).unwrap();
    std::fs::write(dir.path().join("later/deep/deeper/y.log"), b"y\n").unwrap();
    assert!(d.quiet());
    d.stop();
}

#[test]
fn two_files_with_the_same_content_are_two_files() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.log"), b"same line\n").unwrap();
    std::fs::write(dir.path().join("b.log"), b"same line\n").unwrap();
    let glob = format!("{}/*.log", dir.path().display());
    let (d, files) = Running::start(source(&[glob], &[]));
    assert_eq!(files, 2, "identity is the inode, not the content");
    let mut paths = vec![opened(d.next()).1, opened(d.next()).1];
    paths.sort();
    assert_eq!(
        paths,
        vec![dir.path().join("a.log"), dir.path().join("b.log")]
    );
    d.stop();
}

#[test]
fn a_file_created_and_renamed_before_discovery_looked_is_read_under_its_new_name() {
    let dir = tempfile::tempdir().unwrap();
    let glob = format!("{}/*.log", dir.path().display());
    let (discovery, inbox, stop) = Running::create(source(&[glob], &[]));
    // All of this happens before discovery reads a single event.
    std::fs::write(dir.path().join("0.log"), b"first file\n").unwrap();
    std::fs::rename(dir.path().join("0.log"), dir.path().join("0.log.1")).unwrap();
    std::fs::write(dir.path().join("0.log"), b"second file\n").unwrap();
    let d = Running::run(discovery, inbox, stop);
    let mut paths = Vec::new();
    while let Some(control) = d.inbox.next_control(Duration::from_millis(500)) {
        if let Control::Open { ctx, .. } = control {
            paths.push(ctx.path.clone());
        }
    }
    d.stop();
    paths.sort();
    assert_eq!(
        paths,
        vec![dir.path().join("0.log"), dir.path().join("0.log.1")],
        "both files are read"
    );
}

#[test]
fn a_file_seen_through_a_symlink_is_read_once() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("real.log"), b"x\n").unwrap();
    std::os::unix::fs::symlink(dir.path().join("real.log"), dir.path().join("link.log")).unwrap();
    let glob = format!("{}/*.log", dir.path().display());
    let (d, files) = Running::start(source(&[glob], &[]));
    assert_eq!(files, 1);
    opened(d.next());
    assert!(d.quiet());
    d.stop();
}

#[test]
fn a_busy_directory_is_quiet_until_its_marks_go_out_and_then_heard_again() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.log"), b"x\n").unwrap();
    std::fs::write(dir.path().join("b.log"), b"y\n").unwrap();
    let glob = format!("{}/*.log", dir.path().display());
    let metrics = Arc::new(Metrics::new());
    let (mut discovery, inbox, stop) = Running::create_with(source(&[glob], &[]), &metrics);
    discovery.set_linger(Duration::from_millis(300));
    let d = Running::run(discovery, inbox, stop);
    let mut ids = HashMap::new();
    for _ in 0..2 {
        let (id, path) = opened(d.next());
        ids.insert(path.file_name().unwrap().to_string_lossy().into_owned(), id);
    }
    let (a, b) = (ids["a.log"], ids["b.log"]);
    let modify = || {
        metrics
            .discovery_events
            .get_or_create(&KindLabel { kind: "modify" })
            .get()
    };
    let before = modify();
    d.inbox.take_dirty();

    // Writes to two files in turn: inotify cannot fold one into the last queued event, so
    // unless the directory goes quiet each is an event.
    let open = |name: &str| {
        std::fs::OpenOptions::new()
            .append(true)
            .open(dir.path().join(name))
            .unwrap()
    };
    let (mut fa, mut fb) = (open("a.log"), open("b.log"));
    for _ in 0..200 {
        fa.write_all(b"line\n").unwrap();
        fb.write_all(b"line\n").unwrap();
        std::thread::sleep(Duration::from_micros(500));
    }
    let wait_for = |id: FileId, what: &str| {
        let deadline = std::time::Instant::now() + WAIT;
        while !d.inbox.dirty_ids().contains(&id) {
            assert!(std::time::Instant::now() < deadline, "{what}");
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    wait_for(a, "the writes to a.log mark it dirty");
    wait_for(b, "the writes to b.log mark it dirty");
    let events = modify() - before;
    assert!(
        events < 100,
        "400 writes in a quiet directory made {events} modify events"
    );

    // The marks went out, and the directory reports writes again: one write to b.log
    // marks it once more.
    std::thread::sleep(Duration::from_millis(400));
    d.inbox.take_dirty();
    fb.write_all(b"later\n").unwrap();
    wait_for(b, "a write after the marks went out marks the file again");
    d.stop();
}

#[test]
fn a_file_parked_while_its_directory_is_quiet_is_heard_at_once() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.log"), b"x\n").unwrap();
    std::fs::write(dir.path().join("b.log"), b"y\n").unwrap();
    let glob = format!("{}/*.log", dir.path().display());
    let (mut discovery, inbox, stop) = Running::create(source(&[glob], &[]));
    // A long round: without the reader's signal, a.log would be heard of at its end.
    discovery.set_linger(Duration::from_secs(4));
    let d = Running::run(discovery, inbox, stop);
    let mut ids = HashMap::new();
    for _ in 0..2 {
        let (id, path) = opened(d.next());
        ids.insert(path.file_name().unwrap().to_string_lossy().into_owned(), id);
    }
    let (a, b) = (ids["a.log"], ids["b.log"]);
    let append = |name: &str, bytes: &[u8]| {
        std::fs::OpenOptions::new()
            .append(true)
            .open(dir.path().join(name))
            .unwrap()
            .write_all(bytes)
            .unwrap();
    };
    let wait_for = |id: FileId, what: &str| {
        let deadline = std::time::Instant::now() + Duration::from_secs(1);
        while !d.inbox.dirty_ids().contains(&id) {
            assert!(std::time::Instant::now() < deadline, "{what}");
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    d.inbox.take_dirty();

    // A write to b.log starts a round and quiets the directory: a.log's writes go unheard
    // until the round's end.
    append("b.log", b"more\n");
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        d.inbox.dirty_ids().is_empty(),
        "the round holds b.log's mark"
    );

    // The reader parks a.log: discovery hears the directory again and sends what it holds.
    d.inbox.set_parked(a, true);
    wait_for(a, "a park wakes the quiet directory and its marks go out");
    assert!(d.inbox.dirty_ids().contains(&b));

    // The parked file's next write reaches its reader at once, not at a round's end.
    d.inbox.take_dirty();
    append("a.log", b"after\n");
    wait_for(a, "a write to a parked file is heard at once");
    d.stop();
}
