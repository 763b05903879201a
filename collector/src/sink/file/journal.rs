//! The file sink's journal: what its output holds, so that a crash leaves no record in it
//! twice.
//!
//! Before the file sink appends a batch it appends a line here saying how long the output
//! will be once the batch is in, and how far each file the batch comes from is then written
//! (the batch's progress reports). The syncer makes the journal durable with the output
//! before it acknowledges, so every acknowledged batch is in the journal.
//!
//! At start-up ([`Journal::open`]) the last run's journal is replayed. The last line whose
//! output is still there and at least that long marks where the output stands: the output is
//! cut back to it (what follows is a batch the crash interrupted, or outputs opened after it)
//! and the offsets of the lines up to it are handed to the tracker ([`AckTracker::journaled`])
//! — they advance the saved checkpoints, which may be up to an interval behind, so those
//! records are not read and written again. Nothing the journal holds is ever cut: a record of
//! a file deleted since the last checkpoint was saved stays in the output. A line is whole
//! only with its newline and must parse; replay stops at the first that is not.
//!
//! The journal is rewritten from what is still needed — the files the tracker still has —
//! when it grows past [`COMPACT_BYTES`], and at every start. When it cannot be written (disk
//! full, say) it is removed, and the sink goes on without it: a crash may then leave
//! duplicates, as with any other sink, but nothing is cut that it does not describe.
//!
//! Owns the journal file and cutting the outputs back to it; it may not write the output.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::deliver::ack::{AckTracker, FileProgress};
use crate::deliver::checkpoint::Entry;
use crate::file::{FileId, FileIdentity};

/// A journal past this size, and past twice what it held when last rewritten, is rewritten
/// from what is still needed.
pub const COMPACT_BYTES: u64 = 4 << 20;

/// What went wrong with the journal.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// Reading, writing, cutting or renaming failed.
    #[error("cannot {action} {path}: {source}")]
    Io {
        /// What was attempted.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
}

/// One line of the journal.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
enum Line {
    /// File number `n` of this journal is `entry` (whose offset counts from the next `At`).
    File { n: u32, entry: Entry },
    /// Once the batch is in, output `out` (device, inode, length) holds every record of file
    /// `n` before `offset`, for each `(n, offset)`. No output: nothing written yet.
    At {
        out: Option<(u64, u64, u64)>,
        files: Vec<(u32, u64)>,
    },
}

/// The outcome of replaying a journal.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Replay {
    /// Per file, the offset the output holds it to.
    pub entries: Vec<Entry>,
    /// Where the output stands: (device, inode, length).
    pub mark: Option<(u64, u64, u64)>,
}

/// The journal of one file sink.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: Arc<File>,
    len: u64,
    /// Its length when it was last rewritten (many files tracked make a large base).
    base_len: u64,
    tracker: Arc<AckTracker>,
    /// The number of each file this journal has described.
    numbers: HashMap<FileId, u32>,
    /// The number the next file described gets (the base's files come first).
    next: u32,
    /// What was journaled for each file: its description, offset updated.
    latest: HashMap<FileId, Entry>,
    /// Where the output stands after the last line.
    mark: Option<(u64, u64, u64)>,
    line: Vec<u8>,
}

impl Journal {
    /// Replays the journal at `path` (outputs: the sink's files, newest first), cuts the
    /// outputs back to where it says they stand, hands its offsets to `tracker`, and starts
    /// the journal anew.
    pub fn open(
        path: PathBuf,
        outputs: &[PathBuf],
        tracker: Arc<AckTracker>,
    ) -> Result<Self, JournalError> {
        let replay = replay(&path, outputs)?;
        let found = replay.entries.len();
        // Only what the checkpoints do not say already is kept in the new journal.
        let ahead = tracker.journaled(replay.entries);
        let (file, len) = write_base(&path, &ahead, replay.mark)?;
        if found > 0 {
            tracing::info!(journal = %path.display(), files = found, ahead = ahead.len(), "the file sink's journal says how far the output holds each file; reading resumes there");
        }
        Ok(Self {
            file: Arc::new(file),
            path,
            len,
            base_len: len,
            tracker,
            numbers: HashMap::new(),
            next: ahead.len() as u32,
            latest: HashMap::new(),
            mark: replay.mark,
            line: Vec::new(),
        })
    }

    /// Where the journal is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The journal file, for the syncer to make durable.
    pub fn file(&self) -> Arc<File> {
        Arc::clone(&self.file)
    }

    /// Records that once a batch with `progress` is written, output `out`, `before` bytes
    /// long now, is `len` bytes long. Call before writing the batch.
    pub fn record(
        &mut self,
        out: FileIdentity,
        before: u64,
        len: u64,
        progress: &[FileProgress],
    ) -> Result<(), JournalError> {
        if self.len >= COMPACT_BYTES.max(2 * self.base_len) {
            self.compact()?;
        }
        self.line.clear();
        if self
            .mark
            .is_none_or(|(dev, ino, _)| (dev, ino) != (out.dev, out.ino))
        {
            // A new output: where it starts, for a batch cut short in it to be cut back to.
            let start = Line::At {
                out: Some((out.dev, out.ino, before)),
                files: Vec::new(),
            };
            push_line(&mut self.line, &start);
        }
        let mut files = Vec::with_capacity(progress.len());
        for p in progress {
            let n = match self.numbers.get(&p.id) {
                Some(&n) => n,
                None => {
                    let Some(entry) = self.tracker.describe(p.id) else {
                        // Not tracked: nothing to resume for it.
                        continue;
                    };
                    let n = self.next;
                    self.next += 1;
                    self.numbers.insert(p.id, n);
                    push_line(
                        &mut self.line,
                        &Line::File {
                            n,
                            entry: entry.clone(),
                        },
                    );
                    self.latest.insert(p.id, entry);
                    n
                }
            };
            if let Some(entry) = self.latest.get_mut(&p.id) {
                entry.offset = p.offset;
            }
            files.push((n, p.offset));
        }
        let mark = Some((out.dev, out.ino, len));
        push_line(&mut self.line, &Line::At { out: mark, files });
        self.append()?;
        self.mark = mark;
        Ok(())
    }

    /// Removes the journal after it could not be written: the next start neither cuts the
    /// output nor advances offsets from it.
    pub fn abandon(self) -> Result<(), JournalError> {
        match std::fs::remove_file(&self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(io_error("remove", &self.path, source)),
        }
    }

    fn append(&mut self) -> Result<(), JournalError> {
        (&*self.file)
            .write_all(&self.line)
            .map_err(|e| io_error("append to", &self.path, e))?;
        self.len += self.line.len() as u64;
        Ok(())
    }

    /// Rewrites the journal from the files the tracker still has.
    fn compact(&mut self) -> Result<(), JournalError> {
        let kept: Vec<(FileId, Entry)> = self
            .latest
            .iter()
            .filter(|(id, _)| self.tracker.offset(**id).is_some())
            .map(|(id, e)| (*id, e.clone()))
            .collect();
        let entries: Vec<Entry> = kept.iter().map(|(_, e)| e.clone()).collect();
        self.rewrite(&entries)?;
        // The kept files are numbered in order; later batches refer to them by those numbers.
        for (n, (id, entry)) in kept.into_iter().enumerate() {
            self.numbers.insert(id, n as u32);
            self.latest.insert(id, entry);
        }
        Ok(())
    }

    /// Replaces the journal with one that describes `entries` at their offsets and where
    /// the output stands; the files are numbered anew.
    fn rewrite(&mut self, entries: &[Entry]) -> Result<(), JournalError> {
        let (file, len) = write_base(&self.path, entries, self.mark)?;
        self.file = Arc::new(file);
        self.len = len;
        self.base_len = len;
        self.numbers.clear();
        self.next = entries.len() as u32;
        self.latest.clear();
        Ok(())
    }
}

/// Writes a journal at `path` that describes `entries` at their offsets and the output's
/// `mark`: written aside, made durable, renamed over. Returns it open for appending, and its
/// length.
fn write_base(
    path: &Path,
    entries: &[Entry],
    mark: Option<(u64, u64, u64)>,
) -> Result<(File, u64), JournalError> {
    let mut lines = Vec::new();
    for (n, entry) in entries.iter().enumerate() {
        let n = n as u32;
        let entry = entry.clone();
        push_line(&mut lines, &Line::File { n, entry });
    }
    let files = (0..entries.len() as u32)
        .zip(entries.iter().map(|e| e.offset))
        .collect();
    push_line(&mut lines, &Line::At { out: mark, files });
    let aside = path.with_extension("journal.tmp");
    let file = create(&aside, &lines)?;
    file.sync_all().map_err(|e| io_error("fsync", &aside, e))?;
    std::fs::rename(&aside, path).map_err(|e| io_error("rename", &aside, e))?;
    if let Some(dir) = path.parent() {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io_error("fsync the directory of", path, e))?;
    }
    Ok((file, lines.len() as u64))
}

fn io_error(action: &'static str, path: &Path, source: io::Error) -> JournalError {
    JournalError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

fn push_line(out: &mut Vec<u8>, line: &Line) {
    // Serializing these plain structs into memory cannot fail.
    if serde_json::to_writer(&mut *out, line).is_ok() {
        out.push(b'\n');
    }
}

/// Creates (or empties) the file at `path`, opened for appending, with `content`.
fn create(path: &Path, content: &[u8]) -> Result<File, JournalError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| io_error("create the directory of", path, e))?;
    }
    let mut file = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(path)
        .map_err(|e| io_error("create", path, e))?;
    file.write_all(content)
        .map_err(|e| io_error("write", path, e))?;
    drop(file);
    OpenOptions::new()
        .append(true)
        .open(path)
        .map_err(|e| io_error("open", path, e))
}

/// Reads the journal at `path`, finds where the outputs stand, cuts them back to it and
/// says how far each file is written. No journal: nothing to do.
pub fn replay(path: &Path, outputs: &[PathBuf]) -> Result<Replay, JournalError> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Replay::default()),
        Err(e) => return Err(io_error("open", path, e)),
    };
    // The lines: file descriptions (a number may be described again, for another file, after
    // the journal was rewritten), and the groups of offsets each `At` closes, by description.
    let mut described: Vec<Entry> = Vec::new();
    let mut numbers: HashMap<u32, usize> = HashMap::new();
    let mut groups: Vec<Group> = Vec::new();
    let mut pending: Vec<(usize, u64)> = Vec::new();
    let mut reader = BufReader::new(file);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let n = reader
            .read_until(b'\n', &mut buf)
            .map_err(|e| io_error("read", path, e))?;
        if n == 0 || buf.last() != Some(&b'\n') {
            break;
        }
        match serde_json::from_slice::<Line>(&buf) {
            Ok(Line::File { n, entry }) => {
                pending.push((described.len(), entry.offset));
                numbers.insert(n, described.len());
                described.push(entry);
            }
            Ok(Line::At { out, files }) => {
                // A number never described is a line written by something else: not trusted.
                pending.extend(
                    files
                        .into_iter()
                        .filter_map(|(n, offset)| Some((*numbers.get(&n)?, offset))),
                );
                groups.push((out, std::mem::take(&mut pending)));
            }
            Err(e) => {
                tracing::warn!(journal = %path.display(), error = %e, "the file sink's journal ends in a line that does not parse (a write the crash cut short?); it is read up to there");
                break;
            }
        }
    }
    // Where the outputs stand: the last line, if its output is still there and that long;
    // else the last line before it in the same output that is (the crash cut a batch short).
    // An output gone altogether (rotated away, removed) is not cut.
    let (upto, cut) = stands(&groups, outputs, path);
    let mark = groups[..upto].last().and_then(|(out, _)| *out);
    if let Some((i, size, len)) = cut {
        cut_back(&outputs[i], size, len)?;
        for newer in &outputs[..i] {
            match std::fs::remove_file(newer) {
                Ok(()) => {
                    tracing::info!(output = %newer.display(), "removed an output opened after the last batch the journal holds: what it had is written again");
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_error("remove", newer, e)),
            }
        }
    }
    let mut offsets: Vec<Option<u64>> = vec![None; described.len()];
    for (_, files) in &groups[..upto] {
        for &(i, offset) in files {
            offsets[i] = Some(offsets[i].map_or(offset, |at| at.max(offset)));
        }
    }
    // The latest description of each file (a file described again has advanced since).
    let mut latest: HashMap<(u64, u64), Entry> = HashMap::new();
    for (mut entry, offset) in described.into_iter().zip(offsets) {
        let Some(offset) = offset else { continue };
        entry.offset = offset;
        match latest.get(&(entry.dev, entry.ino)) {
            Some(e) if e.offset > entry.offset && e.fingerprint == entry.fingerprint => {}
            _ => {
                latest.insert((entry.dev, entry.ino), entry);
            }
        }
    }
    let mut entries: Vec<Entry> = latest.into_values().collect();
    entries.sort_by_key(|e| (e.dev, e.ino));
    Ok(Replay { entries, mark })
}

/// A group of the journal: the output after it, and the offsets it holds (by description).
type Group = (Option<(u64, u64, u64)>, Vec<(usize, u64)>);

/// How many of `groups` the outputs hold, and the cut that makes it so: (index in
/// `outputs`, its size, the length to cut it to).
fn stands(
    groups: &[Group],
    outputs: &[PathBuf],
    journal: &Path,
) -> (usize, Option<(usize, u64, u64)>) {
    let Some(&(Some((dev, ino, _)), _)) = groups.last() else {
        return (groups.len(), None);
    };
    let found = outputs.iter().enumerate().find_map(|(i, p)| {
        std::fs::metadata(p)
            .ok()
            .filter(|m| FileIdentity::of(m) == FileIdentity { dev, ino })
            .map(|m| (i, m.len()))
    });
    let Some((i, size)) = found else {
        tracing::warn!(journal = %journal.display(), "the output the file sink's journal ends in is gone (rotated away or removed); nothing is cut");
        return (groups.len(), None);
    };
    for k in (0..groups.len()).rev() {
        match groups[k].0 {
            Some((d, n, len)) if (d, n) == (dev, ino) => {
                if len <= size {
                    return (k + 1, Some((i, size, len)));
                }
            }
            _ => {
                tracing::warn!(journal = %journal.display(), output = %outputs[i].display(), size, "the output is shorter than its journal says where it starts; it is left as it is");
                return (k + 1, None);
            }
        }
    }
    (0, None)
}

/// Cuts `output` (`size` bytes) back to `len`.
fn cut_back(output: &Path, size: u64, len: u64) -> Result<(), JournalError> {
    if size == len {
        return Ok(());
    }
    let file = OpenOptions::new()
        .write(true)
        .open(output)
        .map_err(|e| io_error("open", output, e))?;
    file.set_len(len)
        .and_then(|()| file.sync_all())
        .map_err(|e| io_error("cut back", output, e))?;
    tracing::info!(output = %output.display(), bytes = size - len, "cut the output back to the last batch its journal holds: the rest was written by a batch a crash interrupted, and is written again");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deliver::ack::Registration;
    use crate::file::Fingerprint;
    use crate::metrics::Metrics;

    fn tracker_reading(ids: &[u64]) -> Arc<AckTracker> {
        let tracker = Arc::new(AckTracker::new(Arc::new(Metrics::new())));
        for &id in ids {
            tracker.open(
                FileId(id),
                Registration {
                    identity: FileIdentity { dev: 7, ino: id },
                    born: None,
                    fingerprint: Fingerprint::of(format!("file {id}").as_bytes()),
                    path: Path::new("/var/log/pods/x/0.log"),
                    source: "pods",
                    offset: 0,
                },
            );
        }
        tracker
    }

    fn progress(id: u64, seq: u64, offset: u64) -> FileProgress {
        FileProgress {
            id: FileId(id),
            offset,
            seq,
            closed: false,
        }
    }

    fn identity(path: &Path) -> FileIdentity {
        FileIdentity::of(&std::fs::metadata(path).unwrap())
    }

    /// Appends `data` to `output` as the sink does: journal first, then the batch.
    fn write(journal: &mut Journal, output: &Path, data: &[u8], p: &[FileProgress]) {
        let before = std::fs::metadata(output).unwrap().len();
        let len = before + data.len() as u64;
        journal.record(identity(output), before, len, p).unwrap();
        let mut file = OpenOptions::new().append(true).open(output).unwrap();
        file.write_all(data).unwrap();
    }

    fn offsets(replay: &Replay) -> Vec<(u64, u64)> {
        replay.entries.iter().map(|e| (e.ino, e.offset)).collect()
    }

    #[test]
    fn no_journal_means_nothing_to_cut_or_resume() {
        let dir = tempfile::tempdir().unwrap();
        let replay = replay(&dir.path().join("s.journal"), &[dir.path().join("out")]).unwrap();
        assert_eq!(replay, Replay::default());
    }

    #[test]
    fn a_batch_cut_short_is_cut_off_and_the_offsets_before_it_stand() {
        let dir = tempfile::tempdir().unwrap();
        let output = dir.path().join("out.ndjson");
        std::fs::write(&output, "old\n").unwrap();
        let path = dir.path().join("sinks/s.journal");
        let tracker = tracker_reading(&[1, 2]);
        let mut journal =
            Journal::open(path.clone(), std::slice::from_ref(&output), tracker).unwrap();
        write(&mut journal, &output, b"a1\na2\n", &[progress(1, 0, 60)]);
        write(
            &mut journal,
            &output,
            b"b1\n",
            &[progress(1, 1, 90), progress(2, 0, 30)],
        );
        // The third batch is journaled, then the crash comes halfway through writing it.
        let before = std::fs::metadata(&output).unwrap().len();
        journal
            .record(identity(&output), before, before + 6, &[progress(2, 1, 70)])
            .unwrap();
        OpenOptions::new()
            .append(true)
            .open(&output)
            .unwrap()
            .write_all(b"c1")
            .unwrap();
        drop(journal);
        let outputs = [output.clone()];
        let replayed = replay(&path, &outputs).unwrap();
        assert_eq!(
            std::fs::read_to_string(&output).unwrap(),
            "old\na1\na2\nb1\n"
        );
        assert_eq!(offsets(&replayed), vec![(1, 90), (2, 30)]);
        // Replaying again (a second crash before anything was written) changes nothing.
        assert_eq!(replay(&path, &outputs).unwrap(), replayed);
    }

    #[test]
    fn a_new_journal_holds_the_replayed_offsets_until_it_is_compacted() {
        let dir = tempfile::tempdir().unwrap();
        let output = dir.path().join("out.ndjson");
        std::fs::write(&output, "").unwrap();
        let path = dir.path().join("s.journal");
        let mut journal = Journal::open(
            path.clone(),
            std::slice::from_ref(&output),
            tracker_reading(&[1]),
        )
        .unwrap();
        write(&mut journal, &output, b"x\n", &[progress(1, 0, 10)]);
        drop(journal);
        // Restarted: the offsets go to the tracker and into the new journal; a crash before
        // the next batch still finds them.
        let tracker = tracker_reading(&[]);
        let journal = Journal::open(
            path.clone(),
            std::slice::from_ref(&output),
            Arc::clone(&tracker),
        )
        .unwrap();
        drop(journal);
        assert_eq!(
            offsets(&replay(&path, std::slice::from_ref(&output)).unwrap()),
            vec![(1, 10)]
        );
        let resumed = tracker.resume(
            FileIdentity { dev: 7, ino: 1 },
            None,
            b"file 1 and more",
            100,
        );
        assert_eq!(resumed, crate::deliver::ack::Resume::At { offset: 10 });
        assert_eq!(std::fs::read_to_string(&output).unwrap(), "x\n");
    }

    #[test]
    fn outputs_opened_after_the_last_journaled_batch_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let output = dir.path().join("out.ndjson");
        let rotated = dir.path().join("out.ndjson.1");
        std::fs::write(&output, "").unwrap();
        let path = dir.path().join("s.journal");
        let mut journal = Journal::open(
            path.clone(),
            &[output.clone(), rotated.clone()],
            tracker_reading(&[1]),
        )
        .unwrap();
        write(&mut journal, &output, b"x\n", &[progress(1, 0, 10)]);
        drop(journal);
        // Rotated, and the crash came before the journal said anything of the new file.
        std::fs::rename(&output, &rotated).unwrap();
        std::fs::write(&output, "half").unwrap();
        let replayed = replay(&path, &[output.clone(), rotated.clone()]).unwrap();
        assert!(!output.exists());
        assert_eq!(std::fs::read_to_string(&rotated).unwrap(), "x\n");
        assert_eq!(offsets(&replayed), vec![(1, 10)]);
    }

    #[test]
    fn an_output_gone_altogether_is_not_cut_and_its_offsets_stand() {
        let dir = tempfile::tempdir().unwrap();
        let output = dir.path().join("out.ndjson");
        std::fs::write(&output, "").unwrap();
        let path = dir.path().join("s.journal");
        let mut journal = Journal::open(
            path.clone(),
            std::slice::from_ref(&output),
            tracker_reading(&[1]),
        )
        .unwrap();
        write(&mut journal, &output, b"x\n", &[progress(1, 0, 10)]);
        drop(journal);
        // Moved away (kept, so that its inode is not the new file's).
        std::fs::rename(&output, dir.path().join("archived")).unwrap();
        std::fs::write(&output, "someone else's\n").unwrap();
        let replayed = replay(&path, std::slice::from_ref(&output)).unwrap();
        assert_eq!(offsets(&replayed), vec![(1, 10)]);
        assert_eq!(
            std::fs::read_to_string(&output).unwrap(),
            "someone else's\n"
        );
    }

    #[test]
    fn a_torn_last_line_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let output = dir.path().join("out.ndjson");
        std::fs::write(&output, "").unwrap();
        let path = dir.path().join("s.journal");
        let mut journal = Journal::open(
            path.clone(),
            std::slice::from_ref(&output),
            tracker_reading(&[1]),
        )
        .unwrap();
        write(&mut journal, &output, b"x\n", &[progress(1, 0, 10)]);
        drop(journal);
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(br#"{"t":"at","out":[1,2,3],"files":[[0,99]"#)
            .unwrap();
        let replayed = replay(&path, std::slice::from_ref(&output)).unwrap();
        assert_eq!(offsets(&replayed), vec![(1, 10)]);
        assert_eq!(std::fs::read_to_string(&output).unwrap(), "x\n");
    }

    #[test]
    fn compaction_keeps_the_files_still_tracked() {
        let dir = tempfile::tempdir().unwrap();
        let output = dir.path().join("out.ndjson");
        std::fs::write(&output, "").unwrap();
        let path = dir.path().join("s.journal");
        let tracker = tracker_reading(&[1, 2]);
        let mut journal = Journal::open(
            path.clone(),
            std::slice::from_ref(&output),
            Arc::clone(&tracker),
        )
        .unwrap();
        write(
            &mut journal,
            &output,
            b"a\n",
            &[progress(1, 0, 10), progress(2, 0, 5)],
        );
        // File 2 was read to its end and acknowledged: it leaves the tracker.
        tracker.complete(&[FileProgress {
            closed: true,
            ..progress(2, 0, 5)
        }]);
        let mut seq = 1;
        while journal.len < COMPACT_BYTES {
            write(&mut journal, &output, b"a\n", &[progress(1, seq, 10 + seq)]);
            seq += 1;
        }
        write(&mut journal, &output, b"b\n", &[progress(1, seq, 10 + seq)]);
        assert!(journal.len < 4096, "compacted: {} bytes", journal.len);
        drop(journal);
        let replayed = replay(&path, std::slice::from_ref(&output)).unwrap();
        assert_eq!(offsets(&replayed), vec![(1, 10 + seq)]);
        assert_eq!(
            std::fs::metadata(&output).unwrap().len(),
            2 * (seq + 1),
            "nothing cut"
        );
    }
}
